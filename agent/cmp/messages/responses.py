"""Certificate responses: ip, cp, kup (RFC 4210 5.3.4)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import der
from .common import MessageError, certificate_sequence
from .header import DecodedMessage
from .status import StatusInfo, encode_status_info, read_status_info


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
            ca_pubs = certificate_sequence(data, der.read_tlv(data, items[0].content_start))
            items = items[1:]
        if len(items) != 1 or items[0].tag != 0x30:
            raise der.DerError("response SEQUENCE expected")
        responses = []
        for entry in der.children(data, items[0]):
            fields = der.children(data, entry)
            if len(fields) < 2 or fields[1].tag != 0x30:
                raise der.DerError("CertResponse needs certReqId and status")
            status = read_status_info(data, fields[1])
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
