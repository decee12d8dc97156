"""Polling: pollReq and pollRep (RFC 4210 5.3.22)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import der
from .common import MessageError, free_text_der, read_free_text
from .header import DecodedMessage


def poll_req_body(cert_req_ids: Sequence[int]) -> bytes:
    """DER of a pollReq body [25] asking about *cert_req_ids* (RFC 4210 5.3.22)."""
    items = b"".join(der.tlv(0x30, der.encode_integer(i)) for i in cert_req_ids)
    return der.tlv(0xB9, der.tlv(0x30, items))


def poll_req_ids(message: DecodedMessage) -> list[int]:
    if message.body_type != "pollReq":
        raise MessageError(f"{message.body_type} is not pollReq")
    return [int(item["certReqId"]) for item in message.body]


@dataclass(frozen=True)
class PollResponse:
    """One entry of a pollRep."""

    cert_req_id: int
    check_after: int
    reason: tuple[str, ...] = ()


def poll_rep_body(entries: Sequence[PollResponse]) -> bytes:
    """DER of a pollRep body [26] (CA side)."""
    items = b""
    for entry in entries:
        item = der.encode_integer(entry.cert_req_id) + der.encode_integer(entry.check_after)
        if entry.reason:
            item += free_text_der(entry.reason)
        items += der.tlv(0x30, item)
    return der.tlv(0xBA, der.tlv(0x30, items))


def poll_responses(message: DecodedMessage) -> list[PollResponse]:
    if message.body_type != "pollRep":
        raise MessageError(f"{message.body_type} is not pollRep")
    # PollRepContent ::= SEQUENCE OF SEQUENCE { certReqId INTEGER, checkAfter INTEGER,
    #                                           reason PKIFreeText OPTIONAL }
    data, items = message.content_fields()
    result = []
    for item in items:
        try:
            fields = der.children(data, item) if item.tag == 0x30 else []
            if len(fields) not in (2, 3):
                raise der.DerError("not SEQUENCE { certReqId, checkAfter, reason OPTIONAL }")
            reason = read_free_text(data, fields[2]) if len(fields) == 3 else ()
            result.append(PollResponse(der.integer(data, fields[0]),
                                       der.integer(data, fields[1]), reason))
        except der.DerError as exc:
            raise MessageError(f"malformed pollRep: {exc}") from None
    return result
