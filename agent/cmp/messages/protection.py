"""PKIProtection of outgoing messages (RFC 4210 5.1.3): protectionAlg, PBMParameter
(5.1.3.1) and the protectors that compute the protection value."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509

from .. import der, protection
from ..protection import PbmParameters, PrivateKey
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
