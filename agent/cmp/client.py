"""High-level CMP enrollment: configuration dataclasses and a synchronous driver.

>>> result = enroll(EnrollmentRequest(kind="ir", server_url="http://ca/pkix/",
...                 new_key=key, subject=parse_dn("/CN=router1"),
...                 mac=MacCredentials(b"3078", b"secret")))
>>> if result.ok: result.certificate

Randomness (transactionID, nonces, salts) comes from *rng* and time (messageTime,
poll deadlines, the waits between polls) from *clock*, so both can be injected. The
engine holds no global state; the PKI service runs :func:`enroll` in a thread of its
own per transaction and ends it early through a :class:`Cancellation`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.clock import Clock, SystemClock, yang_datetime

from . import messages as m
from . import protection
from .names import SubjectAltNames
from .protection import PrivateKey
from .transaction import (
    EnrollmentTransaction,
    Finished,
    Send,
    TransactionParams,
    TransactionResult,
    ca_texts,
)
from .transport import HttpTransport, ServerUrl, Transport, TransportError
from .pool import CertificatePool
from .verify import ResponseVerifier

if TYPE_CHECKING:
    import ssl

KINDS = ("ir", "cr", "kur", "p10cr", "rr", "genm")
#: the kinds that ask for a certificate
CERTIFICATE_KINDS = ("ir", "cr", "kur", "p10cr")


@dataclass(frozen=True)
class MacCredentials:
    """Shared-secret authentication: reference value (senderKID), secret and the MAC
    (a name of :data:`agent.cmp.protection.MAC_SCHEMES`: PBM ``hmac-*`` or ``pbmac1-*``)."""

    reference: bytes
    secret: bytes = field(repr=False)
    algorithm: str = "hmac-sha256"
    iteration_count: int = protection.DEFAULT_PBM_ITERATIONS

    def __post_init__(self) -> None:
        if self.algorithm not in protection.MAC_SCHEMES:
            raise ValueError(
                f"MAC algorithm {self.algorithm!r} is not one of {', '.join(protection.MAC_SCHEMES)}"
            )
        if not self.secret:
            raise ValueError("the MAC secret is empty")


@dataclass(frozen=True)
class SignerCredentials:
    """Signature authentication: our certificate, its key and its chain (sent in extraCerts).

    ``rsa_pss``: sign with RSASSA-PSS (the key is an RSA-PSS key); also implied by a
    certificate whose public key is an RSA-PSS key.
    """

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    rsa_pss: bool = False

    def __post_init__(self) -> None:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if self.certificate.public_key().public_bytes(serialization.Encoding.DER, spki) != (
            self.key.public_key().public_bytes(serialization.Encoding.DER, spki)
        ):
            # OpenSSL's words; nothing is sent with a key the CA cannot verify us by
            raise ValueError(
                f"cert and key do not match: the key is not the one certified in"
                f" {self.certificate.subject.rfc4514_string()}"
            )


@dataclass(frozen=True)
class EnrollmentRequest:
    """One request to a CMP server (RFC 9483 4): a certificate, a revocation or general
    information.

    - ``server_url``: the CA's URL; given as text, it is parsed (and refused when it
      cannot be sent) here, once, and is a :class:`ServerUrl` from then on.
    - ``kind``: ``ir`` (initial), ``cr`` (certification, normally signed with an existing
      certificate), ``kur`` (key update: signed with the old certificate and key, given
      as ``signer``; ``old_certificate`` defaults to ``signer.certificate``), ``p10cr``
      (a PKCS#10 request: ``csr``, or one built from ``new_key``, ``subject`` and
      ``san``), ``rr`` (revoke ``old_certificate`` for ``revocation_reason``, signed with
      its own key or a MAC) or ``genm`` (ask for the ``general`` info types).
    - ``new_key``: the private key of the key pair to certify (public key for the
      template, private key for proof of possession). With ``csr`` (any certificate
      kind), subject, subjectAltName and public key are the CSR's; ``new_key`` must then
      be the CSR's key for ir/cr/kur's proof of possession.
    - ``mac`` or ``signer``: how requests are protected; with both, MAC is used.
    - ``server_cert`` pins the CA's protection certificate; otherwise ``trusted`` are
      the trust anchors of a path from the response's signer, through the response's
      extraCerts and ``untrusted`` (see README, "Trust model"; a device's store passes
      its indexed :class:`~agent.cmp.pool.CertificatePool`). MAC-protected
      responses are checked with ``mac.secret``. ``ignore_keyusage`` accepts a signer
      without digitalSignature key usage (only that check).
    - ``recipient``: the CA name; defaults to the subject of ``server_cert``, else the
      issuer of the signer/old certificate, else the NULL-DN.
    - ``tls_trusted``: for ``https://`` URLs, the CAs that may vouch for the server's
      TLS certificate (the system's default trust store when ``None``); the
      certificate must name ``tls_host`` (default: the URL's host). ``tls_client``:
      the certificate, key and chain we present as TLS client, if the CA asks.
    - ``digest``: the hash of our signatures, protection and proof of possession
      (:data:`agent.cmp.protection.DIGESTS`; default per key, see
      :func:`agent.cmp.protection.signature_algorithm_for`).
    - ``weak_algorithms``: SHA-1 may be used, sent (``hmac-sha1``, digest ``sha1``) and
      received; otherwise both are refused.
    """

    kind: str
    server_url: ServerUrl | str
    new_key: PrivateKey | None = field(default=None, repr=False)
    subject: x509.Name = field(default_factory=lambda: x509.Name([]))
    san: SubjectAltNames = SubjectAltNames()
    recipient: x509.Name | None = None
    mac: MacCredentials | None = None
    signer: SignerCredentials | None = None
    old_certificate: x509.Certificate | None = None
    server_cert: x509.Certificate | None = None
    trusted: tuple[x509.Certificate, ...] = ()
    untrusted: CertificatePool | tuple[x509.Certificate, ...] = ()
    ignore_keyusage: bool = False
    implicit_confirm: bool = False
    #: certProfile (RFC 9480 2.17) to ask for
    cert_profile: str | None = None
    csr: x509.CertificateSigningRequest | None = None
    #: rr: the CRLReason (RFC 5280 5.3.1) sent as reasonCode; None sends none
    revocation_reason: int | None = None
    #: genm: the InfoTypeAndValue entries asked for
    general: tuple[m.InfoTypeAndValue, ...] = ()
    #: trust anchors for an https:// server (None: the system's default CAs)
    tls_trusted: tuple[x509.Certificate, ...] | None = None
    tls_client: SignerCredentials | None = None
    tls_host: str | None = None
    source_address: str | None = None
    connect_timeout: float = 10.0
    #: bound on each HTTP exchange (RFC 6712), from connect to the last byte of the answer
    message_timeout: float = 120.0
    #: bound on the whole transaction, polling included; None: poll as long as the CA asks
    total_timeout: float | None = None
    digest: str | None = None
    weak_algorithms: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.server_url, ServerUrl):
            object.__setattr__(self, "server_url", ServerUrl.parse(self.server_url))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.mac is None and self.signer is None:
            raise ValueError("either a MAC secret or a signer certificate and key is required")
        if self.kind == "kur" and self.signer is None:
            raise ValueError("kur is signed with the old certificate and key: give signer")
        if (self.connect_timeout <= 0 or self.message_timeout <= 0
                or (self.total_timeout is not None and self.total_timeout <= 0)):
            raise ValueError("timeouts must be positive")
        if self.kind == "rr" and self.old_cert is None:
            raise ValueError("rr needs the certificate to revoke (old_certificate)")
        if self.kind == "genm" and not self.general:
            raise ValueError("genm needs at least one info type")
        if self.kind not in CERTIFICATE_KINDS:
            return
        if self.csr is None and self.new_key is None:
            raise ValueError("a new key (or a CSR) is required")
        if self.kind != "p10cr" and self.new_key is None:
            raise ValueError(f"{self.kind} proves possession with the private key: give new_key")
        if self.csr is not None and self.new_key is not None and _spki(self.new_key) != _spki(self.csr):
            raise ValueError("the new key is not the key of the CSR")
        if not len(self.subject) and self.old_cert is None and self.csr is None:
            raise ValueError("a subject is required")
        if self.digest is not None and self.digest not in protection.DIGESTS:
            raise ValueError(f"digest {self.digest!r} is not one of {', '.join(protection.DIGESTS)}")
        if not self.weak_algorithms:
            weak = []
            if self.mac is not None and protection.mac_is_weak(self.mac.algorithm):
                weak.append(f"MAC {self.mac.algorithm}")
            if self.digest in protection.WEAK_HASHES:
                weak.append(f"digest {self.digest}")
            if weak:
                raise ValueError(f"{' and '.join(weak)} is a weak algorithm, refused unless weak "
                                 "algorithms are enabled")

    @property
    def old_cert(self) -> x509.Certificate | None:
        """kur: the certificate updated; rr: the certificate revoked."""
        if self.kind not in ("kur", "rr"):
            return None
        return self.old_certificate or (self.signer.certificate if self.signer else None)


def _spki(holder) -> bytes:
    """SubjectPublicKeyInfo DER of a private key, CSR or certificate."""
    public = holder.public_key()
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificate_request(request: EnrollmentRequest, old: x509.Certificate | None):
    """(CertRequestSpec, CSR or None) of a certificate request: from the CSR when given
    (subject, subjectAltName, public key), else from the request's fields."""
    if request.csr is not None:
        csr = request.csr
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        subject = csr.subject if len(csr.subject) or old is None else old.subject
        spki = _spki(csr)
    else:
        subject = request.subject if len(request.subject) else old.subject
        san = request.san.to_extension() if request.san else None
        spki = _spki(request.new_key)
        csr = m.build_csr(request.new_key, subject, san) if request.kind == "p10cr" else None
    spec = m.CertRequestSpec(
        public_key_info=spki,
        subject=subject,
        san=san,
        old_cert_id=(old.issuer, old.serial_number) if old is not None and request.kind == "kur" else None,
        cert_req_id=m.P10CR_CERT_REQ_ID if request.kind == "p10cr" else 0,
    )
    return spec, csr


def transaction_params(request: EnrollmentRequest, rng: Callable[[int], bytes]) -> TransactionParams:
    """Resolve *request* into what the state machine needs."""
    old = request.old_cert
    spec = csr = revocation = None
    if request.kind in CERTIFICATE_KINDS:
        spec, csr = _certificate_request(request, old)
        subject = spec.subject
    elif request.kind == "rr":
        revocation = m.RevocationDetails(old.issuer, old.serial_number, request.revocation_reason)
        subject = old.subject
    else:
        subject = request.subject
    if request.mac is not None:
        protector: m.Protector = m.MacProtector(
            request.mac.reference, request.mac.secret, request.mac.algorithm,
            request.mac.iteration_count, rng,
        )
        sender = subject
    else:
        signer = request.signer
        rsa_pss = signer.rsa_pss or protection.is_rsa_pss_certificate(signer.certificate)
        protector = m.SignatureProtector(
            signer.certificate, signer.key, signer.chain,
            protection.signature_algorithm_for(signer.key, request.digest, rsa_pss),
        )
        sender = signer.certificate.subject
    recipient = request.recipient
    if recipient is None:
        if request.server_cert is not None:
            recipient = request.server_cert.subject
        elif request.signer is not None:
            recipient = request.signer.certificate.issuer
        else:
            recipient = x509.Name([])
    verifier = ResponseVerifier(
        secret=request.mac.secret if request.mac is not None else None,
        server_cert=request.server_cert,
        trusted=request.trusted,
        untrusted=request.untrusted,
        ignore_keyusage=request.ignore_keyusage,
        weak_algorithms=request.weak_algorithms,
    )
    return TransactionParams(
        kind=request.kind,
        pop_signature=protection.signature_algorithm_for(request.new_key, request.digest)
        if request.new_key is not None else None,
        protector=protector,
        verifier=verifier,
        sender=sender,
        recipient=recipient,
        request=spec,
        pop_key=request.new_key,
        csr=csr,
        revocation=revocation,
        general=request.general,
        implicit_confirm=request.implicit_confirm,
        cert_profile=request.cert_profile,
        total_timeout=request.total_timeout,
    )


def tls_context(
    trusted: tuple[x509.Certificate, ...] | None, client: SignerCredentials | None = None
) -> ssl.SSLContext | None:
    """A client TLS context (RFC 6712 over TLS) with host name verification on.

    The server's certificate must chain to one of *trusted* (``None``: the system's
    default CAs); *client* is presented when the server asks for a certificate.
    ``None`` when neither is given: the transport's default context.
    """
    if trusted is None and client is None:
        return None
    import ssl  # only a TLS transport needs it: a shell command over http starts sooner

    cadata = None
    if trusted is not None:
        cadata = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in trusted)
    context = ssl.create_default_context(cadata=cadata)
    if client is not None:
        _load_client_identity(context, client)
    return context


def _load_client_identity(context: ssl.SSLContext, client: SignerCredentials) -> None:
    """Python's ssl loads a certificate and key only from a file: a memory-only file
    (memfd) holds them for the call, so the private key never touches a disk."""
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM)
                   for c in (client.certificate, *client.chain))
    pem += client.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    import ssl

    fd = os.memfd_create("cmp-tls-client", os.MFD_CLOEXEC)
    try:
        os.write(fd, pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    except ssl.SSLError as exc:
        raise ValueError(f"TLS client certificate and key do not go together: {exc.reason}") from None
    finally:
        os.close(fd)


#: how long ending a transaction on shutdown waits for the CA to take the error message
ABANDON_TIMEOUT = 2.0


@dataclass(frozen=True)
class Polling:
    """The CA answered "waiting" (RFC 4210 5.3.22): when the next pollReq goes out, after
    *delay* seconds, and what the CA wrote with its answer (*reason*: a pollRep's reason,
    or the statusString of a waiting status; often the only hint of what it waits for)."""

    when: datetime
    delay: float
    reason: tuple[str, ...] = ()

    def says(self) -> str:
        """The CA's text for a person, escaped (:func:`ca_texts`); empty without one."""
        return f"the CA says {ca_texts(self.reason)}" if self.reason else ""

    def __str__(self) -> str:
        line = (f"the CA answered waiting: next pollReq in {self.delay:g}s, at"
                f" {yang_datetime(self.when)}")
        return f"{line}; {self.says()}" if self.reason else line


class Cancellation:
    """Ends a running transaction from another thread (agent shutdown).

    :meth:`cancel` wakes the driver from a wait between polls and aborts the HTTP
    exchange in progress; the driver then sends the CA an error message
    (:meth:`EnrollmentTransaction.abandon`) and returns a ``cancelled`` failure.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._transports: list[Transport] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            for transport in self._transports:
                transport.abort()

    def watch(self, transport: Transport) -> None:
        with self._lock:
            self._transports.append(transport)
            if self._event.is_set():
                transport.abort()

    def release(self, transport: Transport) -> None:
        """Stop aborting *transport* (its abort is undone by its close())."""
        with self._lock:
            if transport in self._transports:
                self._transports.remove(transport)

    def wait(self, seconds: float) -> bool:
        """Sleep *seconds* or until cancelled; True when cancelled."""
        return self._event.wait(seconds)


def run_transaction(
    transaction: EnrollmentTransaction,
    transport: Transport,
    sleep: Callable[[float], object] | None = None,
    *,
    message_timeout: float = 120.0,
    cancellation: Cancellation | None = None,
    clock: Clock | None = None,
    on_poll: Callable[[Polling], None] = lambda polling: None,
) -> TransactionResult:
    """Drive *transaction* over *transport* until it finishes (the only I/O loop).

    Each exchange gets ``min(message_timeout, time left of the total timeout)``.
    Before waiting for the next pollReq, *on_poll* is told when it goes out and what the
    CA wrote (:class:`Polling`; the agent shows it in ``statistics/last-request`` and its
    log, ``cmp-agent cmp`` on stderr). *sleep* waits between polls
    (default: the *clock*'s seconds, woken early by *cancellation*).
    """
    cancellation = cancellation or Cancellation()
    clock = clock or SystemClock()
    if sleep is None:
        sleep = lambda seconds: cancellation.wait(clock.real_seconds(seconds))  # noqa: E731
    cancellation.watch(transport)
    try:
        action = transaction.start()
        while isinstance(action, Send):
            if action.delay > 0:
                delay = min(action.delay, max(0.0, transaction.remaining()))
                on_poll(Polling(clock.now() + timedelta(seconds=delay), delay, action.reason))
                sleep(delay)
            if cancellation.cancelled:
                break
            remaining = transaction.remaining()
            if remaining <= 0:
                action = transaction.transport_failed("total timeout elapsed", timed_out=True)
                break
            try:
                response = transport.post(action.message, min(message_timeout, remaining))
            except TransportError as exc:
                if cancellation.cancelled:
                    break
                action = transaction.transport_failed(str(exc), timed_out=exc.timed_out,
                                                      body=exc.body)
                break
            action = transaction.receive(response)
    finally:
        cancellation.release(transport)
    if isinstance(action, Send):  # cancelled: tell the CA, briefly, and stop
        farewell, action = transaction.abandon("the client is shutting down")
        if farewell is not None:
            transport.close()  # a fresh connection: the aborted one is gone
            try:
                transport.post(farewell.message, ABANDON_TIMEOUT)
            except TransportError:
                pass
    assert isinstance(action, Finished)
    return action.result


async def enroll_async(
    request: EnrollmentRequest,
    transport: Transport | None = None,
    clock: Clock | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> TransactionResult:
    """:func:`enroll` in a worker thread, for asyncio callers."""
    import asyncio  # only the agent needs it; a shell command starts sooner without

    return await asyncio.to_thread(enroll, request, transport, clock, rng)


def enroll(
    request: EnrollmentRequest,
    transport: Transport | None = None,
    clock: Clock | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    sleep: Callable[[float], object] | None = None,
    *,
    cancellation: Cancellation | None = None,
    on_poll: Callable[[Polling], None] = lambda polling: None,
) -> TransactionResult:
    """Run one transaction (any kind) and return its typed result; never raises for CA or
    network failures.

    Without *transport*, an :class:`HttpTransport` to ``request.server_url`` is used for
    this transaction and closed afterwards. See :func:`run_transaction` for the rest.
    """
    clock = clock or SystemClock()
    own = transport is None
    if own:
        transport = HttpTransport(
            request.server_url,
            connect_timeout=request.connect_timeout,
            source_address=request.source_address,
            tls_context=tls_context(request.tls_trusted, request.tls_client),
            tls_host=request.tls_host,
        )
    try:
        transaction = EnrollmentTransaction(transaction_params(request, rng), clock, rng)
        return run_transaction(transaction, transport, sleep,
                               message_timeout=request.message_timeout,
                               cancellation=cancellation, clock=clock, on_poll=on_poll)
    finally:
        if own:
            transport.close()
