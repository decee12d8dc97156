"""From a committed CMP session to a request for the CMP engine.

This is where the seed's session configuration (steps 4-12) meets
:class:`agent.cmp.client.EnrollmentRequest`: subject from the entity, recipient
from ``ca-name``, the key pair, MAC or signature credentials, the trust anchors
and untrusted certificates that verify the CA's answers, and the source address.
The CMP engine then decides exactly as the shell's ``cmp-agent cmp`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.cmp.names import NameSyntaxError, Subject, SubjectAltNames, parse_dn
from agent.cmp.pool import CertificatePool, not_der
from agent.datastore import SecretBox
from agent.netconf.errors import RpcError
from agent.pki.config import PkiConfig, RequestType, SessionConfig
from agent.pki.interfaces import interface_address
from agent.pki.preconditions import problems, signer_problem
from agent.pki.stores import (
    CertificateStore,
    KeyStore,
    PrivateKey,
    check_name,
    describe_key,
    generate_key,
)

if TYPE_CHECKING:
    from agent.cmp.client import EnrollmentRequest

# The CMP engine (agent.cmp.client) is imported by the functions that build its
# requests, when a transaction first needs it: an agent starts without loading it.


@dataclass(frozen=True)
class PreparedRequest:
    """A request ready for the engine, and what to do with its result."""

    session: SessionConfig
    kind: RequestType
    request: EnrollmentRequest
    #: the key pair certified; saved under ``session.key_pair_name`` on success
    #: when ``key_is_new`` (KUR with regenerate)
    new_key: PrivateKey
    key_is_new: bool
    #: a missing key pair was created (and saved) for this request
    key_pair_created: bool
    #: KUR: the certificate file the new certificate replaces
    replaces_certificate: str | None
    #: IR/CR: the file the new certificate is saved to
    certificate_file: str
    #: what the operator should know even when the request succeeds (a weak algorithm)
    warning: str | None = None


def _spki(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_for_certificate(keys: KeyStore, cert: x509.Certificate, preferred: str | None) -> PrivateKey:
    """The private key in the key store whose public key *cert* certifies."""
    wanted = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    names = keys.names()
    if preferred in names:
        names.remove(preferred)
        names.insert(0, preferred)
    for name in names:
        key = keys.load(name)
        if _spki(key) == wanted:
            return key
    raise RpcError(
        "operation-failed",
        f"no key pair in the key store matches the public key of {cert.subject.rfc4514_string()!r}:"
        " import its private key with key-pair-import",
    )


def issuer_chain(
    pool: tuple[x509.Certificate, ...], cert: x509.Certificate
) -> tuple[x509.Certificate, ...]:
    """The CA certificates of *pool* that lead from *cert*'s issuer up to a root."""
    chain: list[x509.Certificate] = []
    current = cert
    while current.issuer != current.subject and len(chain) < 8:
        issuer = next((c for c in pool if c.subject == current.issuer and c not in chain), None)
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)


def sent_chain(session: SessionConfig, certs: CertificateStore, pool: tuple[x509.Certificate, ...],
               cert: x509.Certificate) -> tuple[x509.Certificate, ...]:
    """:func:`issuer_chain` of *cert* for a request to send (extraCerts, the TLS client's
    chain), DER certificates of *pool* preferred; one that is not DER is refused, naming its
    file, rather than sent: the CA would read what we refuse in its answers (RFC 5280 4.1;
    ``cmp-agent cmp --extracerts`` refuses it too; README "Trust model")."""
    chain = issuer_chain(tuple(sorted(pool, key=lambda c: not_der(c, "") is not None)), cert)
    for issuer in chain:
        refusal = not_der(issuer, "CA certificate")
        if refusal is not None:
            files = [name for name, stored, _ in certs.certificates() if stored == issuer]
            raise RpcError("operation-failed", f"session {session.name}: certificate file"
                           f" {', '.join(files) or '?'} (the chain sent with"
                           f" {cert.subject.rfc4514_string()}): {refusal}")
    return chain


def tls_settings(session: SessionConfig, keys: KeyStore, certs: CertificateStore,
                 ca_pool: tuple[x509.Certificate, ...]) -> dict:
    """The session's ``tls`` container as :class:`EnrollmentRequest` fields (https:// CAs);
    the client certificate's chain is taken from *ca_pool*."""
    from agent.cmp.client import SignerCredentials

    client = None
    if session.tls_client_cert:
        cert = checked_certificate(session, certs, session.tls_client_cert, "TLS client certificate")
        if session.tls_client_key_pair:
            key = keys.load(session.tls_client_key_pair)
        else:
            key = key_for_certificate(keys, cert, None)
        try:
            client = SignerCredentials(cert, key, sent_chain(session, certs, ca_pool, cert))
        except ValueError as exc:
            raise RpcError("operation-failed", f"session {session.name}: tls client-cert: {exc}") from None
    return {
        "tls_trusted": tuple(checked_certificate(session, certs, name, "TLS trust anchor")
                             for name in session.tls_trusted) or None,
        "tls_client": client,
        "tls_host": session.tls_server_name,
    }

@dataclass(frozen=True)
class SessionTrust:
    """Seed step 10 as the README's trust model reads it."""

    #: the trust anchors of the CA's answers and of the issued certificate
    anchors: tuple[x509.Certificate, ...]
    #: the device's other certificates: intermediates only (and the signer, when the
    #: sender names one), looked up by the verifier rather than each read per request
    untrusted: CertificatePool
    #: the device's CA certificates, for the chain we send with our own certificate
    ca_certificates: tuple[x509.Certificate, ...]


def session_anchors(session: SessionConfig,
                    certs: CertificateStore) -> tuple[x509.Certificate, ...]:
    """With ``verification-cert``: that CA certificate is the only anchor. Without:
    the files imported as trust anchors and caPubs received under a verified MAC in
    an IR."""
    if session.verification_cert:
        return (checked_certificate(session, certs, session.verification_cert, "trust anchor"),)
    return certs.anchors()


def session_trust(session: SessionConfig, certs: CertificateStore) -> SessionTrust:
    """The session's anchors (:func:`session_anchors`); every other certificate on the
    device may only complete a path."""
    catalogue = certs.catalogue()
    anchors = session_anchors(session, certs)
    return SessionTrust(
        anchors=anchors,
        untrusted=catalogue.pool.without(anchors),
        ca_certificates=catalogue.pool.authorities,
    )


def weak_algorithm_warning(session: SessionConfig) -> str | None:
    """Seed step 9: hmac-sha1 is allowed while weak algorithms are enabled, never silently."""
    if session.integrity_algorithm != "hmac-sha1":
        return None
    return (f"warning: session {session.name} uses hmac-sha1, a weak algorithm"
            " (RFC 9481 6.1 recommends hmac-sha256)")


#: the modulus length of a key pair created because the session's does not exist
DEFAULT_RSA_BITS = 2048
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")


def regenerated_key(current: PrivateKey, key_bits: int | None) -> PrivateKey:
    """Seed step 7 ``regenerate [ key-bit ]``: a new pair of the current pair's algorithm
    and size; *key_bits* (when configured) changes only an RSA pair's length."""
    info = describe_key("current", current)
    if info.algorithm == "rsa":
        return generate_key("rsa", key_bits or info.key_bits)
    return generate_key("ec", curve=info.curve)


def unescape_url(url: str) -> str:
    """Seed step 6 ``server url esc``: decode the ``\\xHH`` escapes (e.g. ``\\x3f`` for the
    ``?`` the device CLI cannot take), and nothing else."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), url)


def connection(session: SessionConfig, pki: PkiConfig, keys: KeyStore, certs: CertificateStore,
               trust: SessionTrust, connect_timeout: float) -> dict:
    """The fields of an engine request that say where the CA is and how its answers are
    checked (seed steps 5, 6, 8, 10, and TLS), the same for every kind of request."""
    try:
        recipient = parse_dn(session.ca_name) if session.ca_name else None
    except NameSyntaxError as exc:
        raise RpcError("operation-failed", f"session {session.name}: ca-name: {exc}") from None
    from agent.cmp.transport import ServerUrl

    try:  # what esc decodes must still make a URL that can be sent
        url = ServerUrl.parse(unescape_url(session.url) if session.url_escaped else session.url)
    except ValueError as exc:
        raise RpcError("operation-failed", f"session {session.name}: server-url: {exc}") from None
    source = session.source_address
    if session.source_interface:  # of the family of the host connected to
        source = interface_address(session.source_interface, url.host)
    return dict(
        server_url=url,
        recipient=recipient,
        trusted=trust.anchors,
        untrusted=trust.untrusted,
        ignore_keyusage=session.ignore_keyusage,
        source_address=source,
        connect_timeout=connect_timeout,
        message_timeout=session.message_timeout,
        total_timeout=session.total_timeout or None,
        digest=session.digest,
        weak_algorithms=pki.weak_algorithms_enabled,
        **tls_settings(session, keys, certs, trust.ca_certificates),
    )


def checked_certificate(session: SessionConfig, certs: CertificateStore, name: str,
                        role: str = "certificate") -> x509.Certificate:
    """The device's certificate file *name* that the session's configuration names, as
    *role*: to sign with or name (authentication-cert, the one to revoke), to trust
    (verification-cert, tls/trusted-cert) or to present (tls/client-cert). One whose
    extensions are not DER is refused before anything is sent, as path validation refuses
    it (cryptography reads neither its subjectKeyIdentifier, our senderKID, nor its CRL
    distribution points; OpenSSL, which checks the TLS ones, would take it; README "Trust
    model")."""
    cert = certs.load(name)
    refusal = not_der(cert, role)
    if refusal is not None:
        raise RpcError("operation-failed", f"session {session.name}: certificate file {name}: {refusal}")
    return cert


def refuse_invalid(session: SessionConfig, certs: CertificateStore, name: str,
                   now: datetime | None, kind: str, leaf: str = "authentication-cert") -> None:
    """RpcError if the certificate file *name*, which *session* names in *leaf*, is not
    valid at *now* to sign a request of *kind* (:func:`signer_problem`); nothing when
    *now* is None."""
    if now is None:
        return
    refusal = signer_problem(session.name, certs.describe(name), now, kind, leaf)
    if refusal:
        raise RpcError("operation-failed", f"session {session.name}: {refusal}")


def refuse_invalid_tls_client(session: SessionConfig, certs: CertificateStore,
                              now: datetime | None) -> None:
    """RpcError if the session's TLS client certificate (https CAs) is not valid at *now*:
    the CA's server would end the handshake (RFC 5280 6.1.3), the request never sent."""
    url = (unescape_url(session.url) if session.url_escaped else session.url) or ""
    if session.tls_client_cert and url.lower().startswith("https:"):
        refuse_invalid(session, certs, session.tls_client_cert, now, "tls", "tls client-cert")


def _session_credentials(session: SessionConfig, keys: KeyStore, certs: CertificateStore,
                         secrets: SecretBox, anchors: tuple[x509.Certificate, ...]):
    """(mac, signer) as the session authenticates an initial request (seed step 11)."""
    from agent.cmp.client import MacCredentials, SignerCredentials

    if session.origin_authentication == "message-authentication-code":
        if not (session.mac_reference and session.mac_secret_ciphertext):
            raise RpcError("operation-failed", f"session {session.name}: message-authentication-code"
                           " needs reference-value and secret-value")
        return MacCredentials(
            reference=session.mac_reference.encode(),
            secret=secrets.open_text(session.mac_secret_ciphertext).encode(),
            algorithm=session.integrity_algorithm,
        ), None
    if not session.authentication_cert:
        raise RpcError("operation-failed", f"session {session.name}: no authentication-cert")
    own = checked_certificate(session, certs, session.authentication_cert)
    return None, SignerCredentials(own, key_for_certificate(keys, own, session.key_pair_name),
                                   sent_chain(session, certs, anchors, own))


def _session_ready(session: SessionConfig) -> None:
    if not session.url:
        raise RpcError("operation-failed", f"session {session.name}: no server-url")


def prepare_revocation(session: SessionConfig, pki: PkiConfig, keys: KeyStore, certs: CertificateStore,
                       secrets: SecretBox, certificate_file: str, reason: int, *,
                       connect_timeout: float, now: datetime | None = None) -> EnrollmentRequest:
    """RFC 9483 4.2: an rr for *certificate_file*, signed with the certificate's own key
    when the key store has it, else authenticated like the session's initial request.

    The signer must be valid at *now* (when given): a certificate past its notAfter
    cannot sign its own rr, and is refused before anything is sent
    (:func:`signer_problem`); signed with the authentication-cert instead, that one must
    be valid, and whether the CA revokes an expired certificate is the CA's to say."""
    from agent.cmp.client import EnrollmentRequest, SignerCredentials

    _session_ready(session)
    cert = checked_certificate(session, certs, certificate_file)
    trust = session_trust(session, certs)
    try:
        key = key_for_certificate(keys, cert, session.key_pair_name)
    except RpcError:
        key = None
    if key is not None:
        refuse_invalid(session, certs, certificate_file, now, "rr", "certificate-file")
        mac, signer = None, SignerCredentials(
            cert, key, sent_chain(session, certs, trust.ca_certificates, cert))
    else:
        mac, signer = _session_credentials(session, keys, certs, secrets, trust.ca_certificates)
        if signer is not None:
            refuse_invalid(session, certs, session.authentication_cert, now, "rr")
    refuse_invalid_tls_client(session, certs, now)
    return EnrollmentRequest(kind="rr", mac=mac, signer=signer, old_certificate=cert,
                             revocation_reason=reason,
                             **connection(session, pki, keys, certs, trust, connect_timeout))


def current_root(session: SessionConfig, certs: CertificateStore) -> x509.Certificate | None:
    """The root the session trusts now: a self-signed trust anchor of the session (its
    verification-cert, else the store's anchors), the one named like the session's ca-name
    when there are several."""
    roots = [c for c in session_anchors(session, certs) if c.issuer == c.subject]
    if session.ca_name:
        try:
            named = parse_dn(session.ca_name)
            roots = [c for c in roots if c.subject == named] or roots
        except NameSyntaxError:
            pass
    return roots[0] if roots else None


def prepare_general(session: SessionConfig, pki: PkiConfig, keys: KeyStore, certs: CertificateStore,
                    secrets: SecretBox, entries, *, connect_timeout: float,
                    now: datetime | None = None) -> EnrollmentRequest:
    """RFC 9483 4.3: a genm asking for *entries*, authenticated like an initial request
    (signed: with an authentication-cert valid at *now*, when given)."""
    from agent.cmp.client import EnrollmentRequest

    _session_ready(session)
    trust = session_trust(session, certs)
    mac, signer = _session_credentials(session, keys, certs, secrets, trust.ca_certificates)
    if signer is not None:
        refuse_invalid(session, certs, session.authentication_cert, now, "genm")
    refuse_invalid_tls_client(session, certs, now)
    return EnrollmentRequest(kind="genm", mac=mac, signer=signer, general=tuple(entries),
                             cert_profile=session.cert_profile,
                             **connection(session, pki, keys, certs, trust, connect_timeout))



def prepare(
    session: SessionConfig,
    kind: RequestType,
    pki: PkiConfig,
    keys: KeyStore,
    certs: CertificateStore,
    secrets: SecretBox,
    *,
    connect_timeout: float,
    now: datetime | None = None,
) -> PreparedRequest:
    """Check *session* for *kind* and build the engine request; RpcError otherwise.

    A request signed with an authentication-cert that is not valid at *now* (when given),
    or sent over TLS with a client-cert that is not, is refused here, before a key pair is
    made or anything is sent (:func:`signer_problem`).
    """
    from agent.cmp.client import EnrollmentRequest, MacCredentials, SignerCredentials

    found = problems(session, kind, certs.exists)
    if found:
        raise RpcError("operation-failed", f"session {session.name}: " + "; ".join(found))
    assert session.url and session.key_pair_name  # checked above
    by_mac = kind in ("ir", "p10cr") and session.origin_authentication == "message-authentication-code"
    if not by_mac:
        refuse_invalid(session, certs, session.authentication_cert, now, kind)
    refuse_invalid_tls_client(session, certs, now)

    key_pair_created = False
    if keys.exists(session.key_pair_name):
        current_key = keys.load(session.key_pair_name)
    else:
        current_key = generate_key("rsa", session.key_bits or DEFAULT_RSA_BITS)
        keys.save(session.key_pair_name, current_key)
        key_pair_created = True
    key_is_new = kind == "kur" and session.regenerate and not key_pair_created
    new_key = regenerated_key(current_key, session.key_bits) if key_is_new else current_key

    trust = session_trust(session, certs)  # the store read once
    mac = signer = None
    warning = None
    if by_mac:
        warning = weak_algorithm_warning(session)
        mac = MacCredentials(
            reference=session.mac_reference.encode(),
            secret=secrets.open_text(session.mac_secret_ciphertext).encode(),
            algorithm=session.integrity_algorithm,
        )
    else:
        own = checked_certificate(session, certs, session.authentication_cert)
        signer = SignerCredentials(
            certificate=own,
            key=key_for_certificate(keys, own, session.key_pair_name),
            chain=sent_chain(session, certs, trust.ca_certificates, own),
        )

    entity = session.entity
    subject = x509.Name([])
    san = SubjectAltNames()
    if entity is not None:
        subject = Subject(
            common_name=entity.common_name,
            country=entity.country,
            state=entity.state,
            locality=entity.locality,
            organization=entity.organization,
            organizational_unit=entity.organization_unit,
            email=entity.email,
        ).to_name()
        san = SubjectAltNames(
            dns=(entity.fqdn,) if entity.fqdn else (),
            ip=(entity.ip_address,) if entity.ip_address else (),
            email=(entity.email,) if entity.email else (),
        )
    if kind == "kur" and entity is None:
        subject = signer.certificate.subject

    request = EnrollmentRequest(
        kind=kind,
        new_key=new_key,
        subject=subject,
        san=san,
        mac=mac,
        signer=signer,
        implicit_confirm=session.implicit_confirm,
        cert_profile=session.cert_profile,
        **connection(session, pki, keys, certs, trust, connect_timeout),
    )
    return PreparedRequest(
        session=session,
        kind=kind,
        request=request,
        new_key=new_key,
        key_is_new=key_is_new,
        key_pair_created=key_pair_created,
        replaces_certificate=session.authentication_cert if kind == "kur" else None,
        certificate_file=check_name(f"{session.name}-local.{pki.file_format}", "certificate file"),
        warning=warning,
    )
