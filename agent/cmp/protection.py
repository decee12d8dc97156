"""PKIProtection (RFC 4210 5.1.3): password-based MAC and signatures.

Algorithm choices follow RFC 9481 (CMP algorithms): PBM with SHA-256 as one-way
function and HMAC-SHA256 (or HMAC-SHA1 for legacy CAs) as MAC; signatures with
RSA PKCS#1 v1.5, ECDSA or EdDSA. All functions work on bytes; the caller supplies the
DER of ``ProtectedPart`` (see :func:`agent.cmp.der.protected_part`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

#: RFC 4210 5.1.3.1 id-PasswordBasedMac
OID_PASSWORD_BASED_MAC = "1.2.840.113533.7.66.13"

#: one-way functions (RFC 9481 2): OID -> hashlib name
OWF_OIDS: dict[str, str] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
OWF_BY_NAME = {name: oid for oid, name in OWF_OIDS.items()}

#: MAC algorithms (RFC 9481 6.1/6.2): OID -> hashlib name of the HMAC's hash
MAC_OIDS: dict[str, str] = {
    "1.3.6.1.5.5.8.1.2": "sha1",  # hmac-sha1 (RFC 2104 as registered in RFC 4210)
    "1.2.840.113549.2.7": "sha1",  # hmacWithSHA1
    "1.2.840.113549.2.8": "sha224",
    "1.2.840.113549.2.9": "sha256",  # hmacWithSHA256
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
}
#: configured MAC name -> OID we send (the names of the vendor guide)
MAC_BY_NAME: dict[str, str] = {
    "hmac-sha256": "1.2.840.113549.2.9",
    "hmac-sha1": "1.3.6.1.5.5.8.1.2",
}

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

#: signature algorithm OID -> (key family, hash name or None for EdDSA)
SIGNATURE_OIDS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.5": ("rsa", "sha1"),
    "1.2.840.113549.1.1.11": ("rsa", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa", "sha512"),
    "1.2.840.10045.4.1": ("ec", "sha1"),
    "1.2.840.10045.4.3.2": ("ec", "sha256"),
    "1.2.840.10045.4.3.3": ("ec", "sha384"),
    "1.2.840.10045.4.3.4": ("ec", "sha512"),
    "1.3.101.112": ("ed25519", None),
    "1.3.101.113": ("ed448", None),
}
_SIGNATURE_BY_KIND = {value: oid for oid, value in SIGNATURE_OIDS.items()}

#: a hostile server must not make us hash for minutes (RFC 9481 4.1.1 leaves the bound to us)
DEFAULT_MAX_PBM_ITERATIONS = 100_000
#: OpenSSL's default; the MAC secret is assumed to be a strong shared secret
DEFAULT_PBM_ITERATIONS = 500


class ProtectionError(Exception):
    """Protection missing, unsupported or invalid; the message says which."""


@dataclass(frozen=True)
class PbmParameters:
    """PBMParameter (RFC 4210 5.1.3.1)."""

    salt: bytes
    owf: str  # OID
    iteration_count: int
    mac: str  # OID


def pbm_mac(secret: bytes, params: PbmParameters, data: bytes, max_iterations: int) -> bytes:
    """The PBM value over *data* (RFC 4210 5.1.3.1).

    BASEKEY = OWF(secret || salt), then OWF applied to it iterationCount-1 more times
    (iterationCount applications in all, as OpenSSL does); the result keys the MAC.
    """
    owf = OWF_OIDS.get(params.owf)
    if owf is None:
        raise ProtectionError(f"unsupported PBM one-way function {params.owf}")
    mac_hash = MAC_OIDS.get(params.mac)
    if mac_hash is None:
        raise ProtectionError(f"unsupported PBM MAC algorithm {params.mac}")
    if not 1 <= params.iteration_count <= max_iterations:
        raise ProtectionError(
            f"PBM iteration count {params.iteration_count} outside 1..{max_iterations}"
        )
    digest = getattr(hashlib, owf)  # the named constructor is much faster than hashlib.new
    key = digest(secret + params.salt).digest()
    for _ in range(params.iteration_count - 1):
        key = digest(key).digest()
    return hmac.new(key, data, mac_hash).digest()


def verify_pbm(
    secret: bytes, params: PbmParameters, data: bytes, value: bytes, max_iterations: int
) -> None:
    """Raise :class:`ProtectionError` unless *value* is the PBM of *data*."""
    if not hmac.compare_digest(pbm_mac(secret, params, data, max_iterations), value):
        raise ProtectionError("MAC protection is invalid (wrong secret or altered message)")


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


def signature_algorithm_for(key: PrivateKey) -> str:
    """The signature algorithm OID we use with *key* (RFC 9481 3)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return _SIGNATURE_BY_KIND[("rsa", "sha256")]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        name = "sha512" if size > 384 else "sha384" if size > 256 else "sha256"
        return _SIGNATURE_BY_KIND[("ec", name)]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _SIGNATURE_BY_KIND[("ed25519", None)]
    if isinstance(key, ed448.Ed448PrivateKey):
        return _SIGNATURE_BY_KIND[("ed448", None)]
    raise ProtectionError(f"unsupported key type {type(key).__name__}")


def sign(key: PrivateKey, algorithm: str, data: bytes) -> bytes:
    """Sign *data* with *key* using the signature algorithm OID *algorithm*."""
    family, hash_name = SIGNATURE_OIDS[algorithm]
    if family == "rsa":
        return key.sign(data, padding.PKCS1v15(), _HASHES[hash_name]())
    if family == "ec":
        return key.sign(data, ec.ECDSA(_HASHES[hash_name]()))
    return key.sign(data)


def verify_signature(public_key: PublicKey, algorithm: str, data: bytes, signature: bytes) -> None:
    """Raise :class:`ProtectionError` unless *signature* over *data* verifies."""
    entry = SIGNATURE_OIDS.get(algorithm)
    if entry is None:
        raise ProtectionError(f"unsupported signature algorithm {algorithm}")
    family, hash_name = entry
    try:
        if family == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), _HASHES[hash_name]())
        elif family == "ec" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(_HASHES[hash_name]()))
        elif family == "ed25519" and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        elif family == "ed448" and isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        else:
            raise ProtectionError(
                f"signature algorithm {algorithm} does not match the key {type(public_key).__name__}"
            )
    except InvalidSignature:
        raise ProtectionError("signature protection is invalid") from None
