"""Secrets at rest: the configured CMP MAC secret is stored only as ciphertext.

AES-256-GCM (NIST SP 800-38D) via ``cryptography``; the key lives in
``<state_dir>/secret.key`` (mode 0600, written with :func:`atomic_write`).
The ciphertext format is ``$cmp$1$<base64url(nonce || ciphertext || tag)>``,
so a configuration read back from the agent can be written again unchanged.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.atomic import atomic_write
from agent.netconf.errors import RpcError

#: every agent ciphertext starts with MARK; PREFIX is this format's version
MARK = "$cmp$"
PREFIX = MARK + "1$"
KEY_FILE = "secret.key"
#: a secret written as clear text is 1..128 characters (the configuration guide's
#: limit for the MAC secret); longer values are only valid as our ciphertext
CLEAR_TEXT_MAX = 128
_NONCE_LEN = 12
_AAD = b"cmp-agent secret-value v1"


class SecretBox:
    """Seals and opens secret configuration values with the agent's own key."""

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("SecretBox needs a 256-bit key")
        self._aead = AESGCM(key)

    @classmethod
    def open(cls, state_dir: Path) -> "SecretBox":
        """The box for *state_dir*, creating its key file (0600) on first use."""
        path = Path(state_dir) / KEY_FILE
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = AESGCM.generate_key(bit_length=256)
            atomic_write(path, key, mode=0o600)
        if len(key) != 32:
            raise ValueError(f"{path}: not a 32-byte key; restore it from backup")
        return cls(key)

    def seal(self, clear: str) -> str:
        """Encrypt *clear* (a fresh random nonce each time)."""
        nonce = os.urandom(_NONCE_LEN)
        blob = nonce + self._aead.encrypt(nonce, clear.encode("utf-8"), _AAD)
        return PREFIX + base64.urlsafe_b64encode(blob).decode("ascii").rstrip("=")

    def open_text(self, value: str) -> str:
        """Decrypt a value made by :meth:`seal`; RpcError if it is not ours."""
        clear = self._try_open(value)
        if clear is None:
            raise RpcError(
                "invalid-value",
                "the value is not a ciphertext of this agent (wrong format or made with "
                "another key); write the secret as clear text instead",
            )
        return clear

    def is_ciphertext(self, value: str) -> bool:
        """True if *value* is a ciphertext this agent can open."""
        return self._try_open(value) is not None

    def _try_open(self, value: str) -> str | None:
        if not value.startswith(PREFIX):
            return None
        text = value[len(PREFIX):]
        try:
            blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(blob) <= _NONCE_LEN:
            return None
        try:
            return self._aead.decrypt(blob[:_NONCE_LEN], blob[_NONCE_LEN:], _AAD).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            return None
