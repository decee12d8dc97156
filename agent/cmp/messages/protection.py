"""PKIProtection (RFC 4210 5.1.3) at the ASN.1 level: protectionAlg with its parameters
(PBMParameter 5.1.3.1, PBMAC1-params RFC 8018 A.5, RSASSA-PSS-params RFC 4055 3.1), read
from received messages and written by the protectors that protect the messages we send."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509

from .. import der, protection
from ..protection import (
    MacParameters,
    Pbmac1Parameters,
    PbmParameters,
    PrivateKey,
    ProtectionError,
    SignatureAlgorithm,
)
from .common import MessageError


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


_NULL = b"\x05\x00"


def encode_pbm_parameters(params: PbmParameters) -> bytes:
    """DER PBMParameter (RFC 4210 5.1.3.1)."""
    return der.tlv(
        0x30,
        der.tlv(0x04, params.salt)
        + encode_algorithm(params.owf)
        + der.encode_integer(params.iteration_count)
        + encode_algorithm(params.mac),
    )


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
            owf=decode_algorithm(data, owf)[0],
            iteration_count=der.integer(data, count),
            mac=decode_algorithm(data, mac)[0],
        )
    except (der.DerError, ValueError) as exc:
        raise MessageError(f"bad PBMParameter: {exc}") from None


def decode_algorithm(data: bytes, item: der.Tlv) -> tuple[str, der.Tlv | None]:
    """The OID of an AlgorithmIdentifier and its parameters' TLV (``None`` if absent)."""
    if item.tag != 0x30:
        raise der.DerError("AlgorithmIdentifier expected")
    parts = der.children(data, item)
    if not parts or len(parts) > 2:
        raise der.DerError("AlgorithmIdentifier is an OID and optional parameters")
    return der.decode_oid(data, parts[0]), parts[1] if len(parts) == 2 else None


def _hmac_oid(data: bytes, item: der.Tlv) -> str:
    """An HMAC AlgorithmIdentifier: parameters absent or NULL (RFC 8018 B.1, RFC 9481 6.2)."""
    oid, params = decode_algorithm(data, item)
    if params is not None and data[params.start : params.end] != _NULL:
        raise der.DerError(f"parameters of HMAC {oid} must be absent or NULL")
    return oid


def encode_pbmac1_parameters(params: Pbmac1Parameters) -> bytes:
    """DER PBMAC1-params with PBKDF2-params (RFC 8018 A.2, A.5; RFC 9481 6.1.1)."""
    kdf = der.tlv(
        0x30,
        der.tlv(0x04, params.salt)
        + der.encode_integer(params.iteration_count)
        + der.encode_integer(params.key_length)
        + encode_algorithm(params.prf, _NULL),
    )
    return der.tlv(0x30, encode_algorithm(protection.OID_PBKDF2, kdf)
                   + encode_algorithm(params.mac, _NULL))


#: RFC 8018 A.2: prf DEFAULT algid-hmacWithSHA1
_PBKDF2_DEFAULT_PRF = "1.2.840.113549.2.7"


def decode_pbmac1_parameters(data: bytes) -> Pbmac1Parameters:
    """Read PBMAC1-params; only PBKDF2 with a specified salt is supported (RFC 9481 6.1.1).

    Without keyLength the key is as long as the MAC's hash (RFC 9481 6.1.1).
    """
    try:
        outer = der.read_tlv(data)
        if outer.tag != 0x30 or outer.end != len(data):
            raise der.DerError("SEQUENCE expected")
        kdf_tlv, mac_tlv = der.children(data, outer)
        kdf, kdf_params = decode_algorithm(data, kdf_tlv)
        if kdf != protection.OID_PBKDF2 or kdf_params is None:
            raise der.DerError(f"key derivation function {kdf} is not PBKDF2")
        salt, count_tlv, *optional = der.children(data, kdf_params)
        if salt.tag != 0x04:
            raise der.DerError("PBKDF2 salt must be 'specified' (OCTET STRING)")
        count = der.integer(data, count_tlv)
        key_length = None
        if optional and optional[0].tag == 0x02:
            key_length = der.integer(data, optional.pop(0))
        prf = _hmac_oid(data, optional.pop(0)) if optional else _PBKDF2_DEFAULT_PRF
        if optional:
            raise der.DerError("trailing PBKDF2-params fields")
        mac = _hmac_oid(data, mac_tlv)
    except (der.DerError, ValueError) as exc:
        raise MessageError(f"bad PBMAC1-params: {exc}") from None
    if key_length is None:
        hash_name = protection.MAC_OIDS.get(mac)
        if hash_name is None:
            raise ProtectionError(f"unsupported PBMAC1 MAC {mac}")
        key_length = protection.hash_size(hash_name)
    return Pbmac1Parameters(data[salt.content_start : salt.end], count, key_length, prf, mac)


def decode_mac_parameters(algorithm: ProtectionAlgorithm) -> MacParameters:
    """The parameters of a PBM or PBMAC1 protectionAlg; :class:`ProtectionError` when they
    are missing, malformed or of another algorithm."""
    if algorithm.parameters is None:
        raise ProtectionError(f"MAC protection {algorithm.oid} without parameters")
    try:
        if algorithm.oid == protection.OID_PASSWORD_BASED_MAC:
            return decode_pbm_parameters(algorithm.parameters)
        if algorithm.oid == protection.OID_PBMAC1:
            return decode_pbmac1_parameters(algorithm.parameters)
    except MessageError as exc:
        raise ProtectionError(str(exc)) from None
    raise ProtectionError(f"{algorithm.oid} is not a MAC algorithm")


def encode_mac_algorithm(params: MacParameters) -> ProtectionAlgorithm:
    """The protectionAlg of a PBM or PBMAC1 MAC."""
    if isinstance(params, PbmParameters):
        return ProtectionAlgorithm(protection.OID_PASSWORD_BASED_MAC, encode_pbm_parameters(params))
    return ProtectionAlgorithm(protection.OID_PBMAC1, encode_pbmac1_parameters(params))


def _hash_algorithm(hash_name: str) -> bytes:
    return encode_algorithm(protection.HASH_BY_NAME[hash_name])


def encode_signature_algorithm(algorithm: SignatureAlgorithm) -> ProtectionAlgorithm:
    """The AlgorithmIdentifier of a signature (RFC 9481 3): NULL parameters for PKCS#1 v1.5
    (RFC 4055 5), RSASSA-PSS-params for PSS (RFC 4055 3.1: hash, MGF1 with the same hash,
    salt length = hash length, trailer field 1 by default), absent otherwise."""
    if algorithm.family == "rsa-pss":
        hash_name = algorithm.hash
        params = der.tlv(
            0x30,
            der.tlv(0xA0, _hash_algorithm(hash_name))
            + der.tlv(0xA1, encode_algorithm(protection.OID_MGF1, _hash_algorithm(hash_name)))
            + der.tlv(0xA2, der.encode_integer(protection.hash_size(hash_name))),
        )
        return ProtectionAlgorithm(protection.OID_RSASSA_PSS, params)
    oid = protection.SIGNATURE_OID_OF[algorithm]
    return ProtectionAlgorithm(oid, _NULL if algorithm.family == "rsa" else None)


@dataclass(frozen=True)
class PssParameters:
    """RSASSA-PSS-params (RFC 4055 3.1) as written, their DEFAULTs filled in (SHA-1, MGF1
    with SHA-1, salt 20, trailer 1); a hash we do not know is kept as its OID."""

    hash: str
    mgf_hash: str
    salt_length: int
    trailer: int

    def __str__(self) -> str:
        return (f"RSASSA-PSS with {self.hash.upper()}, MGF1 with {self.mgf_hash.upper()},"
                f" salt of at least {self.salt_length} bytes")


def decode_pss_parameters(data: bytes) -> PssParameters:
    """RSASSA-PSS-params (RFC 4055 3.1, EXPLICIT tags), in a signature's or a key's
    AlgorithmIdentifier; :class:`der.DerError` when malformed."""
    outer = der.read_tlv(data)
    if outer.tag != 0x30 or outer.end != len(data):
        raise der.DerError("RSASSA-PSS-params is a SEQUENCE")
    fields = {item.tag: der.read_tlv(data, item.content_start) for item in der.children(data, outer)}
    hash_name = mgf_hash = "sha1"  # the DEFAULTs of RFC 4055
    salt_length, trailer = 20, 1
    if 0xA0 in fields:
        oid, _ = decode_algorithm(data, fields[0xA0])
        hash_name = protection.HASH_OIDS.get(oid, oid)
    if 0xA1 in fields:
        mgf, mgf_params = decode_algorithm(data, fields[0xA1])
        if mgf != protection.OID_MGF1 or mgf_params is None:
            raise der.DerError(f"mask generation function {mgf} is not MGF1")
        oid, _ = decode_algorithm(data, mgf_params)
        mgf_hash = protection.HASH_OIDS.get(oid, oid)
    if 0xA2 in fields:
        salt_length = der.integer(data, fields[0xA2])
    if 0xA3 in fields:
        trailer = der.integer(data, fields[0xA3])
    return PssParameters(hash_name, mgf_hash, salt_length, trailer)


def _pss_parameters(data: bytes) -> SignatureAlgorithm:
    """A signature's RSASSA-PSS-params as RFC 9481 3.1 profiles them."""
    params = decode_pss_parameters(data)
    hash_name = params.hash
    if hash_name not in protection.HASH_OIDS.values():
        raise ProtectionError(f"unsupported RSASSA-PSS hash {hash_name}")
    if params.mgf_hash != hash_name:
        raise ProtectionError(f"RSASSA-PSS MGF1 hash {params.mgf_hash} differs from the hash"
                              f" {hash_name} (RFC 9481 3.1)")
    if params.salt_length != protection.hash_size(hash_name):
        raise ProtectionError(f"RSASSA-PSS salt length {params.salt_length} is not the hash"
                              f" length {protection.hash_size(hash_name)} (RFC 9481 3.1)")
    if params.trailer != 1:
        raise ProtectionError(f"RSASSA-PSS trailer field {params.trailer} is not 1")
    return SignatureAlgorithm("rsa-pss", hash_name)


def rsa_pss_key_parameters(cert: x509.Certificate) -> PssParameters | None:
    """The RSASSA-PSS-params in the SubjectPublicKeyInfo of a certificate for an RSA-PSS
    key (RFC 4055 1.2, 3.1: they restrict the key's signatures), or None when the key
    names none (any RSASSA-PSS signature). :class:`ProtectionError` when malformed."""
    tbs = cert.tbs_certificate_bytes
    try:
        fields = der.children(tbs, der.read_tlv(tbs))
        if fields and fields[0].tag == 0xA0:  # version
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
        spki_algorithm = der.read_tlv(tbs, fields[5].content_start)
        _oid, params = decode_algorithm(tbs, spki_algorithm)
        return None if params is None else decode_pss_parameters(tbs[params.start:params.end])
    except (der.DerError, ValueError, IndexError) as exc:
        raise ProtectionError(f"bad RSASSA-PSS-params in the public key: {exc}") from None


def decode_signature_algorithm(algorithm: ProtectionAlgorithm) -> SignatureAlgorithm:
    """The signature scheme of a protectionAlg (or a POP's algorithmIdentifier);
    :class:`ProtectionError` when it is not one of RFC 9481 3."""
    if algorithm.oid == protection.OID_RSASSA_PSS:
        if algorithm.parameters is None:
            raise ProtectionError("RSASSA-PSS without RSASSA-PSS-params")
        try:
            return _pss_parameters(algorithm.parameters)
        except (der.DerError, ValueError) as exc:
            raise ProtectionError(f"bad RSASSA-PSS-params: {exc}") from None
    scheme = protection.SIGNATURE_OIDS.get(algorithm.oid)
    if scheme is None:
        raise ProtectionError(f"unsupported protection algorithm {algorithm.oid}")
    return scheme


@dataclass
class MacProtector:
    """Password-based MAC protection (RFC 4210 5.1.3.1, RFC 9481 6.1.1) with a fresh salt
    per message; *mac* is a configured name (:data:`agent.cmp.protection.MAC_SCHEMES`).
    *iteration_count* is PBM's; PBMAC1 uses :data:`~agent.cmp.protection.DEFAULT_PBKDF2_ITERATIONS`."""

    reference: bytes
    secret: bytes = field(repr=False)
    mac: str = "hmac-sha256"
    iteration_count: int = protection.DEFAULT_PBM_ITERATIONS
    rng: Callable[[int], bytes] = os.urandom
    _params: MacParameters | None = field(default=None, init=False, repr=False)

    def algorithm(self) -> ProtectionAlgorithm:
        pbmac1 = protection.MAC_SCHEMES[self.mac].kind == "pbmac1"
        count = protection.DEFAULT_PBKDF2_ITERATIONS if pbmac1 else self.iteration_count
        self._params = protection.new_mac_parameters(
            self.mac, self.rng(protection.SALT_LENGTH), count
        )
        return encode_mac_algorithm(self._params)

    def sender_kid(self) -> bytes | None:
        return self.reference

    def protect(self, algorithm: ProtectionAlgorithm, protected_part: bytes) -> bytes:
        params = self._params
        if params is None or encode_mac_algorithm(params) != algorithm:
            params = decode_mac_parameters(algorithm)
        return protection.mac_value(self.secret, params, protected_part)

    def extra_certs(self) -> Sequence[x509.Certificate]:
        return ()


@dataclass
class SignatureProtector:
    """Signature protection (RFC 4210 5.1.3.3) with the signer's chain in extraCerts.

    *signature* is the scheme (default: :func:`agent.cmp.protection.signature_algorithm_for`
    the key, RSASSA-PSS when the certificate is for an RSA-PSS key)."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: Sequence[x509.Certificate] = ()
    signature: SignatureAlgorithm | None = None

    def __post_init__(self) -> None:
        if self.signature is None:
            self.signature = protection.signature_algorithm_for(
                self.key, rsa_pss=protection.is_rsa_pss_certificate(self.certificate)
            )

    def algorithm(self) -> ProtectionAlgorithm:
        return encode_signature_algorithm(self.signature)

    def sender_kid(self) -> bytes | None:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return None
        return ski.value.digest

    def protect(self, algorithm: ProtectionAlgorithm, protected_part: bytes) -> bytes:
        return protection.sign(self.key, decode_signature_algorithm(algorithm), protected_part)

    def extra_certs(self) -> Sequence[x509.Certificate]:
        return (self.certificate, *self.chain)
