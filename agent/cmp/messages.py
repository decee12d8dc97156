"""Building and decoding PKIMessages (RFC 4210 5.1, 5.3 as updated by RFC 9480; CRMF RFC 4211).

Both sides of a CMP exchange use this module: the client builds requests (ir, cr, kur,
certConf, pollReq) and reads responses (ip, cp, kup, pkiConf, pollRep, error); a test
CA (issue 4) can build responses with :func:`cert_rep_body`, :func:`pki_conf_body`,
:func:`poll_rep_body` and :func:`error_body` and read requests with
:func:`decode_message` and :func:`cert_requests`.

Every message is built from a :class:`HeaderFields` and a PKIBody by
:func:`encode_message`, which applies a :class:`Protector`. Building writes DER
directly (the tagging of the ASN.1 modules, EXPLICIT for CMP and IMPLICIT for CRMF, is
spelled out at each field); it is several times faster than building pyasn1 objects,
and the tests check every builder against pyasn1's decoder and against OpenSSL (its
mock server reads our requests, its client our ip and error bodies). Decoding uses
the pyasn1-alt-modules specs (rfc9480, rfc4211, rfc5280), except for the outer
structure, certificate responses and PBMParameter, which are walked directly so that
certificates are loaded from their own bytes. A :class:`DecodedMessage` keeps the
bytes as received, so that protection is verified over them
(:func:`agent.cmp.der.protected_part`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_alt_modules import rfc4211, rfc5280, rfc9480

from . import der, protection
from .protection import PbmParameters, PrivateKey

#: id-it-implicitConfirm (RFC 4210 5.1.1.1)
OID_IMPLICIT_CONFIRM = "1.3.6.1.5.5.7.4.13"
#: id-regCtrl-oldCertID (RFC 4211 6.5)
OID_OLD_CERT_ID = "1.3.6.1.5.5.7.5.1.5"
#: subjectAltName (RFC 5280 4.2.1.6)
OID_SUBJECT_ALT_NAME = "2.5.29.17"

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

#: request body types and the response type that answers each (RFC 4210 5.3)
RESPONSE_TYPE = {"ir": "ip", "cr": "cp", "kur": "kup"}


class MessageError(ValueError):
    """Bytes that are not a PKIMessage we can process; the message says why."""


# ---------------------------------------------------------------------------
# small conversions between cryptography objects and pyasn1 values


def _decode(data: bytes, spec):
    try:
        value, rest = decoder.decode(data, asn1Spec=spec)
    except PyAsn1Error as exc:
        raise MessageError(f"cannot decode {type(spec).__name__}: {exc}") from None
    if rest:
        raise MessageError(f"trailing bytes after {type(spec).__name__}")
    return value


def _copy_components(target, source) -> None:
    """Copy the components of *source* into the (differently tagged) *target*."""
    if isinstance(source, univ.Choice):
        name = source.getName()
        target[name] = source[name]
        return
    for name in source.keys():
        if source[name].isValue:
            target[name] = source[name]


def x509_name(value) -> x509.Name:
    """A :class:`x509.Name` from an ``rfc5280.Name`` (or a tagged clone of one).

    Attribute values are read as text whatever their string type; equality of
    :class:`x509.Name` compares OIDs and values, which is what header checks need.
    """
    untagged = rfc5280.Name()
    _copy_components(untagged, value)
    rdns = []
    for rdn in untagged["rdnSequence"]:
        attributes = []
        for ava in rdn:
            raw = ava["value"].asOctets()
            tlv = der.read_tlv(raw)
            encoding = {30: "utf-16-be", 28: "utf-32-be", 12: "utf-8"}.get(tlv.tag, "latin-1")
            text = raw[tlv.content_start : tlv.end].decode(encoding, errors="replace")
            attribute_oid = x509.ObjectIdentifier(str(ava["type"]))
            try:
                attributes.append(x509.NameAttribute(attribute_oid, text))
            except ValueError:  # e.g. a country name that is not two letters
                attributes.append(x509.NameAttribute(x509.ObjectIdentifier("2.5.4.41"), text))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _free_text(texts: Sequence[str]) -> bytes:
    """DER PKIFreeText (SEQUENCE OF UTF8String)."""
    return der.tlv(0x30, b"".join(der.tlv(0x0C, t.encode()) for t in texts))


# ---------------------------------------------------------------------------
# protection


@dataclass(frozen=True)
class ProtectionAlgorithm:
    """``protectionAlg``: an OID and its DER parameters (PBMParameter for a MAC)."""

    oid: str
    parameters: bytes | None = None

    def encode(self) -> bytes:
        """The DER of this AlgorithmIdentifier."""
        return encode_algorithm(self.oid, self.parameters)


def encode_algorithm(oid: str, parameters: bytes | None = None) -> bytes:
    """DER AlgorithmIdentifier (RFC 5280 4.1.1.2)."""
    return der.tlv(0x30, der.encode_oid(oid) + (parameters or b""))


class Protector(Protocol):
    """Computes PKIProtection for messages we send (RFC 4210 5.1.3)."""

    def algorithm(self) -> ProtectionAlgorithm:
        """The protectionAlg of the next message (fresh salt for a MAC)."""
        ...

    def sender_kid(self) -> bytes | None:
        """senderKID: the MAC reference, or the signer's subjectKeyIdentifier."""
        ...

    def protect(self, algorithm: ProtectionAlgorithm, protected_part: bytes) -> bytes:
        """The protection value over the DER of ProtectedPart."""
        ...

    def extra_certs(self) -> Sequence[x509.Certificate]:
        """Certificates to send in extraCerts (the signer and its chain first)."""
        ...


def encode_pbm_parameters(params: PbmParameters) -> bytes:
    """DER PBMParameter (RFC 4210 5.1.3.1)."""
    return der.tlv(
        0x30,
        der.tlv(0x04, params.salt)
        + encode_algorithm(params.owf)
        + der.encode_integer(params.iteration_count)
        + encode_algorithm(params.mac),
    )


def _algorithm_oid(data: bytes, item: der.Tlv) -> str:
    if item.tag != 0x30:
        raise der.DerError("AlgorithmIdentifier expected")
    return der.decode_oid(data, der.read_tlv(data, item.content_start))


def decode_pbm_parameters(data: bytes) -> PbmParameters:
    """Read a PBMParameter."""
    try:
        outer = der.read_tlv(data)
        if outer.tag != 0x30 or outer.end != len(data):
            raise der.DerError("SEQUENCE expected")
        salt, owf, count, mac = der.children(data, outer)
        if salt.tag != 0x04:
            raise der.DerError("salt OCTET STRING expected")
        return PbmParameters(
            salt=data[salt.content_start : salt.end],
            owf=_algorithm_oid(data, owf),
            iteration_count=der.integer(data, count),
            mac=_algorithm_oid(data, mac),
        )
    except (der.DerError, ValueError) as exc:
        raise MessageError(f"bad PBMParameter: {exc}") from None


@dataclass
class MacProtector:
    """Password-based MAC protection (RFC 4210 5.1.3.1) with a fresh salt per message."""

    reference: bytes
    secret: bytes = field(repr=False)
    mac: str = "hmac-sha256"
    iteration_count: int = protection.DEFAULT_PBM_ITERATIONS
    rng: Callable[[int], bytes] = os.urandom
    _params: PbmParameters | None = field(default=None, init=False, repr=False)

    def algorithm(self) -> ProtectionAlgorithm:
        self._params = PbmParameters(
            salt=self.rng(16),
            owf=protection.OWF_BY_NAME["sha256"],
            iteration_count=self.iteration_count,
            mac=protection.MAC_BY_NAME[self.mac],
        )
        return ProtectionAlgorithm(
            protection.OID_PASSWORD_BASED_MAC, encode_pbm_parameters(self._params)
        )

    def sender_kid(self) -> bytes | None:
        return self.reference

    def protect(self, algorithm: ProtectionAlgorithm, protected_part: bytes) -> bytes:
        params = self._params
        if params is None or encode_pbm_parameters(params) != algorithm.parameters:
            params = decode_pbm_parameters(algorithm.parameters)
        return protection.pbm_mac(self.secret, params, protected_part, params.iteration_count)

    def extra_certs(self) -> Sequence[x509.Certificate]:
        return ()


@dataclass
class SignatureProtector:
    """Signature protection (RFC 4210 5.1.3.3) with the signer's chain in extraCerts."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: Sequence[x509.Certificate] = ()

    def algorithm(self) -> ProtectionAlgorithm:
        oid = protection.signature_algorithm_for(self.key)
        params = b"\x05\x00" if protection.SIGNATURE_OIDS[oid][0] == "rsa" else None
        return ProtectionAlgorithm(oid, params)

    def sender_kid(self) -> bytes | None:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return None
        return ski.value.digest

    def protect(self, algorithm: ProtectionAlgorithm, protected_part: bytes) -> bytes:
        return protection.sign(self.key, algorithm.oid, protected_part)

    def extra_certs(self) -> Sequence[x509.Certificate]:
        return (self.certificate, *self.chain)


# ---------------------------------------------------------------------------
# header


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
    if fields.implicit_confirm:
        info = der.tlv(0x30, der.encode_oid(OID_IMPLICIT_CONFIRM) + b"\x05\x00")
        out += tagged(8, der.tlv(0x30, info))
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


# ---------------------------------------------------------------------------
# decoding


#: PKIBody alternatives by context tag number (RFC 4210 5.1.2)
BODY_TYPES: dict[int, str] = {
    named.getType().tagSet[-1].tagId: named.getName()
    for named in rfc9480.PKIBody.componentType.namedTypes
}


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

    @property
    def protected_part(self) -> bytes:
        """ProtectedPart DER from the bytes as received (RFC 4210 5.1.3)."""
        return der.protected_part(self.raw)

    @functools.cached_property
    def body(self):
        value = _decode(self.body_der, rfc9480.PKIBody())
        return value[self.body_type]


def _opt_octets(header, name) -> bytes | None:
    value = header[name]
    return value.asOctets() if value.isValue else None


def _general_name(value) -> x509.Name | None:
    if value.getName() != "directoryName":
        return None
    return x509_name(value["directoryName"])


def _certificates(data: bytes, sequence: der.Tlv) -> tuple[x509.Certificate, ...]:
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
                extra = _certificates(data, der.read_tlv(data, part.content_start))
            else:
                raise der.DerError(f"unexpected element tag 0x{part.tag:02x}")
    except der.DerError as exc:
        raise MessageError(f"not a PKIMessage: {exc}") from None
    header = _decode(data[parts[0].start : parts[0].end], rfc9480.PKIHeader())
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
    if header["generalInfo"].isValue:
        implicit = any(str(i["infoType"]) == OID_IMPLICIT_CONFIRM for i in header["generalInfo"])
    free_text = tuple(str(t) for t in header["freeText"]) if header["freeText"].isValue else ()
    return DecodedMessage(
        raw=data,
        pvno=int(header["pvno"]),
        sender=_general_name(header["sender"]),
        recipient=_general_name(header["recipient"]),
        transaction_id=_opt_octets(header, "transactionID"),
        sender_nonce=_opt_octets(header, "senderNonce"),
        recip_nonce=_opt_octets(header, "recipNonce"),
        sender_kid=_opt_octets(header, "senderKID"),
        message_time=message_time,
        protection_alg=alg,
        implicit_confirm=implicit,
        body_type=body_type,
        body_der=data[body_tlv.start : body_tlv.end],
        protection=protection_value,
        extra_certs=extra,
        free_text=free_text,
    )


# ---------------------------------------------------------------------------
# PKIStatusInfo


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
        out += _free_text(info.texts)
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


# ---------------------------------------------------------------------------
# certificate requests (RFC 4211 5, RFC 4210 5.3.1/5.3.3/5.3.5)


@dataclass(frozen=True)
class CertRequestSpec:
    """What to ask for in one CertReqMsg."""

    public_key_info: bytes  # SubjectPublicKeyInfo DER
    subject: x509.Name
    san: x509.SubjectAlternativeName | None = None
    #: (issuer, serial number) of the certificate being updated: the oldCertID control
    old_cert_id: tuple[x509.Name, int] | None = None
    cert_req_id: int = 0


def encode_cert_request(spec: CertRequestSpec) -> bytes:
    """DER CertRequest (RFC 4211 5; CertTemplate fields are IMPLICIT except the Name CHOICE)."""
    template = b""
    if len(spec.subject):
        template += der.tlv(0xA5, spec.subject.public_bytes())  # subject [5] Name (explicit)
    spki = der.read_tlv(spec.public_key_info)
    template += der.tlv(0xA6, spec.public_key_info[spki.content_start : spki.end])  # publicKey [6]
    if spec.san is not None:
        critical = b"" if len(spec.subject) else b"\x01\x01\xff"  # RFC 5280 4.2.1.6
        extension = der.tlv(
            0x30,
            der.encode_oid(OID_SUBJECT_ALT_NAME) + critical + der.tlv(0x04, spec.san.public_bytes()),
        )
        template += der.tlv(0xA9, extension)  # extensions [9]
    out = der.encode_integer(spec.cert_req_id) + der.tlv(0x30, template)
    if spec.old_cert_id is not None:
        issuer, serial = spec.old_cert_id
        old_cert_id = der.tlv(0x30, der.tlv(0xA4, issuer.public_bytes()) + der.encode_integer(serial))
        control = der.tlv(0x30, der.encode_oid(OID_OLD_CERT_ID) + old_cert_id)
        out += der.tlv(0x30, control)  # controls
    return der.tlv(0x30, out)


def cert_request_body(kind: str, spec: CertRequestSpec, pop_key: PrivateKey) -> bytes:
    """DER of an ir, cr or kur body with one CertReqMsg and signature POP (RFC 4211 4.1).

    The template carries subject and public key, so ``poposkInput`` is omitted and the
    signature is computed over the DER of ``certReq``.
    """
    tags = {"ir": 0xA0, "cr": 0xA2, "kur": 0xA7}
    if kind not in tags:
        raise ValueError(f"request kind must be one of {', '.join(tags)}")
    request = encode_cert_request(spec)
    algorithm = protection.signature_algorithm_for(pop_key)
    signature = protection.sign(pop_key, algorithm, request)
    params = b"\x05\x00" if protection.SIGNATURE_OIDS[algorithm][0] == "rsa" else None
    popo = der.tlv(0xA1, encode_algorithm(algorithm, params) + der.tlv(0x03, b"\x00" + signature))
    return der.tlv(tags[kind], der.tlv(0x30, der.tlv(0x30, request + popo)))


@dataclass(frozen=True)
class ReceivedCertRequest:
    """One CertReqMsg as a CA reads it."""

    cert_req_id: int
    subject: x509.Name | None
    public_key_info: bytes | None
    old_cert_id: tuple[x509.Name | None, int] | None
    pop_algorithm: str | None
    pop_signature: bytes | None
    cert_request_der: bytes
    extensions_der: bytes | None


def cert_requests(message: DecodedMessage) -> list[ReceivedCertRequest]:
    """The CertReqMsgs of an ir, cr or kur (for a CA, and for our round-trip tests).

    ``cert_request_der`` is the certReq as received: the bytes its POP signature covers.
    """
    if message.body_type not in RESPONSE_TYPE:
        raise MessageError(f"{message.body_type} is not a certificate request")
    data = message.body_der
    try:
        messages_tlv = der.read_tlv(data, der.read_tlv(data).content_start)
        raw_requests = [
            data[r.start : r.end]
            for r in (der.children(data, item)[0] for item in der.children(data, messages_tlv))
        ]
    except (der.DerError, IndexError) as exc:
        raise MessageError(f"malformed {message.body_type}: {exc}") from None
    result = []
    for msg, raw_request in zip(message.body, raw_requests):
        request = msg["certReq"]
        template = request["certTemplate"]
        subject = x509_name(template["subject"]) if template["subject"].isValue else None
        spki = None
        if template["publicKey"].isValue:
            untagged = rfc5280.SubjectPublicKeyInfo()
            _copy_components(untagged, template["publicKey"])
            spki = encoder.encode(untagged)
        old_id = None
        if request["controls"].isValue:
            for control in request["controls"]:
                if str(control["type"]) == OID_OLD_CERT_ID:
                    old = _decode(control["value"].asOctets(), rfc4211.OldCertId())
                    old_id = (_general_name(old["issuer"]), int(old["serialNumber"]))
        pop_alg = pop_sig = None
        if msg["popo"].isValue and msg["popo"].getName() == "signature":
            pop = msg["popo"]["signature"]
            pop_alg = str(pop["algorithmIdentifier"]["algorithm"])
            pop_sig = pop["signature"].asOctets()
        extensions = None
        if template["extensions"].isValue:
            plain = rfc5280.Extensions()
            for ext in template["extensions"]:
                plain.append(ext)
            extensions = encoder.encode(plain)
        result.append(
            ReceivedCertRequest(
                cert_req_id=int(request["certReqId"]),
                subject=subject,
                public_key_info=spki,
                old_cert_id=old_id,
                pop_algorithm=pop_alg,
                pop_signature=pop_sig,
                cert_request_der=raw_request,
                extensions_der=extensions,
            )
        )
    return result


# ---------------------------------------------------------------------------
# certificate responses (RFC 4210 5.3.4)


@dataclass(frozen=True)
class CertResponse:
    """One CertResponse: its status and, when granted, the certificate."""

    cert_req_id: int
    status: StatusInfo
    certificate: x509.Certificate | None = None


@dataclass(frozen=True)
class CertRepContent:
    """CertRepMessage (ip, cp, kup)."""

    responses: tuple[CertResponse, ...]
    ca_pubs: tuple[x509.Certificate, ...] = ()


def cert_rep_content(message: DecodedMessage) -> CertRepContent:
    """Read an ip, cp or kup body (RFC 4210 5.3.4).

    Walked directly over the DER so that certificates are loaded from their own bytes
    (no pyasn1 round trip). Encrypted certificates are not supported: we use signature POP.
    """
    if message.body_type not in ("ip", "cp", "kup"):
        raise MessageError(f"{message.body_type} is not a certificate response")
    data = message.body_der
    try:
        rep = der.read_tlv(data, der.read_tlv(data).content_start)
        items = der.children(data, rep)
        ca_pubs: tuple[x509.Certificate, ...] = ()
        if items and items[0].tag == 0xA1:  # caPubs [1]
            ca_pubs = _certificates(data, der.read_tlv(data, items[0].content_start))
            items = items[1:]
        if len(items) != 1 or items[0].tag != 0x30:
            raise der.DerError("response SEQUENCE expected")
        responses = []
        for entry in der.children(data, items[0]):
            fields = der.children(data, entry)
            if len(fields) < 2 or fields[1].tag != 0x30:
                raise der.DerError("CertResponse needs certReqId and status")
            status = status_info(_decode(data[fields[1].start : fields[1].end], rfc9480.PKIStatusInfo()))
            cert = None
            if len(fields) > 2 and fields[2].tag == 0x30:  # certifiedKeyPair
                choice = der.children(data, fields[2])[0]
                if choice.tag != 0xA0:
                    raise MessageError("encrypted certificates are not supported")
                inner = der.read_tlv(data, choice.content_start)
                try:
                    cert = x509.load_der_x509_certificate(data[inner.start : inner.end])
                except ValueError as exc:
                    raise MessageError(f"bad certificate: {exc}") from None
            responses.append(CertResponse(der.integer(data, fields[0]), status, cert))
    except (der.DerError, IndexError) as exc:
        raise MessageError(f"malformed {message.body_type}: {exc}") from None
    return CertRepContent(tuple(responses), ca_pubs)


def cert_rep_body(kind: str, content: CertRepContent) -> bytes:
    """DER of an ip, cp or kup body (CA side; RFC 4210 5.3.4)."""
    tags = {"ip": 0xA1, "cp": 0xA3, "kup": 0xA8}
    out = b""
    if content.ca_pubs:
        certs = b"".join(c.public_bytes(serialization.Encoding.DER) for c in content.ca_pubs)
        out += der.tlv(0xA1, der.tlv(0x30, certs))  # caPubs [1]
    responses = b""
    for item in content.responses:
        response = der.encode_integer(item.cert_req_id) + encode_status_info(item.status)
        if item.certificate is not None:
            cert = item.certificate.public_bytes(serialization.Encoding.DER)
            response += der.tlv(0x30, der.tlv(0xA0, cert))  # certifiedKeyPair.certificate [0]
        responses += der.tlv(0x30, response)
    out += der.tlv(0x30, responses)
    return der.tlv(tags[kind], der.tlv(0x30, out))


# ---------------------------------------------------------------------------
# certConf / pkiConf (RFC 4210 5.3.18, RFC 9480 2.10), pollReq/pollRep (5.3.22), error (5.3.21)


@dataclass(frozen=True)
class CertStatusEntry:
    """One CertStatus of a certConf."""

    cert_hash: bytes
    cert_req_id: int
    status: StatusInfo | None = None
    hash_alg: str | None = None  # OID; RFC 9480: only when the signature alg has no single hash


_HASH_OIDS = {
    "sha1": "1.3.14.3.2.26",
    "sha224": "2.16.840.1.101.3.4.2.4",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
    "shake256": "2.16.840.1.101.3.4.2.12",
}


def cert_hash(cert: x509.Certificate) -> tuple[bytes, str | None]:
    """certHash of *cert* and the hashAlg to announce (RFC 9480 2.10, RFC 9481 2).

    The hash is that of the certificate's signature algorithm; when that algorithm has
    no single hash (EdDSA), SHA-512 is used for Ed25519 and SHAKE256 (512 bits) for
    Ed448, and its OID is returned so that it is sent as ``hashAlg``.
    """
    data = cert.public_bytes(serialization.Encoding.DER)
    algorithm = cert.signature_hash_algorithm
    if algorithm is not None:
        digest = hashes.Hash(algorithm)
        digest.update(data)
        return digest.finalize(), None
    oid = cert.signature_algorithm_oid.dotted_string
    if oid == "1.3.101.113":  # Ed448
        digest = hashes.Hash(hashes.SHAKE256(64))
        name = "shake256"
    else:  # Ed25519 and anything else without a hash of its own
        digest = hashes.Hash(hashes.SHA512())
        name = "sha512"
    digest.update(data)
    return digest.finalize(), _HASH_OIDS[name]


def cert_conf_body(entries: Sequence[CertStatusEntry]) -> bytes:
    """DER of a certConf body [24] (RFC 4210 5.3.18, hashAlg per RFC 9480 2.10)."""
    items = b""
    for entry in entries:
        out = der.tlv(0x04, entry.cert_hash) + der.encode_integer(entry.cert_req_id)
        if entry.status is not None:
            out += encode_status_info(entry.status)
        if entry.hash_alg is not None:
            out += der.tlv(0xA0, encode_algorithm(entry.hash_alg))
        items += der.tlv(0x30, out)
    return der.tlv(0xB8, der.tlv(0x30, items))


def cert_conf_entries(message: DecodedMessage) -> list[CertStatusEntry]:
    """Read a certConf (CA side and round-trip tests)."""
    if message.body_type != "certConf":
        raise MessageError(f"{message.body_type} is not certConf")
    result = []
    for status in message.body:
        info = status_info(status["statusInfo"]) if status["statusInfo"].isValue else None
        hash_alg = str(status["hashAlg"]["algorithm"]) if status["hashAlg"].isValue else None
        result.append(
            CertStatusEntry(status["certHash"].asOctets(), int(status["certReqId"]), info, hash_alg)
        )
    return result


def pki_conf_body() -> bytes:
    """DER of a pkiConf body [19] (NULL)."""
    return der.tlv(0xB3, b"\x05\x00")


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
            item += _free_text(entry.reason)
        items += der.tlv(0x30, item)
    return der.tlv(0xBA, der.tlv(0x30, items))


def poll_responses(message: DecodedMessage) -> list[PollResponse]:
    if message.body_type != "pollRep":
        raise MessageError(f"{message.body_type} is not pollRep")
    return [
        PollResponse(
            int(item["certReqId"]),
            int(item["checkAfter"]),
            tuple(str(t) for t in item["reason"]) if item["reason"].isValue else (),
        )
        for item in message.body
    ]


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
        out += _free_text(content.details)
    return der.tlv(0xB7, der.tlv(0x30, out))


def error_content(message: DecodedMessage) -> ErrorContent:
    if message.body_type != "error":
        raise MessageError(f"{message.body_type} is not error")
    value = message.body
    return ErrorContent(
        status_info(value["pKIStatusInfo"]),
        int(value["errorCode"]) if value["errorCode"].isValue else None,
        tuple(str(t) for t in value["errorDetails"]) if value["errorDetails"].isValue else (),
    )
