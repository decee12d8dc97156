"""Shared pieces of the PKIMessage modules: constants of RFC 4210, DER/pyasn1 helpers
and name conversion (RFC 5280 4.1.2.4).

What a client reads (header, names, free text) is read from the DER directly; pyasn1
and RFC 5280's types are imported only by the decoders of what a CA reads
(:func:`decode_der`, :func:`x509_name` of pyasn1 values), so that a client does not pay
for importing them."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from .. import der

#: id-it-implicitConfirm (RFC 4210 5.1.1.1)
OID_IMPLICIT_CONFIRM = "1.3.6.1.5.5.7.4.13"
#: id-it-certProfile (RFC 9480 2.17)
OID_CERT_PROFILE = "1.3.6.1.5.5.7.4.21"
#: id-regCtrl-oldCertID (RFC 4211 6.5)
OID_OLD_CERT_ID = "1.3.6.1.5.5.7.5.1.5"
#: subjectAltName (RFC 5280 4.2.1.6)
OID_SUBJECT_ALT_NAME = "2.5.29.17"

#: id-it-* (RFC 9480 2.3, 2.4, 2.5, 2.18; RFC 4210 5.3.19)
OID_CA_CERTS = "1.3.6.1.5.5.7.4.17"
OID_ROOT_CA_KEY_UPDATE = "1.3.6.1.5.5.7.4.18"
OID_CERT_REQ_TEMPLATE = "1.3.6.1.5.5.7.4.19"
OID_ROOT_CA_CERT = "1.3.6.1.5.5.7.4.20"
OID_CRL_STATUS_LIST = "1.3.6.1.5.5.7.4.22"
OID_CRLS = "1.3.6.1.5.5.7.4.23"

#: the info types a client asks for (names as ``openssl cmp -infotype`` spells them) and
#: the info type of the genp entry that answers each (RFC 9483 4.3.1-4.3.4)
INFO_TYPES: dict[str, tuple[str, str]] = {
    "caCerts": (OID_CA_CERTS, OID_CA_CERTS),
    "rootCaCert": (OID_ROOT_CA_CERT, OID_ROOT_CA_KEY_UPDATE),
    "certReqTemplate": (OID_CERT_REQ_TEMPLATE, OID_CERT_REQ_TEMPLATE),
    "crlStatusList": (OID_CRL_STATUS_LIST, OID_CRLS),
}

PKI_STATUS_NAMES: tuple[str, ...] = (
    "accepted",
    "grantedWithMods",
    "rejection",
    "waiting",
    "revocationWarning",
    "revocationNotification",
    "keyUpdateWarning",
)
#: PKIFailureInfo bit names by bit number (RFC 4210 5.2.3 / RFC 9480)
FAILURE_BIT_NAMES: tuple[str, ...] = (
    "badAlg",
    "badMessageCheck",
    "badRequest",
    "badTime",
    "badCertId",
    "badDataFormat",
    "wrongAuthority",
    "incorrectData",
    "missingTimeStamp",
    "badPOP",
    "certRevoked",
    "certConfirmed",
    "wrongIntegrity",
    "badRecipientNonce",
    "timeNotAvailable",
    "unacceptedPolicy",
    "unacceptedExtension",
    "addInfoNotAvailable",
    "badSenderNonce",
    "badCertTemplate",
    "signerNotTrusted",
    "transactionIdInUse",
    "unsupportedVersion",
    "notAuthorized",
    "systemUnavail",
    "systemFailure",
    "duplicateCertReq",
)

#: certificate request body types and the response type that answers each (RFC 4210 5.3)
RESPONSE_TYPE = {"ir": "ip", "cr": "cp", "kur": "kup", "p10cr": "cp"}


class MessageError(ValueError):
    """Bytes that are not a PKIMessage we can process; the message says why."""


def decode_der(data: bytes, spec):
    """*data* decoded with the pyasn1 *spec*, all of it."""
    from pyasn1.codec.der import decoder
    from pyasn1.error import PyAsn1Error

    try:
        value, rest = decoder.decode(data, asn1Spec=spec)
    except PyAsn1Error as exc:
        raise MessageError(f"cannot decode {type(spec).__name__}: {exc}") from None
    if rest:
        raise MessageError(f"trailing bytes after {type(spec).__name__}")
    return value


def copy_components(target, source) -> None:
    """Copy the components of *source* into the (differently tagged) *target*."""
    from pyasn1.type import univ

    if isinstance(source, univ.Choice):
        name = source.getName()
        target[name] = source[name]
        return
    for name in source.keys():
        if source[name].isValue:
            target[name] = source[name]


def x509_name(value) -> x509.Name:
    """A :class:`x509.Name` from an ``rfc5280.Name`` (or a tagged clone of one)."""
    from pyasn1.codec.der import encoder
    from pyasn1_alt_modules import rfc5280

    untagged = rfc5280.Name()
    copy_components(untagged, value)
    data = encoder.encode(untagged)
    return read_name(data, der.read_tlv(data))


def read_name(data: bytes, item: der.Tlv) -> x509.Name:
    """A :class:`x509.Name` from the DER of a Name (RFC 5280 4.1.2.4) at *item*.

    Attribute values are read as text whatever their string type; equality of
    :class:`x509.Name` compares OIDs and values, which is what header checks need.
    """
    try:
        if item.tag != 0x30:
            raise der.DerError("Name is not a SEQUENCE")
        rdns = []
        for rdn in der.children(data, item):
            if rdn.tag != 0x31:
                raise der.DerError("RelativeDistinguishedName is not a SET")
            attributes = []
            for ava in der.children(data, rdn):
                parts = der.children(data, ava) if ava.tag == 0x30 else []
                if len(parts) != 2:
                    raise der.DerError("AttributeTypeAndValue is not SEQUENCE {type, value}")
                oid, tlv = der.decode_oid(data, parts[0]), parts[1]
                encoding = {30: "utf-16-be", 28: "utf-32-be", 12: "utf-8"}.get(tlv.tag, "latin-1")
                text = data[tlv.content_start : tlv.end].decode(encoding, errors="replace")
                try:
                    attributes.append(x509.NameAttribute(x509.ObjectIdentifier(oid), text))
                except ValueError:  # e.g. a country name that is not two letters
                    attributes.append(x509.NameAttribute(x509.ObjectIdentifier("2.5.4.41"), text))
            if not attributes:
                raise der.DerError("empty RelativeDistinguishedName")
            rdns.append(x509.RelativeDistinguishedName(attributes))
    except der.DerError as exc:
        raise MessageError(f"bad Name: {exc}") from None
    return x509.Name(rdns)


def read_general_name(data: bytes, item: der.Tlv) -> x509.Name | None:
    """The directoryName ([4] EXPLICIT Name) of the GeneralName at *item* (RFC 5280
    4.2.1.6), ``None`` for any other choice."""
    if item.tag & 0xC0 != 0x80 or item.tag & 0x1F > 8:
        raise MessageError(f"bad GeneralName tag 0x{item.tag:02x}")
    if item.tag != 0xA4:
        return None
    try:
        inner = der.read_tlv(data, item.content_start)
    except der.DerError as exc:
        raise MessageError(f"bad directoryName: {exc}") from None
    if inner.end != item.end:
        raise MessageError("bad directoryName: trailing bytes")
    return read_name(data, inner)


def read_free_text(data: bytes, item: der.Tlv) -> tuple[str, ...]:
    """PKIFreeText (RFC 4210 5.1.1: SEQUENCE SIZE (1..MAX) OF UTF8String) at *item*."""
    try:
        strings = der.children(data, item) if item.tag == 0x30 else None
        if not strings or any(s.tag != 0x0C for s in strings):
            raise der.DerError("not a SEQUENCE SIZE (1..MAX) OF UTF8String")
        return tuple(data[s.content_start : s.end].decode("utf-8") for s in strings)
    except (der.DerError, UnicodeDecodeError) as exc:
        raise MessageError(f"bad PKIFreeText: {exc}") from None


def free_text_der(texts: Sequence[str]) -> bytes:
    """DER PKIFreeText (SEQUENCE OF UTF8String)."""
    return der.tlv(0x30, b"".join(der.tlv(0x0C, t.encode()) for t in texts))


def general_name(value) -> x509.Name | None:
    """The directoryName of a pyasn1 GeneralName, ``None`` for any other choice."""
    if value.getName() != "directoryName":
        return None
    return x509_name(value["directoryName"])


def certificate_sequence(data: bytes, sequence: der.Tlv) -> tuple[x509.Certificate, ...]:
    """Certificates of a SEQUENCE OF CMPCertificate, loaded from their own bytes."""
    if sequence.tag != 0x30:
        raise MessageError("SEQUENCE OF certificates expected")
    result = []
    for item in der.children(data, sequence):
        try:
            result.append(x509.load_der_x509_certificate(data[item.start : item.end]))
        except ValueError as exc:
            raise MessageError(f"bad certificate: {exc}") from None
    return tuple(result)
