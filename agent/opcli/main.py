"""The vendor's PKI commands over NETCONF: ``cmp-agent cli``.

Connects to an agent over NETCONF/SSH and accepts the commands of the
configuration guide ("Applying for and Updating a Local Certificate in Online
Mode Using CMPv2") exactly as it writes them, from FILE, from stdin, or typed
at the device-style prompt (tab completion, ``?`` help). With FILE or stdin it
stops with exit status 1 at the first command that fails; the replay locks the
candidate from its first edit on, and discards its uncommitted configuration
when it fails or ends without ``commit``. Lines starting with ``#`` or ``!``
are comments. ``--to-xml`` prints the NETCONF messages the commands become,
without connecting.

The password comes from --password, else the environment variable
CMP_AGENT_PASSWORD, else a prompt on the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys

PASSWORD_ENV = "CMP_AGENT_PASSWORD"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", default="127.0.0.1", help="agent address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8830,
                        help="agent NETCONF port (default 8830, the agent's own default)")
    parser.add_argument("--user", default="admin", help="user name (default admin)")
    parser.add_argument("--password", help=f"password (default: ${PASSWORD_ENV}, else asked)")
    parser.add_argument("--known-hosts", metavar="FILE",
                        help="OpenSSH known_hosts file to check the agent's host key against"
                             " (default: the host key is not checked)")
    parser.add_argument("--to-xml", action="store_true",
                        help="print the NETCONF <rpc> messages the commands become; do not connect")
    parser.add_argument("file", nargs="?", metavar="FILE",
                        help="commands to run, one per line (default: stdin, or the prompt on a TTY)")


def _read_lines(path: str | None) -> tuple[list[str], str]:
    if path is None or path == "-":
        return sys.stdin.readlines(), "stdin"
    with open(path, encoding="utf-8") as f:
        return f.readlines(), path


def _password(args: argparse.Namespace) -> str | None:
    if args.password is not None:
        return args.password
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    import getpass

    try:
        return getpass.getpass(f"{args.user}@{args.host}'s password: ")
    except (EOFError, OSError):
        return None


def run(args: argparse.Namespace) -> int:
    if args.to_xml:
        from .toxml import ToXmlError, to_xml

        try:
            lines, source = _read_lines(args.file)
            sys.stdout.write(to_xml(lines, source))
        except (ToXmlError, OSError) as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    return _run_connected(args)


def _run_connected(args: argparse.Namespace) -> int:
    import asyncio

    import asyncssh

    from ..netconf.client import NetconfClient
    from .runner import Runner, run_lines
    from .shell import Shell

    lines: list[str] | None = None
    source = ""
    if args.file is not None or not sys.stdin.isatty():
        try:
            lines, source = _read_lines(args.file)
        except OSError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    password = _password(args)
    if password is None:
        print(f"Error: no password: use --password or set {PASSWORD_ENV}", file=sys.stderr)
        return 1
    loop = asyncio.new_event_loop()
    try:
        try:
            client = loop.run_until_complete(
                NetconfClient.connect(args.host, args.port, args.user, password,
                                      known_hosts=args.known_hosts))
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            print(f"Error: cannot connect to {args.host}:{args.port} as {args.user}: "
                  f"{exc or type(exc).__name__}", file=sys.stderr)
            return 1
        runner = Runner(Shell(), lambda op: loop.run_until_complete(client.rpc(op.body())))
        try:
            if lines is not None:
                return run_lines(runner, lines, source)
            from .interactive import interactive

            return interactive(runner)
        finally:
            loop.run_until_complete(client.close())
    finally:
        loop.close()
