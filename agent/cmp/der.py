"""Minimal DER TLV walking (X.690 8.1), used to keep the bytes of a message as received.

PKIProtection (RFC 4210 5.1.3) is computed over the DER of ``ProtectedPart ::=
SEQUENCE { header, body }``. Re-encoding a decoded message may change bytes (for
example an empty ``extraCerts`` is dropped, or a non-canonical sender encoding is
normalised), so the protected part is rebuilt from the received header and body bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


class DerError(ValueError):
    """The input is not the DER structure expected."""


@dataclass(frozen=True)
class Tlv:
    """One TLV: its identifier octet, and its offsets in the buffer."""

    tag: int
    start: int
    content_start: int
    end: int


def read_tlv(data: bytes, offset: int = 0) -> Tlv:
    """Read the TLV starting at *offset* (single-octet tags, definite lengths only)."""
    if offset + 2 > len(data):
        raise DerError("truncated DER")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-octet tags are not used in PKIMessage")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 4 or pos + count > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError("truncated DER")
    return Tlv(tag, offset, pos, end)


def encode_length(length: int) -> bytes:
    """DER length octets (X.690 8.1.3)."""
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    """Encode one TLV with a single-octet *tag*."""
    return bytes([tag]) + encode_length(len(content)) + content


def encode_integer(value: int) -> bytes:
    """A DER INTEGER (X.690 8.3)."""
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


@functools.lru_cache(maxsize=256)
def encode_oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER (X.690 8.19)."""
    arcs = [int(arc) for arc in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2:
        raise DerError(f"bad OID {dotted}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def decode_oid(data: bytes, item: Tlv) -> str:
    """The dotted form of a DER OBJECT IDENTIFIER."""
    if item.tag != 0x06 or item.content_start == item.end:
        raise DerError("OBJECT IDENTIFIER expected")
    arcs, value = [], 0
    for octet in data[item.content_start : item.end]:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    if data[item.end - 1] & 0x80:
        raise DerError("truncated OBJECT IDENTIFIER")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def children(data: bytes, parent: Tlv) -> list[Tlv]:
    """The TLVs directly inside the constructed *parent*."""
    result, pos = [], parent.content_start
    while pos < parent.end:
        child = read_tlv(data, pos)
        if child.end > parent.end:
            raise DerError("element overruns its parent")
        result.append(child)
        pos = child.end
    return result


def integer(data: bytes, item: Tlv) -> int:
    """The value of a DER INTEGER."""
    if item.tag != 0x02 or item.content_start == item.end:
        raise DerError("INTEGER expected")
    return int.from_bytes(data[item.content_start : item.end], "big", signed=True)


def protected_part(message: bytes) -> bytes:
    """The DER of ``ProtectedPart`` built from *message*'s header and body bytes as received."""
    outer = read_tlv(message)
    if outer.tag != 0x30 or outer.end != len(message):
        raise DerError("a PKIMessage is one DER SEQUENCE")
    header = read_tlv(message, outer.content_start)
    if header.tag != 0x30:
        raise DerError("PKIHeader is not a SEQUENCE")
    body = read_tlv(message, header.end)
    content = message[header.start : body.end]
    return b"\x30" + encode_length(len(content)) + content
