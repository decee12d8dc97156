"""Local users of the agent: hashed passwords and per-user authorized keys.

Passwords are stored as scrypt hashes (RFC 7914) in ``<state-dir>/users``
(mode 0600), one line per user: ``name:scrypt$N$r$p$<salt>$<hash>`` with
base64 salt and hash. Public keys for SSH public-key authentication go in
``<state-dir>/authorized_keys/<name>`` in OpenSSH ``authorized_keys`` format.
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


class UserStore:
    """The users file and the authorized-keys directory of a state directory."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "users"
        self.keys_dir = state_dir / "authorized_keys"
        self._hashes: dict[str, str] = {}
        self._mtime: float | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def _reload(self) -> None:
        """Read the users file again if it changed (edits take effect without restart)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._hashes, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        hashes = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            name, sep, stored = line.strip().partition(":")
            if sep and name and not name.startswith("#"):
                hashes[name] = stored
        self._hashes, self._mtime = hashes, mtime

    def set_password(self, name: str, password: str) -> None:
        """Add *name* or change its password."""
        if not _NAME.match(name):
            raise ValueError(f"invalid user name {name!r}")
        self._reload()
        hashes = dict(self._hashes)
        hashes[name] = hash_password(password)
        atomic_write(self.path, "".join(f"{n}:{h}\n" for n, h in hashes.items()).encode())
        self._mtime = None

    def check_password(self, name: str, password: str) -> bool:
        self._reload()
        stored = self._hashes.get(name)
        if stored is None:
            verify_password(password, _unknown_user_hash())  # one scrypt, as for a known user
            return False
        return verify_password(password, stored)

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
