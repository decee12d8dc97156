"""Checking the protection of received messages (RFC 4210 5.1.3, RFC 9480 3.5).

MAC protection is verified with the server's own PBMParameter and our shared secret,
with a cap on the iteration count. Signature protection is verified against a pinned
server certificate when one is configured, else against a certificate from the
message's extraCerts whose chain (through extraCerts) leads to a trusted certificate.
Verification is always over the bytes as received (:attr:`DecodedMessage.protected_part`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from . import protection
from .messages import DecodedMessage, MessageError, decode_pbm_parameters
from .protection import ProtectionError

MAX_CHAIN_LENGTH = 8


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _check_validity(cert: x509.Certificate, now: datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ProtectionError(
            f"certificate {cert.subject.rfc4514_string()} is not valid at {now:%Y-%m-%dT%H:%M:%SZ}"
        )


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a.public_bytes(serialization.Encoding.DER) == b.public_bytes(serialization.Encoding.DER)


def build_chain(
    cert: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    now: datetime,
) -> list[x509.Certificate]:
    """A path from *cert* to one of *trusted* through *untrusted* (RFC 5280 6.1, simplified:
    signatures, validity and cA basicConstraints of issuers; no revocation or policies)."""
    chain = [cert]
    current = cert
    for _ in range(MAX_CHAIN_LENGTH):
        _check_validity(current, now)
        if any(_same(current, t) for t in trusted):
            return chain
        issuer = None
        for candidate in [*trusted, *untrusted]:
            if candidate.subject != current.issuer or _same(candidate, current):
                continue
            try:
                basic = candidate.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                continue
            if not basic.ca:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
                continue
            issuer = candidate
            break
        if issuer is None:
            raise ProtectionError(
                f"no trusted chain for {cert.subject.rfc4514_string()}: "
                f"issuer {current.issuer.rfc4514_string()} not found or not valid"
            )
        chain.append(issuer)
        current = issuer
    raise ProtectionError("certificate chain too long")


@dataclass
class ResponseVerifier:
    """How to check the protection of responses from the CA."""

    secret: bytes | None = field(default=None, repr=False)
    server_cert: x509.Certificate | None = None
    trusted: Sequence[x509.Certificate] = ()
    max_pbm_iterations: int = protection.DEFAULT_MAX_PBM_ITERATIONS

    def verify(self, message: DecodedMessage, now: datetime) -> None:
        """Raise :class:`ProtectionError` unless *message* is validly protected."""
        if message.protection is None or message.protection_alg is None:
            raise ProtectionError("message is not protected")
        alg = message.protection_alg
        if alg.oid == protection.OID_PASSWORD_BASED_MAC:
            if self.secret is None:
                raise ProtectionError("message is MAC-protected but no shared secret is configured")
            if alg.parameters is None:
                raise ProtectionError("PBM protection without PBMParameter")
            try:
                params = decode_pbm_parameters(alg.parameters)
            except MessageError as exc:
                raise ProtectionError(f"bad PBMParameter: {exc}") from None
            protection.verify_pbm(
                self.secret, params, message.protected_part, message.protection, self.max_pbm_iterations
            )
            return
        if alg.oid not in protection.SIGNATURE_OIDS:
            raise ProtectionError(f"unsupported protection algorithm {alg.oid}")
        self._verify_signature(message, now)

    def _verify_signature(self, message: DecodedMessage, now: datetime) -> None:
        data = message.protected_part
        if self.server_cert is not None:
            protection.verify_signature(
                self.server_cert.public_key(), message.protection_alg.oid, data, message.protection
            )
            _check_validity(self.server_cert, now)
            return
        if not self.trusted:
            raise ProtectionError(
                "message is signed but no server certificate or trusted certificate is configured"
            )
        candidates = list(message.extra_certs)
        # the signer is the certificate named by senderKID, else by the sender name
        candidates.sort(
            key=lambda c: (
                not (message.sender_kid and _ski(c) == message.sender_kid),
                c.subject != message.sender,
            )
        )
        last_error: ProtectionError | None = None
        for cert in candidates:
            try:
                protection.verify_signature(
                    cert.public_key(), message.protection_alg.oid, data, message.protection
                )
            except ProtectionError as exc:
                last_error = exc
                continue
            build_chain(cert, message.extra_certs, self.trusted, now)
            return
        if last_error is not None:
            raise last_error
        raise ProtectionError("signed message carries no certificate to verify its signature")
