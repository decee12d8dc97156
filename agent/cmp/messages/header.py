"""PKIHeader and the PKIMessage envelope (RFC 4210 5.1, 5.1.1): building a message from
its header fields and body, and decoding a received one with its bytes kept for the
protection check (RFC 4210 5.1.3)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import der
from .common import (
    OID_CERT_PROFILE,
    OID_IMPLICIT_CONFIRM,
    MessageError,
    certificate_sequence,
    decode_der,
    read_free_text,
    read_general_name,
)
from .protection import ProtectionAlgorithm, Protector, decode_algorithm


@dataclass(frozen=True)
class HeaderFields:
    """The PKIHeader fields we set (RFC 4210 5.1.1); protectionAlg comes from the Protector."""

    sender: x509.Name
    recipient: x509.Name
    #: None only in an error message about a request that could not be read (CA side)
    transaction_id: bytes | None
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
    if fields.transaction_id is not None:
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

    def content_fields(self) -> tuple[bytes, list[der.Tlv]]:
        """The body's bytes and the elements of its content, the SEQUENCE inside its [n] tag."""
        try:
            tlv = der.read_tlv(self.body_der)
            inner = der.read_tlv(self.body_der, tlv.content_start)
            if inner.end != tlv.end or inner.tag != 0x30:
                raise der.DerError("the body's content is not one SEQUENCE")
            return self.body_der, der.children(self.body_der, inner)
        except der.DerError as exc:
            raise MessageError(f"malformed {self.body_type}: {exc}") from None

    @functools.cached_property
    def body(self):
        from pyasn1_alt_modules import rfc9480  # the whole of CMP: imported when first needed

        value = decode_der(self.body_der, rfc9480.PKIBody())
        return value[self.body_type]


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
    header = _read_header(data, parts[0])
    body_tlv = parts[1]
    body_type = BODY_TYPES.get(body_tlv.tag & 0x1F)
    if body_type is None:
        raise MessageError(f"unknown PKIBody type [{body_tlv.tag & 0x1F}]")
    return DecodedMessage(raw=data, **header, body_type=body_type,
                          body_der=data[body_tlv.start : body_tlv.end],
                          protection=protection_value, extra_certs=extra)


#: PKIBody alternatives by context tag number (RFC 4210 5.1.2, RFC 9480 2.2)
BODY_TYPES: dict[int, str] = dict(enumerate((
    "ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr", "krp",
    "rr", "rp", "ccr", "ccp", "ckuann", "cann", "rann", "crlann", "pkiconf", "nested",
    "genm", "genp", "error", "certConf", "pollReq", "pollRep",
)))

#: the OCTET STRING fields of PKIHeader by their [n] EXPLICIT tag (RFC 4210 5.1.1)
_OCTET_FIELDS = {2: "sender_kid", 3: None, 4: "transaction_id", 5: "sender_nonce",
                 6: "recip_nonce"}  # recipKID [3] is read and not kept
#: GeneralizedTime in DER (X.690 11.7): seconds, optional fraction without trailing zeros, Z
_GENERALIZED_TIME = re.compile(r"(\d{14})(?:\.(\d*[1-9]))?Z")


def _read_header(data: bytes, item: der.Tlv) -> dict:
    """The fields of the PKIHeader at *item* (RFC 4210 5.1.1, pvno cmp2021(3) of RFC
    9480), read from the DER: SEQUENCE { pvno, sender, recipient, then [0] to [8]
    EXPLICIT, each optional, in order }."""
    fields: dict = {"message_time": None, "protection_alg": None, "implicit_confirm": False,
                    "free_text": (), "cert_profile": None, "sender_kid": None,
                    "transaction_id": None, "sender_nonce": None, "recip_nonce": None}
    try:
        elements = der.children(data, item)
        if len(elements) < 3:
            raise der.DerError("pvno, sender and recipient expected")
        fields["pvno"] = der.integer(data, elements[0])
        fields["sender"] = read_general_name(data, elements[1])
        fields["recipient"] = read_general_name(data, elements[2])
        last = -1
        for element in elements[3:]:
            number = element.tag - 0xA0
            if not last < number <= 8:
                raise der.DerError(f"unexpected element tag 0x{element.tag:02x}")
            last = number
            inner = der.read_tlv(data, element.content_start)
            if inner.end != element.end:
                raise der.DerError(f"trailing bytes in [{number}]")
            if number == 0:
                fields["message_time"] = _generalized_time(data, inner)
            elif number == 1:
                oid, params = decode_algorithm(data, inner)
                fields["protection_alg"] = ProtectionAlgorithm(
                    oid, data[params.start : params.end] if params is not None else None)
            elif number in _OCTET_FIELDS:
                if inner.tag != 0x04:
                    raise der.DerError(f"[{number}] is not an OCTET STRING")
                if _OCTET_FIELDS[number]:
                    fields[_OCTET_FIELDS[number]] = data[inner.content_start : inner.end]
            elif number == 7:
                fields["free_text"] = read_free_text(data, inner)
            else:  # [8] generalInfo SEQUENCE SIZE (1..MAX) OF InfoTypeAndValue
                infos = der.children(data, inner) if inner.tag == 0x30 else []
                if not infos:
                    raise der.DerError("generalInfo is not a SEQUENCE of InfoTypeAndValue")
                for info in infos:
                    _general_info(data, info, fields)
    except der.DerError as exc:
        raise MessageError(f"bad PKIHeader: {exc}") from None
    return fields


def _generalized_time(data: bytes, item: der.Tlv) -> datetime:
    match = _GENERALIZED_TIME.fullmatch(data[item.content_start : item.end].decode("latin-1"))
    if item.tag != 0x18 or match is None:
        raise MessageError(f"bad messageTime {data[item.content_start : item.end]!r}")
    digits = match.group(1)
    micro = int((match.group(2) or "0")[:6].ljust(6, "0"))
    try:  # the fields by position (strptime's import and regular expressions cost more)
        return datetime(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]),
                        int(digits[10:12]), int(digits[12:14]), micro, timezone.utc)
    except ValueError:
        raise MessageError(f"bad messageTime {match.group(0)}") from None


def _general_info(data: bytes, item: der.Tlv, fields: dict) -> None:
    """One InfoTypeAndValue of generalInfo: implicitConfirm and certProfile are read."""
    parts = der.children(data, item) if item.tag == 0x30 else []
    if len(parts) not in (1, 2):
        raise der.DerError("InfoTypeAndValue is not SEQUENCE { infoType, infoValue }")
    info_type = der.decode_oid(data, parts[0])
    if info_type == OID_IMPLICIT_CONFIRM:
        fields["implicit_confirm"] = True
    elif info_type == OID_CERT_PROFILE and len(parts) == 2:
        # CertProfileValue: SEQUENCE SIZE (1..MAX) OF UTF8String, as PKIFreeText
        fields["cert_profile"] = read_free_text(data, parts[1])[0]
