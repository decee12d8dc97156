"""``cmp-agent --help`` and each subcommand's: plain text, every option explained."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess

import pytest
from cmp_agent_command import agent_command

from agent.cli import SUBCOMMANDS

CMP_AGENT = agent_command()


@pytest.mark.parametrize("command", ["", *SUBCOMMANDS])
def test_help_is_plain_text(command):
    shown = subprocess.run([*CMP_AGENT, *command.split(), "--help"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "usage: cmp-agent" in shown.stdout
    assert "`" not in shown.stdout and ":func:" not in shown.stdout, shown.stdout


def silent_arguments(parser: argparse.ArgumentParser, where: str) -> list[str]:
    """Options and positional arguments of *parser* and of its sub-commands (``user add``)
    without help text."""
    silent = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            # a group of sub-commands is explained by its choices' help, and each choice by its own
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            for name, sub in action.choices.items():
                if name not in helped:
                    silent.append(f"{where} {name}")
                silent += silent_arguments(sub, f"{where} {name}")
        elif not action.help:
            silent.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    return silent


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_and_argument_has_help(command):
    parser = argparse.ArgumentParser()
    importlib.import_module(SUBCOMMANDS[command][0]).configure_parser(parser)
    assert silent_arguments(parser, command) == []


@pytest.mark.parametrize("action", ["add", "passwd", "del"])
def test_user_subcommands_explain_the_name(action):
    shown = subprocess.run([*CMP_AGENT, "user", action, "--help"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^\s+name\s+\S", shown.stdout, re.M), shown.stdout


@pytest.mark.parametrize("arguments, shown, status", [
    ("--help cmp", "serve run the NETCONF agent cmp run one CMP", 0),  # the top level's
    ("cmp --help", "usage: cmp-agent cmp [-h] --server URL", 0),
    ("nope", "invalid choice: 'nope' (choose from 'serve', 'cmp', 'cli', 'user')", 2),
    ("", "the following arguments are required: COMMAND", 2),
    ("-x cmp", "required: {ir,cr,kur,p10cr,rr,genm}, --server", 2),
    ("cmp ir", "the following arguments are required: --server", 2),
])
def test_the_command_line_is_read_as_one_parser_of_every_command(arguments, shown, status):
    """A process makes only the parser of the command its arguments start with: what it
    shows is what the parsers of all commands show."""
    done = subprocess.run([*CMP_AGENT, *arguments.split()], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == status
    assert shown in " ".join((done.stdout + done.stderr).split())
