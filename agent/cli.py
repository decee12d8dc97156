"""The ``cmp-agent`` command: ``serve`` runs the agent, ``cmp`` enrols from the shell."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

#: subcommand -> (module, one-line help). Each module provides
#: ``configure_parser(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("agent.serve", "run the NETCONF agent"),
    "cmp": ("agent.cmp.cli", "run one CMP transaction (ir, cr, kur) from the shell"),
    "cli": ("agent.opcli.main", "the vendor's PKI commands over NETCONF"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cmp-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.configure_parser(sub.add_parser(name, help=help_text, description=module.__doc__))
    args = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args) or 0)
