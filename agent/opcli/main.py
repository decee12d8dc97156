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
CMP_AGENT_PASSWORD, else a prompt on the terminal. --password is visible to
other users of the machine (ps, /proc/PID/cmdline): prefer the variable or
the prompt.

The agent's SSH host key is checked before the password is sent, as OpenSSH
does: it must be listed for the host in /etc/ssh/ssh_known_hosts or
~/.ssh/known_hosts (--known-hosts FILE instead of the latter); on a loopback
address the key of the local agent's state directory is trusted too, if this
account may read it. An unknown host is refused with how to trust it
(--accept-new-host-key, or ssh-keyscan); a changed key is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PASSWORD_ENV = "CMP_AGENT_PASSWORD"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", default="127.0.0.1", help="agent address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8830,
                        help="agent NETCONF port (default 8830, the agent's own default)")
    parser.add_argument("--user", default="admin", help="user name (default admin)")
    parser.add_argument("--password", help=f"password (default: ${PASSWORD_ENV}, else asked); visible to"
                             " other users in the process list: prefer the variable")
    parser.add_argument("--known-hosts", metavar="FILE", type=Path,
                        help="the known_hosts file to check the agent's SSH host key against,"
                             " as OpenSSH's UserKnownHostsFile (default: ~/.ssh/known_hosts);"
                             " /etc/ssh/ssh_known_hosts is read too")
    parser.add_argument("--accept-new-host-key", action="store_true",
                        help="trust the host key of an agent no known_hosts file lists, and add"
                             " it to the --known-hosts file (OpenSSH's"
                             " StrictHostKeyChecking=accept-new); a changed key is refused all"
                             " the same")
    parser.add_argument("--state-dir", metavar="DIR", type=Path,
                        help="on a loopback --host, also trust the host key in"
                             " DIR/ssh_host_ed25519_key when this account may read it (the"
                             " local agent's; default: the state directory of 'cmp-agent"
                             " serve' run by this account)")
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
            messages = to_xml(lines, source)
        except (ToXmlError, OSError) as exc:
            print(exc, file=sys.stderr)
            return 1
        sys.stdout.write(messages)  # a closed output: see agent.cli.main
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
    policy = _host_key_policy(args)
    loop = asyncio.new_event_loop()
    try:
        try:
            client = loop.run_until_complete(
                NetconfClient.connect(args.host, args.port, args.user, password,
                                      host_key_check=policy.check))
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            if policy.refusal is not None:
                print(f"Error: {policy.refusal}", file=sys.stderr)
                return 1
            print(f"Error: cannot connect to {args.host}:{args.port} as {args.user}: "
                  f"{exc or type(exc).__name__}", file=sys.stderr)
            return 1
        finally:
            for notice in policy.notices:
                print(notice, file=sys.stderr)
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


def _host_key_policy(args: argparse.Namespace):
    from ..serve import default_state_dir
    from .hostkeys import HostKeyPolicy, user_known_hosts

    return HostKeyPolicy(args.host, args.port,
                         user_file=(args.known_hosts or user_known_hosts()).expanduser(),
                         accept_new=args.accept_new_host_key,
                         state_dir=(args.state_dir or default_state_dir()).expanduser())
