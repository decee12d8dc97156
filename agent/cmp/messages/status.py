"""PKIStatusInfo (RFC 4210 5.2.3): status, free text and PKIFailureInfo bits."""

from __future__ import annotations

from dataclasses import dataclass

from .. import der
from .common import FAILURE_BIT_NAMES, PKI_STATUS_NAMES, free_text_der


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
    """Read a PKIStatusInfo value."""
    texts = tuple(str(t) for t in value["statusString"]) if value["statusString"].isValue else ()
    bits: tuple[int, ...] = ()
    if value["failInfo"].isValue:
        bits = tuple(i for i, bit in enumerate(value["failInfo"]) if bit)
    return StatusInfo(int(value["status"]), texts, bits)
