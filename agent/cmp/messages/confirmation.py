"""Certificate confirmation: certConf and pkiConf (RFC 4210 5.3.18, hashAlg per RFC 9480 2.10)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from .. import der, protection
from .common import MessageError
from .header import DecodedMessage
from .protection import encode_algorithm
from .status import StatusInfo, encode_status_info, status_info


@dataclass(frozen=True)
class CertStatusEntry:
    """One CertStatus of a certConf."""

    cert_hash: bytes
    cert_req_id: int
    status: StatusInfo | None = None
    hash_alg: str | None = None  # OID; RFC 9480: only when the signature alg has no single hash


#: id-shake256 (RFC 8702 2): the certHash of an Ed448-signed certificate (RFC 9481 2)
OID_SHAKE256 = "2.16.840.1.101.3.4.2.12"


def cert_hash(cert: x509.Certificate) -> tuple[bytes, str | None]:
    """certHash of *cert* and the hashAlg to announce (RFC 9480 2.10, RFC 9481 2).

    The hash is that of the certificate's signature algorithm; when that algorithm has
    no single hash (EdDSA), SHA-512 is used for Ed25519 and SHAKE256 (512 bits) for
    Ed448, and its OID is returned so that it is sent as ``hashAlg``. A signature
    algorithm we do not know gets SHA-256, also named in ``hashAlg``, so that the
    certificate can still be confirmed or rejected.
    """
    hash_oid = None
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm, hash_oid = hashes.SHA256(), protection.HASH_BY_NAME["sha256"]
    if algorithm is None:
        if cert.signature_algorithm_oid.dotted_string == "1.3.101.113":  # Ed448
            algorithm, hash_oid = hashes.SHAKE256(64), OID_SHAKE256
        else:  # Ed25519 and anything else without a hash of its own
            algorithm, hash_oid = hashes.SHA512(), protection.HASH_BY_NAME["sha512"]
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return digest.finalize(), hash_oid


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
