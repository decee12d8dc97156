"""PKIHeader and the PKIMessage envelope (RFC 4210 5.1, 5.1.1): building a message from
its header fields and body, and decoding a received one with its bytes kept for the
protection check (RFC 4210 5.1.3)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyasn1.error import PyAsn1Error

from .. import der
from . import asn1
from .asn1 import BODY_TYPES
from .common import (
    OID_CERT_PROFILE,
    OID_IMPLICIT_CONFIRM,
    MessageError,
    certificate_sequence,
    decode_der,
    general_name,
)
from .protection import ProtectionAlgorithm, Protector


@dataclass(frozen=True)
class HeaderFields:
    """The PKIHeader fields we set (RFC 4210 5.1.1); protectionAlg comes from the Protector."""

    sender: x509.Name
    recipient: x509.Name
    transaction_id: bytes
    sender_nonce: bytes
    message_time: datetime | None = None
    recip_nonce: bytes | None = None
    implicit_confirm: bool = False
    pvno: int = 2
    #: certProfile (RFC 9480 2.17): the name of the certificate profile asked for
    cert_profile: str | None = None
    #: senderKID when no Protector supplies one (an unprotected message)
    sender_kid: bytes | None = None


def encode_header(
    fields: HeaderFields, algorithm: ProtectionAlgorithm | None, sender_kid: bytes | None
) -> bytes:
    """DER PKIHeader (RFC 4210 5.1.1; the module uses EXPLICIT tags throughout)."""

    def tagged(number: int, content: bytes) -> bytes:
        return der.tlv(0xA0 | number, content)

    out = der.encode_integer(fields.pvno)
    out += tagged(4, fields.sender.public_bytes())  # GeneralName directoryName [4]
    out += tagged(4, fields.recipient.public_bytes())
    if fields.message_time is not None:
        stamp = fields.message_time.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")
        out += tagged(0, der.tlv(0x18, stamp.encode()))
    if algorithm is not None:
        out += tagged(1, algorithm.encode())
    if sender_kid is not None:
        out += tagged(2, der.tlv(0x04, sender_kid))
    out += tagged(4, der.tlv(0x04, fields.transaction_id))
    out += tagged(5, der.tlv(0x04, fields.sender_nonce))
    if fields.recip_nonce is not None:
        out += tagged(6, der.tlv(0x04, fields.recip_nonce))
    general_info = b""
    if fields.implicit_confirm:
        general_info += der.tlv(0x30, der.encode_oid(OID_IMPLICIT_CONFIRM) + b"\x05\x00")
    if fields.cert_profile is not None:  # CertProfileValue: SEQUENCE OF UTF8String
        profile = der.tlv(0x30, der.tlv(0x0C, fields.cert_profile.encode()))
        general_info += der.tlv(0x30, der.encode_oid(OID_CERT_PROFILE) + profile)
    if general_info:
        out += tagged(8, der.tlv(0x30, general_info))
    return der.tlv(0x30, out)


def encode_message(
    fields: HeaderFields,
    body: bytes,
    protector: Protector | None,
    extra_certs: Sequence[x509.Certificate] = (),
) -> bytes:
    """The DER of a PKIMessage; protected by *protector* unless it is ``None``.

    *body* is the DER of a PKIBody alternative, as returned by the ``*_body`` builders.

    Header and body are encoded once; ProtectedPart and PKIMessage are assembled from
    those bytes (RFC 4210 5.1.3), and extraCerts are the certificates' own DER.
    """
    algorithm = protector.algorithm() if protector is not None else None
    kid = protector.sender_kid() if protector is not None else fields.sender_kid
    header_der = encode_header(fields, algorithm, kid)
    content = header_der + body
    if protector is not None:
        value = protector.protect(algorithm, der.tlv(0x30, content))
        content += der.tlv(0xA0, der.tlv(0x03, b"\x00" + value))  # [0] PKIProtection
    certs = [*(protector.extra_certs() if protector is not None else ()), *extra_certs]
    if certs:
        encoded = b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)
        content += der.tlv(0xA1, der.tlv(0x30, encoded))  # [1] extraCerts
    return der.tlv(0x30, content)




@dataclass(frozen=True)
class DecodedMessage:
    """A PKIMessage as received. ``raw`` is kept for protection checks; ``body`` (the
    pyasn1 value of the chosen PKIBody alternative) is decoded on first use."""

    raw: bytes
    pvno: int
    sender: x509.Name | None  # None when the sender is not a directoryName
    recipient: x509.Name | None
    transaction_id: bytes | None
    sender_nonce: bytes | None
    recip_nonce: bytes | None
    sender_kid: bytes | None
    message_time: datetime | None
    protection_alg: ProtectionAlgorithm | None
    implicit_confirm: bool
    body_type: str
    body_der: bytes
    protection: bytes | None
    extra_certs: tuple[x509.Certificate, ...]
    free_text: tuple[str, ...] = ()
    cert_profile: str | None = None

    @property
    def protected_part(self) -> bytes:
        """ProtectedPart DER from the bytes as received (RFC 4210 5.1.3)."""
        return der.protected_part(self.raw)

    def content(self, spec):
        """The body's content (inside its [n] tag) decoded with *spec*, one of :mod:`.asn1`."""
        try:
            tlv = der.read_tlv(self.body_der)
            inner = der.read_tlv(self.body_der, tlv.content_start)
            if inner.end != tlv.end:
                raise der.DerError("trailing bytes in the body")
        except der.DerError as exc:
            raise MessageError(f"malformed {self.body_type}: {exc}") from None
        return decode_der(self.body_der[inner.start : inner.end], spec)

    @functools.cached_property
    def body(self):
        from pyasn1_alt_modules import rfc9480  # the whole of CMP: imported when first needed

        value = decode_der(self.body_der, rfc9480.PKIBody())
        return value[self.body_type]


def optional_octets(header, name) -> bytes | None:
    value = header[name]
    return value.asOctets() if value.isValue else None


def decode_message(data: bytes) -> DecodedMessage:
    """Decode a PKIMessage; raise :class:`MessageError` when *data* is not one."""
    try:
        outer = der.read_tlv(data)
        if outer.tag != 0x30 or outer.end != len(data):
            raise der.DerError("a PKIMessage is one DER SEQUENCE")
        parts = der.children(data, outer)
        if len(parts) < 2 or parts[0].tag != 0x30 or parts[1].tag & 0xE0 != 0xA0:
            raise der.DerError("header and body expected")
        protection_value = None
        extra: tuple[x509.Certificate, ...] = ()
        for part in parts[2:]:
            if part.tag == 0xA0:
                bits = der.read_tlv(data, part.content_start)
                if bits.tag != 0x03 or bits.end != part.end or data[bits.content_start] != 0:
                    raise der.DerError("bad PKIProtection BIT STRING")
                protection_value = data[bits.content_start + 1 : bits.end]
            elif part.tag == 0xA1:
                extra = certificate_sequence(data, der.read_tlv(data, part.content_start))
            else:
                raise der.DerError(f"unexpected element tag 0x{part.tag:02x}")
    except der.DerError as exc:
        raise MessageError(f"not a PKIMessage: {exc}") from None
    header = decode_der(data[parts[0].start : parts[0].end], asn1.PKIHeader())
    body_tlv = parts[1]
    body_type = BODY_TYPES.get(body_tlv.tag & 0x1F)
    if body_type is None:
        raise MessageError(f"unknown PKIBody type [{body_tlv.tag & 0x1F}]")
    time_value = header["messageTime"]
    message_time = None
    if time_value.isValue:
        try:
            message_time = time_value.asDateTime.astimezone(timezone.utc)
        except (PyAsn1Error, ValueError):
            raise MessageError(f"bad messageTime {time_value}") from None
    alg = None
    if header["protectionAlg"].isValue:
        params = header["protectionAlg"]["parameters"]
        alg = ProtectionAlgorithm(
            str(header["protectionAlg"]["algorithm"]),
            params.asOctets() if params.isValue else None,
        )
    implicit = False
    cert_profile = None
    if header["generalInfo"].isValue:
        implicit = any(str(i["infoType"]) == OID_IMPLICIT_CONFIRM for i in header["generalInfo"])
        for info in header["generalInfo"]:
            if str(info["infoType"]) == OID_CERT_PROFILE and info["infoValue"].isValue:
                # CertProfileValue: SEQUENCE SIZE (1..MAX) OF UTF8String, as PKIFreeText
                names = decode_der(info["infoValue"].asOctets(), asn1.PKIFreeText())
                cert_profile = str(names[0]) if len(names) else None
    free_text = tuple(str(t) for t in header["freeText"]) if header["freeText"].isValue else ()
    return DecodedMessage(
        raw=data,
        pvno=int(header["pvno"]),
        sender=general_name(header["sender"]),
        recipient=general_name(header["recipient"]),
        transaction_id=optional_octets(header, "transactionID"),
        sender_nonce=optional_octets(header, "senderNonce"),
        recip_nonce=optional_octets(header, "recipNonce"),
        sender_kid=optional_octets(header, "senderKID"),
        message_time=message_time,
        protection_alg=alg,
        implicit_confirm=implicit,
        body_type=body_type,
        body_der=data[body_tlv.start : body_tlv.end],
        protection=protection_value,
        extra_certs=extra,
        free_text=free_text,
        cert_profile=cert_profile,
    )
