"""Certificate requests: ir, cr, kur (RFC 4210 5.3.1, 5.3.3, 5.3.5; CRMF RFC 4211 5) and
p10cr (RFC 4210 5.3.4, PKCS#10 RFC 2986; RFC 9483 4.1.4)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .. import der, protection
from ..protection import PrivateKey, SignatureAlgorithm
from .common import (
    OID_OLD_CERT_ID,
    OID_SUBJECT_ALT_NAME,
    RESPONSE_TYPE,
    MessageError,
    copy_components,
    decode_der,
    general_name,
    x509_name,
)
from .header import DecodedMessage
from .protection import ProtectionAlgorithm, encode_signature_algorithm


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


def cert_request_body(kind: str, spec: CertRequestSpec, pop_key: PrivateKey,
                      signature: SignatureAlgorithm | None = None) -> bytes:
    """DER of an ir, cr or kur body with one CertReqMsg and signature POP (RFC 4211 4.1).

    The template carries subject and public key, so ``poposkInput`` is omitted and the
    signature is computed over the DER of ``certReq``, with *signature* (default: the
    scheme :func:`agent.cmp.protection.signature_algorithm_for` the key).
    """
    tags = {"ir": 0xA0, "cr": 0xA2, "kur": 0xA7}
    if kind not in tags:  # p10cr: p10cr_body
        raise ValueError(f"request kind must be one of {', '.join(tags)}")
    request = encode_cert_request(spec)
    signature = signature or protection.signature_algorithm_for(pop_key)
    value = protection.sign(pop_key, signature, request)
    algorithm = encode_signature_algorithm(signature)
    popo = der.tlv(0xA1, algorithm.encode() + der.tlv(0x03, b"\x00" + value))
    return der.tlv(tags[kind], der.tlv(0x30, der.tlv(0x30, request + popo)))


@dataclass(frozen=True)
class ReceivedCertRequest:
    """One CertReqMsg as a CA reads it."""

    cert_req_id: int
    subject: x509.Name | None
    public_key_info: bytes | None
    old_cert_id: tuple[x509.Name | None, int] | None
    pop_algorithm: ProtectionAlgorithm | None
    pop_signature: bytes | None
    cert_request_der: bytes
    extensions_der: bytes | None


def cert_requests(message: DecodedMessage) -> list[ReceivedCertRequest]:
    """The CertReqMsgs of an ir, cr or kur (for a CA, and for our round-trip tests).

    ``cert_request_der`` is the certReq as received: the bytes its POP signature covers.
    """
    if message.body_type not in RESPONSE_TYPE or message.body_type == "p10cr":
        raise MessageError(f"{message.body_type} is not a CRMF certificate request")
    data = message.body_der
    try:
        messages_tlv = der.read_tlv(data, der.read_tlv(data).content_start)
        raw_requests = [
            data[r.start : r.end]
            for r in (der.children(data, item)[0] for item in der.children(data, messages_tlv))
        ]
    except (der.DerError, IndexError) as exc:
        raise MessageError(f"malformed {message.body_type}: {exc}") from None
    from pyasn1.codec.der import encoder  # only a CA reads requests
    from pyasn1_alt_modules import rfc5280

    result = []
    for msg, raw_request in zip(message.body, raw_requests):
        request = msg["certReq"]
        template = request["certTemplate"]
        subject = x509_name(template["subject"]) if template["subject"].isValue else None
        spki = None
        if template["publicKey"].isValue:
            untagged = rfc5280.SubjectPublicKeyInfo()
            copy_components(untagged, template["publicKey"])
            spki = encoder.encode(untagged)
        old_id = None
        if request["controls"].isValue:
            for control in request["controls"]:
                if str(control["type"]) == OID_OLD_CERT_ID:
                    from pyasn1_alt_modules import rfc4211  # CRMF: only a CA reads requests

                    old = decode_der(control["value"].asOctets(), rfc4211.OldCertId())
                    old_id = (general_name(old["issuer"]), int(old["serialNumber"]))
        pop_alg = pop_sig = None
        if msg["popo"].isValue and msg["popo"].getName() == "signature":
            pop = msg["popo"]["signature"]
            identifier = pop["algorithmIdentifier"]
            params = identifier["parameters"]
            pop_alg = ProtectionAlgorithm(str(identifier["algorithm"]),
                                          params.asOctets() if params.isValue else None)
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


#: the certReqId that stands for the one request of a p10cr (RFC 9483 4.1.4; RFC 9480 2.9)
P10CR_CERT_REQ_ID = -1


def build_csr(key: PrivateKey, subject: x509.Name,
              san: x509.SubjectAlternativeName | None = None) -> x509.CertificateSigningRequest:
    """A PKCS#10 request (RFC 2986) for *key*'s public key, signed with *key*: its proof
    of possession. SHA-256 for RSA and P-256, SHA-384 for P-384 (RFC 9481 3)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if san is not None:
        builder = builder.add_extension(san, critical=not len(subject))  # RFC 5280 4.2.1.6
    algorithm: hashes.HashAlgorithm | None = hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        algorithm = hashes.SHA384() if key.curve.key_size <= 384 else hashes.SHA512()
    elif not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        algorithm = None  # EdDSA
    return builder.sign(key, algorithm)


def p10cr_body(csr: x509.CertificateSigningRequest) -> bytes:
    """DER of a p10cr body [4] (RFC 4210 5.3.4): the CSR as it is."""
    return der.tlv(0xA4, csr.public_bytes(serialization.Encoding.DER))


def p10_request(message: DecodedMessage) -> x509.CertificateSigningRequest:
    """The PKCS#10 request of a p10cr (CA side), loaded from its own bytes."""
    if message.body_type != "p10cr":
        raise MessageError(f"{message.body_type} is not p10cr")
    data = message.body_der
    try:
        inner = der.read_tlv(data, der.read_tlv(data).content_start)
        return x509.load_der_x509_csr(data[inner.start : inner.end])
    except (der.DerError, ValueError) as exc:
        raise MessageError(f"bad p10cr: {exc}") from None
