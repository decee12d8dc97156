"""Revocation: rr and rp (RFC 4210 5.3.9/5.3.10, Lightweight CMP RFC 9483 4.2).

RFC 9483 4.2: one RevDetails whose certDetails hold only the issuer and serial number
of the certificate to revoke, and whose crlEntryDetails hold the reasonCode extension
(RFC 5280 5.3.1); the rp holds one PKIStatusInfo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from .. import der
from .common import MessageError, decode_der, x509_name
from .header import DecodedMessage
from .status import StatusInfo, encode_status_info, read_status_info

#: id-ce-cRLReasons (RFC 5280 5.3.1)
OID_CRL_REASON = "2.5.29.21"
#: CRLReason (RFC 5280 5.3.1) by value; 7 is not used
CRL_REASONS: dict[int, str] = {
    0: "unspecified",
    1: "keyCompromise",
    2: "cACompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    6: "certificateHold",
    8: "removeFromCRL",
    9: "privilegeWithdrawn",
    10: "aACompromise",
}


@dataclass(frozen=True)
class RevocationDetails:
    """What an rr asks: revoke the certificate (issuer, serial) for *reason*."""

    issuer: x509.Name
    serial: int
    reason: int | None = None  # CRLReason; None: no reasonCode


def rr_body(details: Sequence[RevocationDetails]) -> bytes:
    """DER of an rr body [11] (RFC 4210 5.3.9; CertTemplate fields IMPLICIT, the issuer
    Name CHOICE EXPLICIT)."""
    items = b""
    for item in details:
        if item.reason is not None and item.reason not in CRL_REASONS:
            raise ValueError(f"{item.reason} is not a CRLReason (RFC 5280 5.3.1)")
        serial = b"\x81" + der.encode_integer(item.serial)[1:]  # serialNumber [1] IMPLICIT
        template = serial + der.tlv(0xA3, item.issuer.public_bytes())  # issuer [3] (a CHOICE)
        out = der.tlv(0x30, template)
        if item.reason is not None:
            reason = der.tlv(0x04, der.tlv(0x0A, bytes([item.reason])))
            out += der.tlv(0x30, der.tlv(0x30, der.encode_oid(OID_CRL_REASON) + reason))
        items += der.tlv(0x30, out)
    return der.tlv(0xAB, der.tlv(0x30, items))


def revocation_requests(message: DecodedMessage) -> list[RevocationDetails]:
    """The RevDetails of an rr (CA side, and our round-trip tests)."""
    if message.body_type != "rr":
        raise MessageError(f"{message.body_type} is not rr")
    from pyasn1_alt_modules import rfc5280  # only a CA reads requests

    result = []
    for details in message.body:
        template = details["certDetails"]
        if not (template["issuer"].isValue and template["serialNumber"].isValue):
            raise MessageError("certDetails need issuer and serialNumber (RFC 9483 4.2)")
        reason = None
        if details["crlEntryDetails"].isValue:
            for ext in details["crlEntryDetails"]:
                if str(ext["extnID"]) == OID_CRL_REASON:
                    value = decode_der(ext["extnValue"].asOctets(), rfc5280.CRLReason())
                    reason = int(value)
        result.append(RevocationDetails(x509_name(template["issuer"]),
                                        int(template["serialNumber"]), reason))
    return result


@dataclass(frozen=True)
class RevocationResponse:
    """RevRepContent (RFC 4210 5.3.10): one status per RevDetails."""

    statuses: tuple[StatusInfo, ...]
    revoked: tuple[tuple[x509.Name | None, int], ...] = ()


def rp_body(response: RevocationResponse) -> bytes:
    """DER of an rp body [12] (CA side)."""
    out = der.tlv(0x30, b"".join(encode_status_info(s) for s in response.statuses))
    if response.revoked:
        ids = b"".join(
            der.tlv(0x30, der.tlv(0xA4, issuer.public_bytes()) + der.encode_integer(serial))
            for issuer, serial in response.revoked if issuer is not None
        )
        out += der.tlv(0xA0, der.tlv(0x30, ids))  # revCerts [0] SEQUENCE OF CertId
    return der.tlv(0xAC, der.tlv(0x30, out))


def revocation_response(message: DecodedMessage) -> RevocationResponse:
    """Read an rp (RFC 4210 5.3.10)."""
    if message.body_type != "rp":
        raise MessageError(f"{message.body_type} is not rp")
    data = message.body_der
    try:
        content = der.read_tlv(data, der.read_tlv(data).content_start)
        fields = der.children(data, content)
        if not fields or fields[0].tag != 0x30:
            raise der.DerError("RevRepContent needs its status")
        statuses = tuple(read_status_info(data, s) for s in der.children(data, fields[0]))
    except der.DerError as exc:
        raise MessageError(f"malformed rp: {exc}") from None
    if not statuses:
        raise MessageError("rp without a status")
    return RevocationResponse(statuses)
