"""PKIStatusInfo (RFC 4210 5.2.3): status, free text and PKIFailureInfo bits."""

from __future__ import annotations

from dataclasses import dataclass

from .. import der
from .common import FAILURE_BIT_NAMES, PKI_STATUS_NAMES, MessageError, free_text_der, read_free_text


@dataclass(frozen=True)
class StatusInfo:
    """PKIStatusInfo (RFC 4210 5.2.3) in plain Python."""

    status: int
    texts: tuple[str, ...] = ()
    failure_bits: tuple[int, ...] = ()

    @property
    def status_name(self) -> str:
        if 0 <= self.status < len(PKI_STATUS_NAMES):
            return PKI_STATUS_NAMES[self.status]
        return f"status{self.status}"

    @property
    def failure_names(self) -> tuple[str, ...]:
        return tuple(
            FAILURE_BIT_NAMES[b] if b < len(FAILURE_BIT_NAMES) else f"bit{b}"
            for b in self.failure_bits
        )


def encode_status_info(info: StatusInfo) -> bytes:
    """DER PKIStatusInfo; failInfo as a named BIT STRING without trailing zero bits."""
    out = der.encode_integer(info.status)
    if info.texts:
        out += free_text_der(info.texts)
    if info.failure_bits:
        size = max(info.failure_bits) + 1
        value = 0
        for bit in info.failure_bits:
            value |= 1 << (size - 1 - bit)
        octets = (size + 7) // 8
        unused = octets * 8 - size
        out += der.tlv(0x03, bytes([unused]) + (value << unused).to_bytes(octets, "big"))
    return der.tlv(0x30, out)


def status_info(value) -> StatusInfo:
    """A pyasn1 PKIStatusInfo value (what a CA decodes with the full modules) in plain Python."""
    from pyasn1.codec.der import encoder

    data = encoder.encode(value)
    return read_status_info(data, der.read_tlv(data))


def read_status_info(data: bytes, item: der.Tlv) -> StatusInfo:
    """The PKIStatusInfo at *item*: SEQUENCE { status INTEGER, statusString PKIFreeText
    OPTIONAL, failInfo BIT STRING OPTIONAL }."""
    try:
        fields = der.children(data, item) if item.tag == 0x30 else []
        if not fields:
            raise der.DerError("not a SEQUENCE starting with the status")
        status = der.integer(data, fields[0])
        rest = fields[1:]
        texts: tuple[str, ...] = ()
        if rest and rest[0].tag == 0x30:
            texts = read_free_text(data, rest[0])
            rest = rest[1:]
        bits: tuple[int, ...] = ()
        if rest and rest[0].tag == 0x03:
            bits = _bit_numbers(data, rest[0])
            rest = rest[1:]
        if rest:
            raise der.DerError(f"unexpected element tag 0x{rest[0].tag:02x}")
    except der.DerError as exc:
        raise MessageError(f"bad PKIStatusInfo: {exc}") from None
    return StatusInfo(status, texts, bits)


def _bit_numbers(data: bytes, item: der.Tlv) -> tuple[int, ...]:
    """The numbers of the bits set in the BIT STRING at *item* (X.690 8.6)."""
    content = data[item.content_start : item.end]
    if not content or content[0] > 7 or (len(content) == 1 and content[0]):
        raise der.DerError("bad BIT STRING")
    size = (len(content) - 1) * 8 - content[0]
    value = int.from_bytes(content[1:], "big") >> content[0]
    return tuple(i for i in range(size) if value >> (size - 1 - i) & 1)
