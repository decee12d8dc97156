"""Local users of the agent: hashed passwords and per-user authorized keys.

Passwords are stored as scrypt hashes (RFC 7914) in ``<state-dir>/users``
(mode 0600), one line per user: ``name:scrypt$N$r$p$<salt>$<hash>`` with
base64 salt and hash, then optionally ``:group,group`` (NACM groups). Public
keys for SSH public-key authentication go in ``<state-dir>/authorized_keys/<name>``
in OpenSSH ``authorized_keys`` format.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write, writable_by_others

log = logging.getLogger("agent.netconf.users")

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$")


@functools.cache
def _unknown_user_hash() -> str:
    """A hash to check unknown users' passwords against: the same cost as a real
    check, so that timing does not tell which user names exist."""
    return hash_password(secrets.token_urlsafe(16))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The stored form of *password* (scrypt, RFC 7914)."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                            dklen=32)
    return "scrypt${}${}${}${}${}".format(_SCRYPT_N, _SCRYPT_R, _SCRYPT_P,
                                          base64.b64encode(salt).decode(),
                                          base64.b64encode(digest).decode())


def verify_password(password: str, stored: str) -> bool:
    """Whether *password* matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(hash_b64)
        digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True)
class UserEntry:
    """One line of the users file."""

    name: str
    password_hash: str                  # NO_PASSWORD: public-key authentication only
    groups: tuple[str, ...] = ()

    def line(self) -> str:
        return f"{self.name}:{self.password_hash}" + (
            f":{','.join(self.groups)}" if self.groups else "") + "\n"


#: the stored "hash" of a user without a password: no password ever matches it
NO_PASSWORD = "!"


def check_name(name: str) -> str:
    """*name* if it is a valid user name, else ValueError."""
    if not _NAME.match(name):
        raise ValueError(f"invalid user name {name!r}: letters, digits, '.', '_' and '-',"
                         " at most 64 characters, not starting with '-'")
    return name


class UserStore:
    """The users file and the authorized-keys directory of a state directory.

    The users file has one line per user, ``name:hash[:group,group...]``; the
    groups are the user's NACM groups from the user database, which RFC 8341
    section 3.2.4 calls the transport layer's (used while
    ``/nacm/enable-external-groups`` is true). Changes by ``cmp-agent user``
    take effect at the next login or RPC: the file is read again whenever it
    changed.
    """

    def __init__(self, state_dir: Path):
        self.path = state_dir / "users"
        self._path_str = str(self.path)
        self.keys_dir = state_dir / "authorized_keys"
        self._entries: dict[str, UserEntry] = {}
        self._version: tuple | None | bool = False  # False: never read

    def exists(self) -> bool:
        return self.path.is_file()

    def version(self) -> tuple | None:
        """Changes whenever the users file changes (``cmp-agent user`` rewrites it
        for every change, also of keys). Asked at every RPC: one ``stat``."""
        try:
            st = os.stat(self._path_str)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def _reload(self) -> None:
        """Read the users file again if it changed (edits take effect without restart)."""
        version = self.version()
        if version == self._version:
            return
        entries = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            name, sep, rest = line.strip().partition(":")
            if sep and name and not name.startswith("#"):
                stored, _, groups = rest.partition(":")
                entries[name] = UserEntry(name, stored,
                                          tuple(g for g in groups.split(",") if g))
        self._entries, self._version = entries, version

    def entries(self) -> dict[str, UserEntry]:
        """Every user of the users file, by name."""
        self._reload()
        return dict(self._entries)

    def write(self, entries: dict[str, UserEntry]) -> None:
        """Replace the users file (atomically, mode 0600)."""
        atomic_write(self.path, "".join(e.line() for e in entries.values()).encode())
        self._version = False

    def set_password(self, name: str, password: str) -> None:
        """Add *name* or change its password (its groups stay)."""
        check_name(name)
        entries = self.entries()
        old = entries.get(name)
        entries[name] = UserEntry(name, hash_password(password), old.groups if old else ())
        self.write(entries)

    def check_password(self, name: str, password: str) -> bool:
        self._reload()
        entry = self._entries.get(name)
        if entry is None or entry.password_hash == NO_PASSWORD:
            verify_password(password, _unknown_user_hash())  # one scrypt, as for a known user
            return False
        return verify_password(password, entry.password_hash)

    def groups(self, name: str) -> frozenset[str] | None:
        """The user's groups; ``None`` if *name* is no longer a user (neither in
        the users file nor with an authorized_keys file)."""
        self._reload()
        entry = self._entries.get(name)
        if entry is not None:
            return frozenset(entry.groups)
        return frozenset() if self.authorized_keys(name) is not None else None

    def authorized_keys(self, name: str) -> str | None:
        """The authorized_keys file of *name*, if there is one that only the
        agent's user can change (as sshd's StrictModes; others are refused)."""
        if not _NAME.match(name):
            return None
        path = self.keys_dir / name
        if not path.is_file():
            return None
        if writable_by_others(path) or writable_by_others(self.keys_dir):
            log.warning("%s is not used: other users could change it (chmod go-w %s %s)",
                        path, self.keys_dir, path)
            return None
        return str(path)
