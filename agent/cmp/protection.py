"""PKIProtection (RFC 4210 5.1.3): password-based MACs and signatures.

Algorithm choices follow RFC 9481 (CMP algorithms):

- MACs: PBM (RFC 4210 5.1.3.1, RFC 9481 6.1.1 id-PasswordBasedMac) with a one-way
  function and an HMAC, and PBMAC1 (RFC 9481 6.1.1, RFC 8018 7.1: PBKDF2 then HMAC).
- Signatures (RFC 9481 3): RSA PKCS#1 v1.5, RSASSA-PSS (MGF1 with the same hash, salt
  as long as the hash), ECDSA on P-256/384/521, Ed25519 and Ed448.

Received MAC parameters are checked against :data:`MAC_PARAMETER_BOUNDS` before any
hashing, so a hostile server cannot make us hash for minutes; SHA-1 (as one-way function,
PRF, MAC or signature hash) is refused unless weak algorithms are enabled.
All functions work on bytes; the caller supplies the DER of ``ProtectedPart``
(see :func:`agent.cmp.der.protected_part`). The ASN.1 of the algorithm identifiers is in
:mod:`agent.cmp.messages.protection`.
"""

from __future__ import annotations

import binascii
import hmac
import importlib
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from . import der

#: RFC 4210 5.1.3.1 id-PasswordBasedMac
OID_PASSWORD_BASED_MAC = "1.2.840.113533.7.66.13"
#: RFC 8018 A.5 id-PBMAC1
OID_PBMAC1 = "1.2.840.113549.1.5.14"
#: RFC 8018 A.2 id-PBKDF2
OID_PBKDF2 = "1.2.840.113549.1.5.12"
#: RFC 4055 3.1 id-RSASSA-PSS and id-mgf1
OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
OID_MGF1 = "1.2.840.113549.1.1.8"

#: hash functions (RFC 9481 2, as one-way function and in signatures): OID -> hashlib name
HASH_OIDS: dict[str, str] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
HASH_BY_NAME = {name: oid for oid, name in HASH_OIDS.items()}

#: HMAC algorithms (RFC 9481 6.2, and PBKDF2's PRF, RFC 8018 B.1): OID -> hash name
MAC_OIDS: dict[str, str] = {
    "1.3.6.1.5.5.8.1.2": "sha1",  # hmac-sha1 (RFC 2104 as registered in RFC 4210)
    "1.2.840.113549.2.7": "sha1",  # hmacWithSHA1
    "1.2.840.113549.2.8": "sha224",
    "1.2.840.113549.2.9": "sha256",  # hmacWithSHA256
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
}
_HMAC_WITH = {"sha256": "1.2.840.113549.2.9", "sha384": "1.2.840.113549.2.10",
              "sha512": "1.2.840.113549.2.11"}

#: hashes that are refused unless weak algorithms are enabled (RFC 9481 2.1, RFC 6194)
WEAK_HASHES = frozenset({"sha1"})
#: signature digests an operator may choose (OpenSSL's ``-digest`` names)
DIGESTS = ("sha256", "sha384", "sha512", "sha1")

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class MacBounds:
    """What a received password-based MAC may ask of us (RFC 9481 4.1.1 and 6.1.1 leave it
    to the verifier): iteration counts, salt length and PBKDF2 key length."""

    min_iterations: int
    max_iterations: int
    min_salt_length: int
    max_key_length: int


#: received PBM and PBMAC1 parameters outside these are refused before any hashing
MAC_PARAMETER_BOUNDS = MacBounds(
    min_iterations=100, max_iterations=100_000, min_salt_length=8, max_key_length=64
)
#: OpenSSL's default; the MAC secret is assumed to be a strong shared secret
DEFAULT_PBM_ITERATIONS = 500
#: PBKDF2 iterations of the PBMAC1 we send (within MAC_PARAMETER_BOUNDS)
DEFAULT_PBKDF2_ITERATIONS = 10_000
#: salt length of the MACs we send (RFC 9481 6.1.1: at least 16 bytes for PBMAC1)
SALT_LENGTH = 16


class ProtectionError(Exception):
    """Protection missing, unsupported or invalid; the message says which."""


def _hash_label(name: str) -> str:
    return name.upper().replace("SHA", "SHA-")


def _refuse_weak(what: str, hash_name: str, weak_allowed: bool) -> None:
    if hash_name in WEAK_HASHES and not weak_allowed:
        raise ProtectionError(
            f"{what} uses {_hash_label(hash_name)}, a weak algorithm refused unless weak "
            "algorithms are enabled (/pki/weak-algorithms-enabled, --weak-algorithms)"
        )


# -- password-based MACs --------------------------------------------------------------


@dataclass(frozen=True)
class PbmParameters:
    """PBMParameter (RFC 4210 5.1.3.1)."""

    salt: bytes
    owf: str  # OID
    iteration_count: int
    mac: str  # OID


@dataclass(frozen=True)
class Pbmac1Parameters:
    """PBMAC1-params with PBKDF2-params (RFC 8018 A.2, A.5; RFC 9481 6.1.1)."""

    salt: bytes
    iteration_count: int
    key_length: int
    prf: str  # OID of the HMAC used as PBKDF2's PRF
    mac: str  # OID of the messageAuthScheme


MacParameters = PbmParameters | Pbmac1Parameters


@dataclass(frozen=True)
class MacScheme:
    """A MAC we can send, by the name an operator configures."""

    kind: Literal["pbm", "pbmac1"]
    hash: str  # the HMAC's hash (PBM: the one-way function is SHA-256; PBMAC1: also the PRF)


#: configured MAC names (the vendor guide's hmac-*, and RFC 9481 6.1.1 PBMAC1)
MAC_SCHEMES: dict[str, MacScheme] = {
    "hmac-sha256": MacScheme("pbm", "sha256"),
    "hmac-sha1": MacScheme("pbm", "sha1"),
    "pbmac1-sha256": MacScheme("pbmac1", "sha256"),
    "pbmac1-sha384": MacScheme("pbmac1", "sha384"),
    "pbmac1-sha512": MacScheme("pbmac1", "sha512"),
}
#: the MAC OID sent for each PBM scheme (hmac-sha1 keeps RFC 4210's registration)
_PBM_MAC_OIDS = {"sha256": "1.2.840.113549.2.9", "sha1": "1.3.6.1.5.5.8.1.2"}


def hash_size(name: str) -> int:
    """The output length in bytes of the hash *name*."""
    algorithm = _HASHES.get(name)
    if algorithm is not None:
        return algorithm.digest_size
    import hashlib  # a name of no RFC 9481 hash: as hashlib answers it

    return hashlib.new(name).digest_size


#: PBM one-way functions (:data:`HASH_OIDS`' names) -> (CPython's built-in module, its
#: constructor): for 32 to 64 bytes hashed hundreds of times these are about twice as
#: fast as hashlib's OpenSSL constructors, and they need neither hashlib nor the system
#: OpenSSL that hashlib loads (issue 11: `cmp-agent cmp ir`'s start)
_BUILTIN_OWF = {"sha1": ("_sha1", "sha1"), "sha256": ("_sha256", "sha256"),
                "sha384": ("_sha512", "sha384"), "sha512": ("_sha512", "sha512")}


def _owf(name: str):
    """The constructor of the one-way function *name* (a name of :data:`HASH_OIDS`)."""
    module, constructor = _BUILTIN_OWF[name]
    try:
        return getattr(importlib.import_module(module), constructor)
    except ImportError:  # a Python built without its own hashes
        import hashlib

        return getattr(hashlib, name)


def mac_is_weak(name: str) -> bool:
    """Whether the configured MAC *name* uses a weak hash."""
    return MAC_SCHEMES[name].hash in WEAK_HASHES


def new_mac_parameters(name: str, salt: bytes, iteration_count: int) -> MacParameters:
    """Fresh parameters for the configured MAC *name* (a key of :data:`MAC_SCHEMES`)."""
    scheme = MAC_SCHEMES[name]
    if scheme.kind == "pbm":
        return PbmParameters(salt, HASH_BY_NAME["sha256"], iteration_count,
                             _PBM_MAC_OIDS[scheme.hash])
    oid = _HMAC_WITH[scheme.hash]
    return Pbmac1Parameters(salt, iteration_count, hash_size(scheme.hash), oid, oid)


def _supported(table: dict[str, str], oid: str, what: str) -> str:
    name = table.get(oid)
    if name is None:
        raise ProtectionError(f"unsupported {what} {oid}")
    return name


def check_mac_parameters(params: MacParameters, weak_allowed: bool,
                         bounds: MacBounds = MAC_PARAMETER_BOUNDS) -> None:
    """Refuse received MAC parameters that are unsupported, weak or outside *bounds*.

    Cheap: it hashes nothing, so a refusal is immediate whatever the parameters ask.
    """
    if isinstance(params, PbmParameters):
        label, count_label = "PBM", "PBM iteration count"
        _refuse_weak("PBM one-way function",
                     _supported(HASH_OIDS, params.owf, "PBM one-way function"), weak_allowed)
    else:
        label, count_label = "PBMAC1", "PBKDF2 iteration count"
        _refuse_weak("PBKDF2 PRF", _supported(MAC_OIDS, params.prf, "PBKDF2 PRF"),
                     weak_allowed)
    mac_hash = _supported(MAC_OIDS, params.mac, f"{label} MAC")
    _refuse_weak(f"{label} MAC", mac_hash, weak_allowed)
    if isinstance(params, Pbmac1Parameters):
        # a key shorter than the HMAC's output weakens it (RFC 2104 section 3); a sender
        # choosing keyLength 1 could otherwise forge one MAC in 256 without the secret
        shortest = hash_size(mac_hash)
        if not shortest <= params.key_length <= bounds.max_key_length:
            raise ProtectionError(f"PBKDF2 key length {params.key_length} outside "
                                  f"{shortest}..{bounds.max_key_length} (the MAC's output length)")
    if params.iteration_count < bounds.min_iterations:
        raise ProtectionError(
            f"{count_label} {params.iteration_count} below the minimum {bounds.min_iterations}"
        )
    if params.iteration_count > bounds.max_iterations:
        raise ProtectionError(
            f"{count_label} {params.iteration_count} above the maximum {bounds.max_iterations}"
        )
    if len(params.salt) < bounds.min_salt_length:
        raise ProtectionError(
            f"{label} salt of {len(params.salt)} bytes shorter than the minimum "
            f"{bounds.min_salt_length}"
        )


def mac_value(secret: bytes, params: MacParameters, data: bytes) -> bytes:
    """The MAC of *data* under *secret* with *params* (no bounds: see :func:`verify_mac`).

    PBM (RFC 4210 5.1.3.1): BASEKEY = OWF(secret || salt), then OWF applied to it
    iterationCount-1 more times (iterationCount applications in all, as OpenSSL does);
    the result keys the MAC. PBMAC1 (RFC 8018 7.1): the key is PBKDF2(secret, salt,
    iterationCount, keyLength) with the PRF's HMAC.
    """
    mac_hash = _supported(MAC_OIDS, params.mac, "MAC algorithm")
    if isinstance(params, PbmParameters):
        owf = _supported(HASH_OIDS, params.owf, "PBM one-way function")
        digest = _owf(owf)
        key = digest(secret + params.salt).digest()
        for _ in range(params.iteration_count - 1):
            key = digest(key).digest()
    else:
        prf = _supported(MAC_OIDS, params.prf, "PBKDF2 PRF")
        from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

        key = PBKDF2HMAC(_HASHES[prf](), params.key_length, params.salt,
                         params.iteration_count).derive(secret)
    mac = crypto_hmac.HMAC(key, _HASHES[mac_hash]())
    mac.update(data)
    return mac.finalize()


def verify_mac(secret: bytes, params: MacParameters, data: bytes, value: bytes,
               weak_allowed: bool) -> None:
    """Raise :class:`ProtectionError` unless *value* is the MAC of *data*; the parameters
    are checked (:func:`check_mac_parameters`) before anything is hashed."""
    check_mac_parameters(params, weak_allowed)
    if not hmac.compare_digest(mac_value(secret, params, data), value):
        raise ProtectionError("MAC protection is invalid (wrong secret or altered message)")


# -- signatures ---------------------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

SignatureFamily = Literal["rsa", "rsa-pss", "ec", "ed25519", "ed448"]


@dataclass(frozen=True)
class SignatureAlgorithm:
    """A signature scheme of RFC 9481 3: key family and hash (``None`` for EdDSA)."""

    family: SignatureFamily
    hash: str | None = None

    def __str__(self) -> str:
        label = {"rsa": "RSA PKCS#1 v1.5", "rsa-pss": "RSASSA-PSS", "ec": "ECDSA",
                 "ed25519": "Ed25519", "ed448": "Ed448"}[self.family]
        return f"{label} with {_hash_label(self.hash)}" if self.hash else label


#: signature algorithm OIDs whose parameters are absent or NULL -> algorithm
SIGNATURE_OIDS: dict[str, SignatureAlgorithm] = {
    "1.2.840.113549.1.1.5": SignatureAlgorithm("rsa", "sha1"),
    "1.2.840.113549.1.1.11": SignatureAlgorithm("rsa", "sha256"),
    "1.2.840.113549.1.1.12": SignatureAlgorithm("rsa", "sha384"),
    "1.2.840.113549.1.1.13": SignatureAlgorithm("rsa", "sha512"),
    "1.2.840.10045.4.1": SignatureAlgorithm("ec", "sha1"),
    "1.2.840.10045.4.3.2": SignatureAlgorithm("ec", "sha256"),
    "1.2.840.10045.4.3.3": SignatureAlgorithm("ec", "sha384"),
    "1.2.840.10045.4.3.4": SignatureAlgorithm("ec", "sha512"),
    "1.3.101.112": SignatureAlgorithm("ed25519"),
    "1.3.101.113": SignatureAlgorithm("ed448"),
}
SIGNATURE_OID_OF = {value: oid for oid, value in SIGNATURE_OIDS.items()}


def signature_algorithm_for(key: PrivateKey, digest: str | None = None,
                            rsa_pss: bool = False) -> SignatureAlgorithm:
    """The signature algorithm we use with *key* (RFC 9481 3).

    *digest* overrides the hash (OpenSSL's ``-digest``); by default SHA-256 for RSA and
    P-256, the curve's own hash for P-384 (SHA-384) and P-521 (SHA-512). EdDSA has its
    hash built in and ignores *digest*. *rsa_pss* signs with RSASSA-PSS instead of
    PKCS#1 v1.5 (an RSA-PSS key).
    """
    if digest is not None and digest not in DIGESTS:
        raise ProtectionError(f"unsupported digest {digest!r}, not one of {', '.join(DIGESTS)}")
    if isinstance(key, rsa.RSAPrivateKey):
        return SignatureAlgorithm("rsa-pss" if rsa_pss else "rsa", digest or "sha256")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        default = "sha512" if size > 384 else "sha384" if size > 256 else "sha256"
        return SignatureAlgorithm("ec", digest or default)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SignatureAlgorithm("ed25519")
    if isinstance(key, ed448.Ed448PrivateKey):
        return SignatureAlgorithm("ed448")
    raise ProtectionError(f"unsupported key type {type(key).__name__}")


def is_rsa_pss_certificate(cert: x509.Certificate) -> bool:
    """Whether *cert* certifies an RSA-PSS key (SPKI id-RSASSA-PSS, RFC 4055 1.2): such a
    key signs with RSASSA-PSS only."""
    return cert.public_key_algorithm_oid.dotted_string == OID_RSASSA_PSS


def is_rsa_pss_key_file(data: bytes) -> bool:
    """Whether *data* (PEM or DER) holds an unencrypted PKCS#8 RSA-PSS private key
    (privateKeyAlgorithm id-RSASSA-PSS, RFC 4055 1.2; ``openssl genpkey -algorithm RSA-PSS``).
    ``cryptography`` loads such a key as a plain RSA key, so the file is looked at here."""
    if b"-----BEGIN PRIVATE KEY-----" in data:
        body = data.split(b"-----BEGIN PRIVATE KEY-----", 1)[1].split(b"-----END", 1)[0]
        try:
            # base64.b64decode(..., validate=True) as that function does it for bytes,
            # without base64's import (and struct's): 1 % of `cmp-agent cmp ir`
            data = binascii.a2b_base64(b"".join(body.split()), strict_mode=True)
        except binascii.Error:
            return False
    try:
        info = der.read_tlv(data)
        _version, algorithm, *_ = der.children(data, info)
        oid = der.decode_oid(data, der.read_tlv(data, algorithm.content_start))
    except (der.DerError, ValueError):
        return False
    return info.tag == 0x30 and algorithm.tag == 0x30 and oid == OID_RSASSA_PSS


def check_signature_algorithm(algorithm: SignatureAlgorithm, weak_allowed: bool) -> None:
    """Refuse a signature hash that is weak unless weak algorithms are enabled."""
    if algorithm.hash is not None:
        _refuse_weak(f"{SignatureAlgorithm(algorithm.family)} signature", algorithm.hash,
                     weak_allowed)


def _pss(hash_name: str) -> padding.PSS:
    """RFC 9481 3.1: MGF1 with the message hash, salt length = hash length."""
    algorithm = _HASHES[hash_name]()
    return padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)


def sign(key: PrivateKey, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
    """Sign *data* with *key* using *algorithm*."""
    if algorithm.family == "rsa":
        return key.sign(data, padding.PKCS1v15(), _HASHES[algorithm.hash]())
    if algorithm.family == "rsa-pss":
        return key.sign(data, _pss(algorithm.hash), _HASHES[algorithm.hash]())
    if algorithm.family == "ec":
        return key.sign(data, ec.ECDSA(_HASHES[algorithm.hash]()))
    return key.sign(data)


_KEY_TYPES = {
    "rsa": rsa.RSAPublicKey,
    "rsa-pss": rsa.RSAPublicKey,
    "ec": ec.EllipticCurvePublicKey,
    "ed25519": ed25519.Ed25519PublicKey,
    "ed448": ed448.Ed448PublicKey,
}


def verify_signature(public_key: PublicKey, algorithm: SignatureAlgorithm, data: bytes,
                     signature: bytes) -> None:
    """Raise :class:`ProtectionError` unless *signature* over *data* verifies."""
    if not isinstance(public_key, _KEY_TYPES[algorithm.family]):
        raise ProtectionError(
            f"signature algorithm {algorithm} does not match the key {type(public_key).__name__}"
        )
    try:
        if algorithm.family == "rsa":
            public_key.verify(signature, data, padding.PKCS1v15(), _HASHES[algorithm.hash]())
        elif algorithm.family == "rsa-pss":
            public_key.verify(signature, data, _pss(algorithm.hash), _HASHES[algorithm.hash]())
        elif algorithm.family == "ec":
            public_key.verify(signature, data, ec.ECDSA(_HASHES[algorithm.hash]()))
        else:
            public_key.verify(signature, data)
    except InvalidSignature:
        raise ProtectionError("signature protection is invalid") from None
