"""Byte-level mutation of protocol messages, reproducible from a seed.

Each mutation applies one to four of: bit flips, interesting byte values,
deleted, duplicated or inserted ranges, truncation, length fields nudged (DER
and chunk sizes), and splices of tokens of the protocol (XML tags, framing
markers, DER headers).
"""

from __future__ import annotations

import random

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF, 0x3C, 0x3E, 0x26, 0x0A)


class Mutator:
    def __init__(self, rng: random.Random, tokens: tuple[bytes, ...] = ()):
        self.rng = rng
        self.tokens = tokens

    def mutate(self, data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 4)):
            getattr(self, self.rng.choice(_STRATEGIES))(out)
        return bytes(out)

    def _pos(self, out: bytearray) -> int:
        return self.rng.randrange(len(out) + 1)

    def flip(self, out: bytearray) -> None:
        if out:
            i = self.rng.randrange(len(out))
            out[i] ^= 1 << self.rng.randrange(8)

    def interesting(self, out: bytearray) -> None:
        if out:
            out[self.rng.randrange(len(out))] = self.rng.choice(_INTERESTING)

    def delete(self, out: bytearray) -> None:
        if out:
            i = self.rng.randrange(len(out))
            del out[i:i + self.rng.randint(1, 64)]

    def duplicate(self, out: bytearray) -> None:
        if out:
            i = self.rng.randrange(len(out))
            chunk = out[i:i + self.rng.randint(1, 256)]
            out[i:i] = chunk * self.rng.choice((1, 2, 16))

    def insert(self, out: bytearray) -> None:
        out[self._pos(out):0] = self.rng.randbytes(self.rng.randint(1, 16))

    def truncate(self, out: bytearray) -> None:
        if out:
            del out[self.rng.randrange(len(out)):]

    def nudge(self, out: bytearray) -> None:
        """A length-like byte or number off by a little or a lot."""
        if out:
            i = self.rng.randrange(len(out))
            out[i] = (out[i] + self.rng.choice((-1, 1, 2, 0x40, 0x80))) & 0xFF

    def splice(self, out: bytearray) -> None:
        if self.tokens:
            token = self.rng.choice(self.tokens)
            pos = self._pos(out)
            out[pos:pos + self.rng.choice((0, len(token)))] = token


_STRATEGIES = ("flip", "interesting", "delete", "duplicate", "insert", "truncate", "nudge",
               "splice")
