"""``cmp-agent --help`` and each subcommand's: plain text, every option explained."""

from __future__ import annotations

import argparse
import importlib
import subprocess
from pathlib import Path

import pytest

from agent.cli import SUBCOMMANDS

CMP_AGENT = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "cmp-agent"


@pytest.mark.parametrize("command", ["", *SUBCOMMANDS])
def test_help_is_plain_text(command):
    shown = subprocess.run([str(CMP_AGENT), *command.split(), "--help"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "usage: cmp-agent" in shown.stdout
    assert "`" not in shown.stdout and ":func:" not in shown.stdout, shown.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_has_help(command):
    parser = argparse.ArgumentParser()
    importlib.import_module(SUBCOMMANDS[command][0]).configure_parser(parser)
    # a group of sub-commands is explained by its choices' help
    silent = [a.option_strings or a.dest for a in parser._actions
              if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert silent == []
