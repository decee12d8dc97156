"""Checking the protection of received messages (RFC 4210 5.1.3, RFC 9480 3.5, RFC 9483 3.5).

MAC protection (PBM or PBMAC1) is verified with the server's own parameters and our
shared secret, once they are within bounds and not weak. Verification is always over the bytes as received
(:attr:`DecodedMessage.protected_part`).

Signature protection is verified with the key of the *signer*: a certificate whose
subject is the message's sender (and whose subjectKeyIdentifier is its senderKID, when
both are present) and whose key verifies the signature. The signer is looked for in the
message's extraCerts, then among the device's own certificates (seed step 10). It is
accepted when

- it is the pinned server certificate (``--srvcert``, as OpenSSL pins it), or
- it is valid now, fit to sign CMP messages (:func:`check_cmp_signer`), and an RFC 5280
  path leads from it to one of the trust anchors, through untrusted certificates
  (extraCerts, the device's other certificates) as intermediates.

Path validation is cryptography's ``x509.verification`` (RFC 5280 6.1: signatures,
validity, basicConstraints and pathLenConstraint, name constraints, unknown critical
extensions), with CA rules of our own (keyCertSign when keyUsage is present) and no
web-PKI rules on the end entity. Within a transaction the signer that validated the
first signed response also verifies later responses signed with its key, whatever
extraCerts they carry (a CA need not repeat its certificate and chain in pollRep or
pkiConf; OpenSSL reuses its validated server certificate the same way).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from . import protection
from .messages import (
    DecodedMessage,
    decode_mac_parameters,
    decode_signature_algorithm,
    rsa_pss_key_parameters,
)
from .pool import EXTENSION_ERRORS, CertificatePool, not_der, unique
from .protection import ProtectionError, SignatureAlgorithm

#: longest path from a signer to a trust anchor, anchor included
MAX_CHAIN_DEPTH = 8
#: how far the CA's clock may run ahead of ours for a certificate it has just issued
ISSUED_CLOCK_SKEW = timedelta(minutes=5)
#: id-kp-cmcCA and id-kp-cmcRA (RFC 6402 2.10), the EKUs of CMP signers (RFC 9480 2.2)
OID_KP_CMC_CA = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.27")
OID_KP_CMC_RA = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.28")
CMP_SIGNER_EKUS = frozenset({OID_KP_CMC_CA, OID_KP_CMC_RA, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE})
#: EKU OIDs by their RFC 5280 names (serverAuth, clientAuth, ...), for messages
_EKU_NAMES = {
    oid: name.split("_")[0].lower() + "".join(w.capitalize() for w in name.split("_")[1:])
    for name, oid in vars(ExtendedKeyUsageOID).items() if isinstance(oid, x509.ObjectIdentifier)
}


def describe(cert: x509.Certificate) -> str:
    """How a certificate is named in messages: its subject (RFC 4514)."""
    return cert.subject.rfc4514_string() or f"<empty subject, serial {cert.serial_number:X}>"


def _ski(cert: x509.Certificate) -> bytes | None:
    """The subjectKeyIdentifier of *cert*; None when absent or unreadable (such a
    certificate is then refused as a signer by :func:`check_cmp_signer`)."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, *EXTENSION_ERRORS):
        return None


def check_validity(cert: x509.Certificate, now: datetime, role: str) -> None:
    """RFC 5280 6.1.3 (a)(2) for one certificate, with a message that names it."""
    if now < cert.not_valid_before_utc:
        raise ProtectionError(
            f"{role} {describe(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
        )
    if now > cert.not_valid_after_utc:
        raise ProtectionError(
            f"{role} {describe(cert)} expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
        )


def check_cmp_signer(cert: x509.Certificate, ignore_keyusage: bool = False) -> None:
    """May *cert* sign CMP messages? (RFC 9483 3.5, RFC 9480 2.2, RFC 5280 4.2.1.3/12)

    When keyUsage is present it must include digitalSignature (OpenSSL's ``cmp`` makes the
    same check; ``ignore_keyusage`` relaxes only this one, like its ``-ignore_keyusage``).
    When extendedKeyUsage is present it must allow CMP: id-kp-cmcCA, id-kp-cmcRA or
    anyExtendedKeyUsage.
    """
    refusal = not_der(cert, "signer")  # RFC 5280 4.1, said before cryptography says less
    if refusal is not None:
        raise ProtectionError(refusal)
    try:
        extensions = cert.extensions
    except EXTENSION_ERRORS as exc:
        raise ProtectionError(
            f"signer {describe(cert)} has extensions that cannot be read: {exc}"
        ) from None
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature and not ignore_keyusage:
        raise ProtectionError(f"signer {describe(cert)} lacks digitalSignature key usage")
    try:
        purposes = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not CMP_SIGNER_EKUS.intersection(purposes):
        names = ", ".join(_EKU_NAMES.get(p, p.dotted_string) for p in purposes)
        raise ProtectionError(
            f"signer {describe(cert)} has extended key usage {names}, none of which allows CMP"
            " (id-kp-cmcCA, id-kp-cmcRA or anyExtendedKeyUsage)"
        )


def check_key_allows(cert: x509.Certificate, algorithm: SignatureAlgorithm) -> None:
    """May the key of *cert* have made a signature with *algorithm*? (RFC 4055 1.2, 3.3)

    An RSA-PSS key (SubjectPublicKeyInfo id-RSASSA-PSS) signs only with RSASSA-PSS, never
    PKCS#1 v1.5, although the numbers would verify either; when its RSASSA-PSS-params
    are present, the signature must use their hash and MGF1 hash, a salt at least as long
    and their trailer field (our signatures' salt is the hash length, RFC 9481 3.1).
    """
    if not protection.is_rsa_pss_certificate(cert):
        return
    if algorithm.family != "rsa-pss":
        raise ProtectionError(
            f"signer {describe(cert)} has an RSA-PSS key (id-RSASSA-PSS, RFC 4055), which signs"
            f" only with RSASSA-PSS, not {algorithm}"
        )
    named = rsa_pss_key_parameters(cert)
    if named is not None and (
        named.hash != algorithm.hash or named.mgf_hash != algorithm.hash
        or protection.hash_size(algorithm.hash) < named.salt_length or named.trailer != 1
    ):
        raise ProtectionError(
            f"signer {describe(cert)} has an RSA-PSS key restricted to {named} (RFC 4055 3.3),"
            f" not {algorithm}"
        )


def _ca_key_usage(policy, cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    """RFC 5280 6.1.4 (n): an issuer with keyUsage must have keyCertSign."""
    if usage is not None and not usage.key_cert_sign:
        raise ValueError(f"CA {describe(cert)} lacks keyCertSign key usage")


_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
)
#: the end entity's own rules (signer or issued certificate) are checked by the caller;
#: unknown critical extensions are still refused
_EE_POLICY = ExtensionPolicy.permit_all()
#: CA key algorithms that x509.verification refuses on a path ("Forbidden public key
#: algorithm"): its web-PKI list, which its API cannot change (pyca/cryptography#13391,
#: open; 50.0.2 still refuses them). End entities, the CMP signer included, may use them.
UNSUPPORTED_CA_KEYS = {
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
    protection.OID_RSASSA_PSS: "RSA-PSS (id-RSASSA-PSS)",
}
#: what cryptography's failure messages hold that ours leave out; a pattern compiled (by
#: ``re``'s cache) when a validation first fails, not at import
_NOISE = (
    r"validation failed: |candidates exhausted: |Python extension validator failed: \w+: "
    r"| \(encountered processing <Certificate\(.*\)>\)"
)


def validate_path(
    cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: datetime,
    role: str = "certificate",
) -> list[x509.Certificate]:
    """The RFC 5280 path from *cert* (the *role* it plays, for messages) to one of *anchors*
    (anchor last), or ProtectionError.

    A certificate that is not DER is refused by name (:func:`agent.cmp.pool.not_der`):
    *cert* before validation (with our extension policies cryptography would not read its
    extensions), an issuer on the way to an anchor when validation fails (cryptography
    says only "ASN.1 parsing error"); so is an issuer whose name *cert* writes otherwise
    (:func:`_issuer_written_otherwise`, cryptography says "no path"), as Insta's does.
    """
    if not anchors:
        raise ProtectionError(f"no trust anchor to validate {describe(cert)} against")
    refusal = not_der(cert, role)
    if refusal is not None:
        otherwise = _issuer_written_otherwise(cert, [*intermediates, *anchors])
        raise ProtectionError(f"{refusal}; {otherwise}" if otherwise else refusal)
    verifier = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(now)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        return verifier.verify(cert, list(intermediates)).chain
    except VerificationError as exc:
        reason = re.sub(_NOISE, "", str(exc))
        if reason.startswith("all candidates exhausted with no interior errors"):
            reason = "no path to a trust anchor"
        elif reason.startswith("Forbidden public key algorithm"):
            reason = _unsupported_ca_keys(cert, [*intermediates, *anchors])
        if reason.startswith(("ASN.1 parsing error", "no path")):
            refused = [refusal for c in _issuers_above(cert, [*intermediates, *anchors])
                       if (refusal := not_der(c, "trust anchor" if c in anchors else "CA certificate"))]
            reason = ("; ".join(refused) or _issuer_written_otherwise(cert, [*intermediates, *anchors])
                      or reason)
        raise ProtectionError(f"no trusted chain for {describe(cert)}: {reason}") from None


def _issuer_written_otherwise(cert: x509.Certificate, candidates: Sequence[x509.Certificate]
                              ) -> str | None:
    """Why no candidate issued *cert* when one has its issuer name as subject, but written
    with other string types (e.g. PrintableString for UTF8String): cryptography chains
    names by their encoding, not after LDAP StringPrep (RFC 5280 7.1); the CA should write
    its name as in its certificate (RFC 5280 4.1.2.6). Said, never accepted."""
    issuer = cert.issuer.public_bytes()
    found = next((c for c in candidates if c.subject == cert.issuer
                  and c.subject.public_bytes() != issuer), None)
    if found is None:
        return None
    return (f"the issuer name of {describe(cert)} is the subject of {describe(found)} written with"
            " other string types, and cmp-agent's path validation (cryptography) matches names"
            " as encoded (RFC 5280 4.1.2.6 asks the CA to write its name as in its certificate)")


def _issuers_above(cert: x509.Certificate, candidates: Sequence[x509.Certificate]
                   ) -> list[x509.Certificate]:
    """The *candidates* that may be on a path up from *cert*, by names (subject, issuer)."""
    found, names, seen = [], {cert.issuer}, {cert}
    for _ in range(MAX_CHAIN_DEPTH):
        issuers = [c for c in candidates if c.subject in names and c not in seen]
        seen.update(issuers)
        found += issuers
        names = {c.issuer for c in issuers}
    return unique(found)


def _unsupported_ca_keys(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> str:
    """Why x509.verification refused an issuer's key, naming the CAs above *cert* whose
    key algorithm it does not accept (:data:`UNSUPPORTED_CA_KEYS`)."""
    found = [c for c in _issuers_above(cert, candidates)
             if c.public_key_algorithm_oid.dotted_string in UNSUPPORTED_CA_KEYS]
    keys = ", ".join(
        f"{describe(c)} has an {UNSUPPORTED_CA_KEYS[c.public_key_algorithm_oid.dotted_string]} key"
        for c in found
    ) or "an issuer's key algorithm is not accepted"
    return (f"{keys}; path validation (cryptography's x509.verification) accepts only RSA"
            " (rsaEncryption) and ECDSA keys for CAs (see README, \"Trust model\")")


@dataclass(frozen=True)
class Verified:
    """How a response was authenticated."""

    #: under our shared secret (RFC 4210 5.1.3.1)
    mac: bool
    #: the certificate whose key signed it (None for MAC)
    signer: x509.Certificate | None = None


@dataclass
class ResponseVerifier:
    """How to check the protection of responses from the CA (one trust model, see README).

    - ``server_cert``: the pinned signer; ``trusted`` is then not used for responses,
      only for the issued certificate.
    - ``trusted``: trust anchors; ``untrusted``: certificates that may only serve as
      intermediates or name the signer (the device's other certificates), a
      :class:`CertificatePool` or a sequence (indexed then).
    - ``ignore_keyusage``: accept a signer without digitalSignature (only that check).
    - ``weak_algorithms``: admit SHA-1 (PBM one-way function, HMAC, PBKDF2 PRF, signature
      hash); MAC parameters are bounded by :data:`agent.cmp.protection.MAC_PARAMETER_BOUNDS`.
    """

    secret: bytes | None = field(default=None, repr=False)
    server_cert: x509.Certificate | None = None
    trusted: Sequence[x509.Certificate] = ()
    untrusted: CertificatePool | Sequence[x509.Certificate] = ()
    ignore_keyusage: bool = False
    weak_algorithms: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.untrusted, CertificatePool):
            self.untrusted = CertificatePool.of(self.untrusted)

    def _pool(self) -> CertificatePool:
        assert isinstance(self.untrusted, CertificatePool)  # made one by __post_init__
        return self.untrusted

    def verify(
        self, message: DecodedMessage, now: datetime, signer: x509.Certificate | None = None
    ) -> Verified:
        """How *message* is validly protected, or :class:`ProtectionError` naming the check.

        *signer*: the signer validated earlier in the same transaction, reused when its
        key signed *message*.
        """
        if message.protection is None or message.protection_alg is None:
            raise ProtectionError("message is not protected")
        alg = message.protection_alg
        if alg.oid in (protection.OID_PASSWORD_BASED_MAC, protection.OID_PBMAC1):
            if self.secret is None:
                raise ProtectionError("message is MAC-protected but no shared secret is configured")
            protection.verify_mac(self.secret, decode_mac_parameters(alg), message.protected_part,
                                  message.protection, self.weak_algorithms)
            return Verified(mac=True)
        algorithm = decode_signature_algorithm(alg)  # once: each candidate signer uses it
        protection.check_signature_algorithm(algorithm, self.weak_algorithms)
        return Verified(mac=False, signer=self._verify_signature(message, algorithm, now, signer))

    # -- signatures ------------------------------------------------------------

    @staticmethod
    def _verify_with(cert: x509.Certificate, message: DecodedMessage,
                     algorithm: SignatureAlgorithm) -> None:
        try:
            public_key = cert.public_key()
        except (UnsupportedAlgorithm, ValueError) as exc:
            raise ProtectionError(f"the public key of {describe(cert)} cannot be used: {exc}") from None
        protection.verify_signature(public_key, algorithm, message.protected_part,
                                    message.protection)

    def _signed_by(self, cert: x509.Certificate, message: DecodedMessage,
                   algorithm: SignatureAlgorithm) -> bool:
        try:
            self._verify_with(cert, message, algorithm)
        except ProtectionError:
            return False
        return True

    @staticmethod
    def _sender_mismatch(cert: x509.Certificate, message: DecodedMessage) -> ProtectionError | None:
        """RFC 4210 5.1.1: sender names the signer (and senderKID its key identifier)."""
        if message.sender != cert.subject:
            sender = message.sender.rfc4514_string() if message.sender is not None else "(not a name)"
            return ProtectionError(
                f"sender {sender} does not match the signer certificate's subject {describe(cert)}"
            )
        ski = _ski(cert)
        if message.sender_kid is not None and ski is not None and ski != message.sender_kid:
            return ProtectionError(
                f"senderKID {message.sender_kid.hex()} is not the key identifier of the signer"
                f" {describe(cert)}"
            )
        return None

    def _check_signer(self, cert: x509.Certificate, message: DecodedMessage,
                      algorithm: SignatureAlgorithm, now: datetime) -> None:
        """The checks on the signer itself, pinned or not."""
        mismatch = self._sender_mismatch(cert, message)
        if mismatch is not None:
            raise mismatch
        check_key_allows(cert, algorithm)
        check_validity(cert, now, "signer")
        check_cmp_signer(cert, self.ignore_keyusage)

    def _verify_signature(
        self, message: DecodedMessage, algorithm: SignatureAlgorithm, now: datetime,
        previous: x509.Certificate | None,
    ) -> x509.Certificate:
        if self.server_cert is not None:
            try:
                self._verify_with(self.server_cert, message, algorithm)
            except ProtectionError as exc:
                raise ProtectionError(
                    f"{exc} (pinned server certificate {describe(self.server_cert)})"
                ) from None
            self._check_signer(self.server_cert, message, algorithm, now)
            return self.server_cert
        if previous is not None and self._signed_by(previous, message, algorithm):
            self._check_signer(previous, message, algorithm, now)  # its path was validated before
            return previous
        if not self.trusted:
            raise ProtectionError(
                "message is signed but no server certificate or trust anchor is configured"
            )
        untrusted = self._pool()
        # the signer is named by senderKID and the sender name (RFC 4210 5.1.1)
        named = [c for c in unique([*message.extra_certs, *untrusted.named(message.sender),
                                     *self.trusted])
                 if self._sender_mismatch(c, message) is None]
        intermediates = unique([*message.extra_certs, *untrusted.intermediates()])
        failure: ProtectionError | None = None
        for cert in named:
            if not self._signed_by(cert, message, algorithm):
                continue
            try:
                self._check_signer(cert, message, algorithm, now)
                validate_path(cert, intermediates, self.trusted, now, "signer")
            except ProtectionError as exc:
                failure = failure or exc
                continue
            return cert
        if failure is not None:
            raise failure
        pool = unique([*message.extra_certs, *untrusted, *self.trusted])
        other = next((c for c in pool if c not in named and self._signed_by(c, message, algorithm)),
                     None)
        if other is not None:
            raise self._sender_mismatch(other, message)
        if named:
            raise ProtectionError(
                f"signature protection is invalid: it does not verify with the key of {describe(named[0])}"
            )
        sender = message.sender.rfc4514_string() if message.sender is not None else "(not a name)"
        raise ProtectionError(
            f"no certificate of the sender {sender} in the message's extraCerts or on the device"
        )

    # -- the issued certificate ---------------------------------------------------

    def validate_issued(
        self,
        cert: x509.Certificate,
        extra_certs: Sequence[x509.Certificate],
        ca_pubs: Sequence[x509.Certificate],
        ca_pubs_trusted: bool,
        now: datetime,
    ) -> bool:
        """RFC 9483 4.1.1: the new certificate must chain to a trust anchor; whether it
        was checked (False: no anchor to check it against).

        The anchors are ``trusted``, whether or not the signer is pinned by
        ``server_cert`` (a pinned signer vouches for nothing else), plus caPubs when
        they came under our verified MAC in an IR; extraCerts, caPubs and the device's
        certificates serve as intermediates. Without any anchor there is nothing to
        check against (a MAC-only enrollment without caPubs, a pinned signer without
        ``trusted``): the caller says so. A certificate valid from a moment up to
        :data:`ISSUED_CLOCK_SKEW` ahead (the CA's clock ahead of ours) is checked at
        that moment.
        """
        anchors = unique([*self.trusted, *(ca_pubs if ca_pubs_trusted else ())])
        if not anchors:
            return False
        at = max(now, min(cert.not_valid_before_utc, now + ISSUED_CLOCK_SKEW))
        validate_path(cert, unique([*extra_certs, *ca_pubs, *self._pool().intermediates()]),
                      anchors, at, "issued certificate")
        return True
