"""Shared by the opcli tests: where the repository and `cmp-agent cli` are."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def cli_command() -> list[str]:
    """``cmp-agent cli`` from the venv (or ``python -m agent cli``)."""
    script = ROOT / ".venv" / "bin" / "cmp-agent"
    return [str(script), "cli"] if script.exists() else [sys.executable, "-m", "agent", "cli"]
