"""Manage the agent's NETCONF users: ``cmp-agent user add|passwd|del|list``.

Changes go to ``<state-dir>/users`` and ``<state-dir>/authorized_keys/``
(written atomically, mode 0600) and take effect at once, also in a running
agent: it reads them again at each login and RPC. ``--group`` puts the user in
NACM groups (RFC 8341); the first start's ``admin`` is in group ``admin``,
whose rule-list permits everything. Changing the admin's password removes
``initial-admin-password``.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncssh

from .atomic import atomic_write, ensure_directory
from .netconf.nacm import NACM_NS
from .netconf.users import NO_PASSWORD, UserEntry, UserStore, check_name, hash_password
from .netconf.xmlparse import XmlError, parse_message
from .serve import default_state_dir

INITIAL_PASSWORD_FILE = "initial-admin-password"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--state-dir", type=Path, default=None,
                       help=f"the agent's state directory (default: {default_state_dir()})")
        return p

    add = command("add", "add a user")
    add.add_argument("name", help="the new user's login name (letters, digits, '.', '_', '-';"
                     " at most 64 characters)")
    add.add_argument("--group", action="append", default=[], metavar="G",
                     help="a NACM group of the user (repeat for several)")
    add.add_argument("--ssh-key", type=Path, metavar="FILE",
                     help="OpenSSH public key(s) the user may log in with")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    passwd = command("passwd", "set a user's password")
    passwd.add_argument("name", help="the user whose password to set")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    delete = command("del", "remove a user, its password and its keys")
    delete.add_argument("name", help="the user to remove")
    command("list", "list the users and their groups")


class UserError(Exception):
    """A refused request; the message says what to do."""


def run(args: argparse.Namespace) -> int:
    state_dir: Path = (args.state_dir or default_state_dir()).expanduser().resolve()
    try:
        if not state_dir.is_dir():
            raise UserError(f"no state directory {state_dir}; start the agent once"
                            " (cmp-agent serve) or give --state-dir")
        with _locked(state_dir):
            return ACTIONS[args.action](UserStore(state_dir), args)
    except BrokenPipeError:
        raise  # stdout's reader went away (user list | head): agent.cli.main ends quietly
    except (UserError, ValueError, OSError) as exc:
        print(f"cmp-agent user {args.action}: {exc}", file=sys.stderr)
        return 1


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One ``cmp-agent user`` change at a time (read, modify, write)."""
    fd = os.open(state_dir / "users.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the passwords differ; nothing was changed")
    else:
        raise UserError("no terminal to ask the password on; use --password-stdin")
    if not password:
        raise UserError("empty password; nothing was changed")
    return password


def _add(users: UserStore, args: argparse.Namespace) -> int:
    name = check_name(args.name)
    entries = users.entries()
    if name in entries or users.authorized_keys(name) is not None:
        raise UserError(f"user {name!r} exists; use 'cmp-agent user passwd {name}'"
                        f" or 'cmp-agent user del {name}' first")
    for group in args.group:
        if not group or group.startswith("*") or "," in group or ":" in group:
            raise UserError(f"invalid group name {group!r}")
    keys = None
    if args.ssh_key is not None:
        try:
            keys = args.ssh_key.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
            raise UserError(f"--ssh-key: cannot read {args.ssh_key}: {reason}; give the"
                            " user's OpenSSH public key file (the .pub of ssh-keygen)") from None
        try:
            asyncssh.import_authorized_keys(keys)
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise UserError(f"{args.ssh_key}: not OpenSSH public keys: {exc}") from None
    if args.password_stdin or keys is None:
        stored = hash_password(_read_password(args, name))
    else:
        stored = NO_PASSWORD  # public-key authentication only
    if keys is not None:
        ensure_directory(users.keys_dir, 0o700)
        atomic_write(users.keys_dir / name, keys.encode())
    entries[name] = UserEntry(name, stored, tuple(dict.fromkeys(args.group)))
    users.write(entries)
    print(f"added user {name}" + (f" in group(s) {', '.join(args.group)}" if args.group else
                                  " (in no group: the NACM defaults apply)"))
    return 0


def _passwd(users: UserStore, args: argparse.Namespace) -> int:
    name = check_name(args.name)
    if name not in users.entries():
        raise UserError(f"no user {name!r}; add it with 'cmp-agent user add {name}'")
    users.set_password(name, _read_password(args, name))
    initial = users.path.parent / INITIAL_PASSWORD_FILE
    if name == "admin" and initial.exists():
        initial.unlink()
        print(f"password of {name} changed; {initial} removed")
    else:
        print(f"password of {name} changed")
    return 0


def _del(users: UserStore, args: argparse.Namespace) -> int:
    name = check_name(args.name)
    entries = users.entries()
    key_file = users.keys_dir / name
    if name not in entries and not key_file.exists():
        raise UserError(f"no user {name!r}")
    entries.pop(name, None)
    key_file.unlink(missing_ok=True)
    users.write(entries)  # also when only keys went: a running agent notices the change
    print(f"removed user {name}; its open sessions may only close")
    return 0


def _list(users: UserStore, args: argparse.Namespace) -> int:
    """One line per user: the database's groups, the groups ``/nacm/groups`` of
    the committed configuration adds (``nacm:``), how the user logs in."""
    entries = users.entries()
    key_users = {p.name for p in users.keys_dir.iterdir()} if users.keys_dir.is_dir() else set()
    configured = _configured_groups(users.path.parent / "running.xml")
    for name in sorted(set(entries) | key_users):
        entry = entries.get(name)
        login = []
        if entry is not None and entry.password_hash != NO_PASSWORD:
            login.append("password")
        if name in key_users:
            login.append("ssh-key")
        groups = ",".join(entry.groups) if entry and entry.groups else "-"
        extra = configured.get(name)
        print(f"{name}\tgroups: {groups}\tlogin: {'+'.join(login) or 'none'}"
              + (f"\tnacm: {','.join(extra)}" if extra else ""))
    return 0


def _configured_groups(running: Path) -> dict[str, list[str]]:
    """User -> the groups of ``/nacm/groups`` in the committed configuration."""
    try:
        data = parse_message(running.read_bytes())
    except (OSError, XmlError):
        return {}
    found: dict[str, list[str]] = {}
    for group in data.iterfind(f"{{{NACM_NS}}}nacm/{{{NACM_NS}}}groups/{{{NACM_NS}}}group"):
        for member in group.iterfind(f"{{{NACM_NS}}}user-name"):
            found.setdefault((member.text or "").strip(), []).append(
                group.findtext(f"{{{NACM_NS}}}name", "").strip())
    return found


ACTIONS = {"add": _add, "passwd": _passwd, "del": _del, "list": _list}
