"""The error message: ErrorMsgContent (RFC 4210 5.3.21)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import der
from . import asn1
from .common import MessageError, free_text_der
from .header import DecodedMessage
from .status import StatusInfo, encode_status_info, status_info


@dataclass(frozen=True)
class ErrorContent:
    """ErrorMsgContent (RFC 4210 5.3.21)."""

    status: StatusInfo
    error_code: int | None = None
    details: tuple[str, ...] = ()


def error_body(content: ErrorContent) -> bytes:
    """DER of an error body [23] (RFC 4210 5.3.21)."""
    out = encode_status_info(content.status)
    if content.error_code is not None:
        out += der.encode_integer(content.error_code)
    if content.details:
        out += free_text_der(content.details)
    return der.tlv(0xB7, der.tlv(0x30, out))


def error_content(message: DecodedMessage) -> ErrorContent:
    if message.body_type != "error":
        raise MessageError(f"{message.body_type} is not error")
    value = message.content(asn1.ErrorMsgContent())
    return ErrorContent(
        status_info(value["pKIStatusInfo"]),
        int(value["errorCode"]) if value["errorCode"].isValue else None,
        tuple(str(t) for t in value["errorDetails"]) if value["errorDetails"].isValue else (),
    )
