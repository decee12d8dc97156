"""The error message: ErrorMsgContent (RFC 4210 5.3.21)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import der
from .common import MessageError, free_text_der, read_free_text
from .header import DecodedMessage
from .status import StatusInfo, encode_status_info, read_status_info


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
    # ErrorMsgContent ::= SEQUENCE { pKIStatusInfo, errorCode INTEGER OPTIONAL,
    #                                 errorDetails PKIFreeText OPTIONAL }
    data, fields = message.content_fields()
    if not fields:
        raise MessageError("malformed error: no PKIStatusInfo")
    code, details, rest = None, (), fields[1:]
    try:
        if rest and rest[0].tag == 0x02:
            code, rest = der.integer(data, rest[0]), rest[1:]
        if rest and rest[0].tag == 0x30:
            details, rest = read_free_text(data, rest[0]), rest[1:]
    except der.DerError as exc:
        raise MessageError(f"malformed error: {exc}") from None
    if rest:
        raise MessageError(f"malformed error: unexpected element tag 0x{rest[0].tag:02x}")
    return ErrorContent(read_status_info(data, fields[0]), code, details)
