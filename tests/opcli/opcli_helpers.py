"""Shared by the opcli tests: where the repository and `cmp-agent cli` are."""

from __future__ import annotations

from pathlib import Path

from cmp_agent_command import agent_command

ROOT = Path(__file__).resolve().parent.parent.parent


def cli_command() -> list[str]:
    """``cmp-agent cli`` of this checkout (tests/cmp_agent_command.py)."""
    return [*agent_command(), "cli"]
