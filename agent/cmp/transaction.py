"""The CMP client transactions as a sans-IO state machine (RFC 4210 5.3, RFC 9480,
Lightweight CMP RFC 9483 4).

One :class:`EnrollmentTransaction` runs one ir/cr/kur/p10cr exchange::

    request -> ip/cp/kup
            -> [pollReq -> pollRep]* while the status is ``waiting`` (RFC 4210 5.3.22),
                                 also when it comes in an error message (RFC 9483 4.4)
            -> certConf -> [pollReq -> pollRep]* -> pkiConf
                                         (unless implicit confirmation was granted)

or one revocation (rr -> rp, RFC 9483 4.2, result :class:`Revoked`) or general message
exchange (genm -> genp, RFC 9483 4.3, result :class:`GeneralResponse`), each also
polled for when the CA answers with an error message of status ``waiting``.
A pollReq names the certReqId of our request while a CertResponse is awaited, else -1
(RFC 9483 4.4; RFC 4210 5.3.22 as RFC 9480 extends it to p10cr, certConf, rr and genm).

It never touches the network or sleeps: :meth:`start` and :meth:`receive` return a
:class:`Send` (bytes to POST, after ``delay`` seconds) or a :class:`Finished` with the
typed result; a driver (:func:`agent.cmp.client.run_transaction`) does the I/O.

Polling has no artificial limit: the CA's checkAfter is honoured however long it is,
bounded only by the total timeout when one is set; a checkAfter below
:data:`MIN_POLL_INTERVAL` (0 included) is raised to it, so a CA cannot make us poll
in a tight loop. One above :data:`MAX_CHECK_AFTER` (a year) is refused: not a credible
wait, and an INTEGER of any size (RFC 4210 5.3.22) could not even be slept.
:meth:`EnrollmentTransaction.abandon` ends a transaction on our side with an error
message to the CA (RFC 4210 5.3.21), for agent shutdown.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from agent.clock import Clock

from . import messages as m
from .failure import FailureKind
from .pool import EXTENSION_ERRORS, not_der
from .protection import PrivateKey, ProtectionError, SignatureAlgorithm
from .verify import ResponseVerifier, Verified

#: protocol versions we accept in responses: cmp2000 and cmp2021 (RFC 9480 2.20)
ACCEPTED_PVNO = (2, 3)
#: RFC 9483 3.1: nonces of at least 128 bits
MIN_NONCE_BYTES = 16


#: the shortest wait between two pollReq, whatever checkAfter says (issue: a CA
#: answering checkAfter 0 must not make us poll in a tight loop)
MIN_POLL_INTERVAL = 1.0
#: the longest checkAfter honoured, in seconds (a year); a longer one fails the transaction
MAX_CHECK_AFTER = 366 * 24 * 3600


def ca_texts(texts: tuple[str, ...]) -> str:
    """Texts a CA wrote (statusString, errorDetails, a pollRep's reason: any UTF8String,
    RFC 4210 5.1.1) as a person is shown them: each quoted as repr, so that a control
    character (a terminal escape sequence, say) is shown escaped, never acted on."""
    return " | ".join(repr(t) for t in texts)


@dataclass(frozen=True)
class MessageCounts:
    """PKIMessages sent and received in a transaction, by body type."""

    sent: dict[str, int]
    received: dict[str, int]


@dataclass(frozen=True)
class Enrolled:
    """The CA granted the certificate (status accepted or grantedWithMods)."""

    status: str
    certificate: x509.Certificate
    ca_pubs: tuple[x509.Certificate, ...]
    extra_certs: tuple[x509.Certificate, ...]
    status_texts: tuple[str, ...]
    messages: MessageCounts
    #: the caPubs came in an ip under our verified shared-secret MAC, so they may be
    #: trusted directly (RFC 4210 5.3.2, RFC 9483 4.1.1); never for signed responses
    ca_pubs_trusted: bool = False
    #: the certificate's chain to a trust anchor was checked; False when there was no
    #: anchor to check it against (no trust anchor and no caPubs under our MAC)
    chain_checked: bool = False

    ok = True


@dataclass(frozen=True)
class Failed:
    """The transaction ended without a certificate we accept."""

    kind: FailureKind
    message: str
    status: str | None = None  # PKIStatus name when the CA sent one
    failure_info: tuple[str, ...] = ()  # PKIFailureInfo bit names
    status_texts: tuple[str, ...] = ()  # statusString / errorDetails from the CA
    error_code: int | None = None
    messages: MessageCounts = field(default_factory=lambda: MessageCounts({}, {}))

    ok = False

    def __str__(self) -> str:
        """For a person (CLI, log, the agent's reason): the message with what is not
        printable escaped, since it may name what a CA or a forged answer sent (a
        certificate's subject, a sender name); the CA's texts quoted as repr."""
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in self.message)
        parts = [f"{self.kind.value}: {message}"]
        if self.status:
            parts.append(f"PKIStatus={self.status}")
        if self.failure_info:
            parts.append(f"PKIFailureInfo={','.join(self.failure_info)}")
        if self.status_texts:
            parts.append("text=" + ca_texts(self.status_texts))
        return "; ".join(parts)


@dataclass(frozen=True)
class Revoked:
    """The CA accepted the revocation request (RFC 4210 5.3.10; status accepted, or a
    revocation warning or notification)."""

    status: str
    status_texts: tuple[str, ...]
    messages: MessageCounts

    ok = True


@dataclass(frozen=True)
class GeneralResponse:
    """The genp (RFC 4210 5.3.20): its InfoTypeAndValue entries, values as received, and
    the extraCerts of the message (which may carry the CA's chain)."""

    entries: tuple[m.InfoTypeAndValue, ...]
    extra_certs: tuple[x509.Certificate, ...]
    messages: MessageCounts

    ok = True

    def value(self, oid: str) -> bytes | None:
        """The value of the entry of type *oid* (None when absent or not sent)."""
        return next((e.value for e in self.entries if e.oid == oid), None)


EnrollmentResult = Enrolled | Failed
TransactionResult = Enrolled | Revoked | GeneralResponse | Failed


@dataclass(frozen=True)
class Send:
    """POST *message* to the CA after waiting *delay* seconds; feed the answer to receive()."""

    message: bytes
    delay: float = 0.0
    body_type: str = ""
    #: a pollReq's: what the CA wrote with its answer "waiting" (a pollRep's reason, RFC
    #: 4210 5.3.22; the statusString, and errorDetails, of a waiting status, RFC 9483 4.4)
    reason: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finished:
    """The transaction is over, with *result*."""

    result: TransactionResult


Action = Send | Finished


#: the response type of each request type (RFC 4210 5.3)
RESPONSES = {**m.RESPONSE_TYPE, "rr": "rp", "genm": "genp"}


@dataclass(frozen=True)
class TransactionParams:
    """Everything one transaction needs, already resolved.

    ir/cr/kur: ``request`` and ``pop_key``; p10cr: ``request`` (public key and
    certReqId -1) and ``csr``; rr: ``revocation``; genm: ``general``.
    """

    kind: str  # ir | cr | kur | p10cr | rr | genm
    protector: m.Protector
    verifier: ResponseVerifier
    sender: x509.Name
    recipient: x509.Name
    request: m.CertRequestSpec | None = None
    pop_key: PrivateKey | None = None
    #: the scheme of the proof-of-possession signature (RFC 4211 4.1)
    pop_signature: SignatureAlgorithm | None = None
    csr: x509.CertificateSigningRequest | None = None
    revocation: m.RevocationDetails | None = None
    general: tuple[m.InfoTypeAndValue, ...] = ()
    implicit_confirm: bool = False
    #: certProfile (RFC 9480 2.17) sent in generalInfo
    cert_profile: str | None = None
    #: seconds for the whole transaction, polling included; None: no limit
    total_timeout: float | None = None
    extra_certs: tuple[x509.Certificate, ...] = ()

    def body(self) -> bytes:
        """The DER of the request body."""
        if self.kind == "p10cr":
            return m.p10cr_body(self.csr)
        if self.kind == "rr":
            return m.rr_body([self.revocation])
        if self.kind == "genm":
            return m.genm_body(self.general)
        return m.cert_request_body(self.kind, self.request, self.pop_key, self.pop_signature)


class _State(enum.Enum):
    IDLE = 0
    AWAIT_CERT_REP = 1
    AWAIT_POLL_REP = 2
    AWAIT_PKI_CONF = 3
    DONE = 4


class EnrollmentTransaction:
    """One enrollment; see the module docstring."""

    def __init__(self, params: TransactionParams, clock: Clock, rng: Callable[[int], bytes]):
        self.params = params
        self._clock = clock
        self._rng = rng
        self.transaction_id = rng(16)
        self._state = _State.IDLE
        #: the body type that ends the current exchange (a pollRep only defers it)
        self._awaited = RESPONSES[params.kind]
        self._sender_nonce: bytes | None = None
        self._recip_nonce: bytes | None = None
        self._deadline: datetime | None = None
        self._sent: Counter[str] = Counter()
        self._received: Counter[str] = Counter()
        self._granted: tuple[m.CertResponse, m.CertRepContent, m.DecodedMessage] | None = None
        self._pending_failure: Failed | None = None
        #: how the last response was authenticated
        self._verified: Verified | None = None
        #: the signer that validated the first signed response (reused, see verify.py)
        self._signer: x509.Certificate | None = None
        self._ca_pubs_trusted = False
        self._chain_checked = False

    # -- public API ---------------------------------------------------------

    @property
    def counts(self) -> MessageCounts:
        return MessageCounts(dict(self._sent), dict(self._received))

    @property
    def finished(self) -> bool:
        return self._state is _State.DONE

    def remaining(self) -> float:
        """Seconds left of the total timeout (infinite without one)."""
        if self.params.total_timeout is None:
            return math.inf
        if self._deadline is None:
            return self.params.total_timeout
        return (self._deadline - self._clock.now()).total_seconds()

    def start(self) -> Action:
        """The request message."""
        if self._state is not _State.IDLE:
            raise RuntimeError("transaction already started")
        if self.params.total_timeout is not None:
            self._deadline = self._clock.now() + timedelta(seconds=self.params.total_timeout)
        self._state = _State.AWAIT_CERT_REP
        return self._send(self.params.kind, self.params.body(),
                          implicit_confirm=self.params.implicit_confirm and self.params.request is not None,
                          extra=self.params.extra_certs, cert_profile=self.params.cert_profile)

    def receive(self, data: bytes) -> Action:
        """Consume the CA's response to the last :class:`Send`."""
        if self._state in (_State.IDLE, _State.DONE):
            raise RuntimeError("no response expected")
        try:
            message = m.decode_message(data)
        except m.MessageError as exc:
            return self._fail(FailureKind.PROTOCOL, f"response is not a valid PKIMessage: {exc}")
        self._received[message.body_type] += 1
        try:
            problem = self._check(message)
            if problem is not None:
                return problem
            self._recip_nonce = message.sender_nonce
            if message.body_type == "pkiconf":
                return self._on_pki_conf()
            if message.body_type == "pollRep":
                return self._on_poll_rep(message)
            if message.body_type == "rp":
                return self._on_rev_rep(message)
            if message.body_type == "genp":
                return self._finish(GeneralResponse(tuple(m.general_entries(message)),
                                                    message.extra_certs, self.counts))
            return self._on_cert_rep(message)
        except m.MessageError as exc:  # a body that does not decode (found by tools/fuzz)
            return self._fail(FailureKind.PROTOCOL, f"{message.body_type} is not valid: {exc}")

    def transport_failed(self, reason: str, timed_out: bool = False,
                         body: bytes | None = None) -> Finished:
        """The driver could not deliver the last message or read a valid answer.

        *body* is a CMP message that came back with an HTTP status other than 200
        (RFC 6712 3.3): still a transport failure, but the CA's PKIStatusInfo in it
        (status, failInfo, freeText) is kept in the result for the operator.
        """
        kind = FailureKind.TIMEOUT if timed_out else FailureKind.TRANSPORT
        if body is None:
            return self._fail(kind, reason)
        return self._finish(self._with_ca_status(Failed(kind, reason), body))

    def _with_ca_status(self, failed: Failed, body: bytes) -> Failed:
        """*failed* with the status the CA put in *body*, when it answers this transaction."""
        try:
            message = m.decode_message(body)
        except m.MessageError:
            return failed
        if message.transaction_id != self.transaction_id:
            return failed
        self._received[message.body_type] += 1
        try:
            if message.body_type == "error":
                content = m.error_content(message)
                status, texts = content.status, content.status.texts + content.details
            elif message.body_type in m.RESPONSE_TYPE.values() and self.params.request is not None:
                wanted = self.params.request.cert_req_id
                response = next((r for r in m.cert_rep_content(message).responses
                                 if r.cert_req_id == wanted), None)
                if response is None:
                    return failed
                status, texts = response.status, response.status.texts
            else:
                return failed
        except m.MessageError:
            return failed
        try:
            self.params.verifier.verify(message, self._clock.now(), self._signer)
            note = f"; the CA's {message.body_type} in it says"
        except ProtectionError as exc:
            note = f"; the CA's {message.body_type} in it (not authenticated: {exc}) says"
        return replace(failed, message=failed.message + note, status=status.status_name,
                       failure_info=status.failure_names, status_texts=texts)

    def abandon(self, reason: str) -> tuple[Send | None, Finished]:
        """End the transaction on our side (agent shutdown).

        When the CA knows of the transaction (a request went out), the :class:`Send`
        is an error message (RFC 4210 5.3.21: rejection, systemUnavail, *reason*) that
        tells it so; the driver delivers it if it can, its answer is not needed.
        """
        if self._state is _State.DONE:
            raise RuntimeError("transaction already finished")
        send = None
        if self._state is not _State.IDLE:
            status = m.StatusInfo(status=2, texts=(reason,),
                                  failure_bits=(m.FAILURE_BIT_NAMES.index("systemUnavail"),))
            send = self._send("error", m.error_body(m.ErrorContent(status)))
        return send, self._fail(FailureKind.CANCELLED, reason)

    # -- checks ---------------------------------------------------------------

    def _expected_types(self) -> tuple[str, ...]:
        if self._state is _State.AWAIT_POLL_REP:
            return ("pollRep", self._awaited)
        return (self._awaited,)

    def _poll_id(self) -> int:
        """The certReqId of our pollReq (RFC 9483 4.4): that of our request while its
        CertResponse is awaited, else -1 (rp, genp, pkiConf)."""
        if self._awaited in m.RESPONSE_TYPE.values():
            return self.params.request.cert_req_id
        return -1

    def _check(self, message: m.DecodedMessage) -> Finished | None:
        """RFC 4210 5.1.1/5.1.3, RFC 9483 3.1: version, identity, freshness, type and
        protection of a response."""
        if message.pvno not in ACCEPTED_PVNO:
            return self._fail(
                FailureKind.PROTOCOL, f"{message.body_type} refused: pvno {message.pvno} is not 2 or 3"
            )
        if message.body_type == "error" and None in (message.transaction_id, message.recip_nonce):
            # an error about a request the CA could not parse: its own words matter most
            missing = "transactionID" if message.transaction_id is None else "recipNonce"
            return self._on_error(message, f"not bound to our request: it has no {missing}")
        if message.transaction_id != self.transaction_id:
            return self._fail(FailureKind.PROTOCOL, "response transactionID differs from ours")
        if message.recip_nonce != self._sender_nonce:
            return self._fail(
                FailureKind.PROTOCOL, f"{message.body_type} refused: recipNonce does not match our senderNonce"
            )
        if message.body_type == "error":
            return self._on_error(message)
        if message.sender_nonce is None or len(message.sender_nonce) < MIN_NONCE_BYTES:
            bits = 8 * len(message.sender_nonce or b"")
            return self._fail(
                FailureKind.PROTOCOL,
                f"{message.body_type} refused: senderNonce of {bits} bits is shorter than 128 bits",
            )
        try:
            self._verified = self.params.verifier.verify(message, self._clock.now(), self._signer)
        except ProtectionError as exc:
            return self._fail(FailureKind.PROTECTION, f"{message.body_type} refused: {exc}")
        if self._signer is None:
            self._signer = self._verified.signer
        if message.body_type not in self._expected_types():
            return self._fail(
                FailureKind.PROTOCOL,
                f"unexpected {message.body_type}, expected {' or '.join(self._expected_types())}",
            )
        return None

    # -- steps -------------------------------------------------------------------

    def _on_error(self, message: m.DecodedMessage, unbound: str | None = None) -> Action:
        content = m.error_content(message)
        notes = [unbound] if unbound else []
        try:
            self.params.verifier.verify(message, self._clock.now(), self._signer)
        except ProtectionError as exc:
            notes.append(f"not authenticated: {exc}")
        note = f" ({'; '.join(notes)})" if notes else ""
        if not notes and content.status.status_name == "waiting":
            # RFC 9483 4.4: an authenticated "waiting" error polls
            return self._poll(0, content.status.texts + content.details)
        return self._finish(
            Failed(
                FailureKind.ERROR_MESSAGE,
                f"the CA sent an error message{note}",
                status=content.status.status_name,
                failure_info=content.status.failure_names,
                status_texts=content.status.texts + content.details,
                error_code=content.error_code,
            )
        )

    def _on_cert_rep(self, message: m.DecodedMessage) -> Action:
        try:
            content = m.cert_rep_content(message)
        except m.MessageError as exc:
            return self._fail(FailureKind.PROTOCOL, str(exc))
        wanted = self.params.request.cert_req_id
        response = next((r for r in content.responses if r.cert_req_id == wanted), None)
        if response is None and self.params.kind == "p10cr" and len(content.responses) == 1:
            response = content.responses[0]  # CAs before RFC 9480 2.9 answer with certReqId 0
        if response is None:
            return self._fail(FailureKind.PROTOCOL, f"no response for certReqId {wanted}")
        status = response.status
        if status.status_name == "waiting":
            return self._poll(0, status.texts)
        if status.status_name not in ("accepted", "grantedWithMods"):
            return self._finish(
                Failed(
                    FailureKind.REJECTED,
                    f"the CA refused the request ({status.status_name})",
                    status=status.status_name,
                    failure_info=status.failure_names,
                    status_texts=status.texts,
                )
            )
        if response.certificate is None:
            return self._fail(FailureKind.PROTOCOL, f"status {status.status_name} without a certificate")
        self._granted = (response, content, message)
        # caPubs of an ip under our verified MAC are trust anchors (RFC 4210 5.3.2)
        self._ca_pubs_trusted = self.params.kind == "ir" and self._verified.mac
        refusal = self._refusal(response, content, message)
        mismatch = None
        if refusal is not None:
            bit, reason = refusal
            mismatch = Failed(
                FailureKind.CERTIFICATE_REJECTED,
                f"rejected the issued certificate ({bit}): {reason}",
                status=status.status_name,
                status_texts=status.texts,
            )
        if self.params.implicit_confirm and message.implicit_confirm:
            return self._finish(mismatch or self._enrolled())
        cert_hash, hash_alg = m.cert_hash(response.certificate)
        rejection = None
        if mismatch is not None:
            # RFC 4210 5.3.18: tell the CA, then wait for its pkiConf
            self._pending_failure = mismatch
            rejection = m.StatusInfo(
                status=2, texts=(refusal[1],), failure_bits=(m.FAILURE_BIT_NAMES.index(refusal[0]),),
            )
        entry = m.CertStatusEntry(cert_hash, response.cert_req_id, rejection, hash_alg)
        self._state, self._awaited = _State.AWAIT_PKI_CONF, "pkiconf"
        # RFC 9480 2.20: pvno cmp2021 when hashAlg is used
        return self._send("certConf", m.cert_conf_body([entry]), pvno=3 if hash_alg else 2)

    def _refusal(
        self, response: m.CertResponse, content: m.CertRepContent, message: m.DecodedMessage
    ) -> tuple[str, str] | None:
        """Why we cannot accept the issued certificate: (PKIFailureInfo bit, reason), or None.

        It must be for our key and DER (RFC 5280 4.1: extensions that are not, cryptography
        does not read); with status accepted, have the subject and SAN we asked for
        (grantedWithMods allows changes); and chain to a trust anchor (RFC 9483 4.1.1).
        """
        cert = response.certificate
        asked = self.params.request
        try:
            theirs = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except UnsupportedAlgorithm:  # a key type we do not know: not the one we sent
            theirs = None
        if theirs != asked.public_key_info:
            return "badCertTemplate", "the issued certificate is not for our public key"
        refusal = not_der(cert, "issued certificate")  # checked with or without a trust anchor
        if refusal is not None:
            return "incorrectData", refusal
        if response.status.status_name == "accepted":
            if len(asked.subject) and cert.subject != asked.subject:
                return "badCertTemplate", (
                    f"the issued certificate's subject {cert.subject.rfc4514_string()} is not the"
                    f" requested {asked.subject.rfc4514_string()}, and the CA did not say grantedWithMods"
                )
            if asked.san is not None:
                try:
                    granted = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
                except x509.ExtensionNotFound:
                    granted = set()
                except EXTENSION_ERRORS as exc:
                    return "badCertTemplate", (
                        f"the issued certificate's extensions cannot be read ({exc}), so neither can"
                        " its subjectAltName"
                    )
                if granted != set(asked.san):
                    return "badCertTemplate", (
                        "the issued certificate's subjectAltName is not the requested one, and the"
                        " CA did not say grantedWithMods"
                    )
        try:
            self._chain_checked = self.params.verifier.validate_issued(
                cert, message.extra_certs, content.ca_pubs, self._ca_pubs_trusted, self._clock.now()
            )
        except ProtectionError as exc:
            return "incorrectData", str(exc)
        return None

    def _on_rev_rep(self, message: m.DecodedMessage) -> Finished:
        """RFC 9483 4.2: one status for our one RevDetails."""
        try:
            status = m.revocation_response(message).statuses[0]
        except m.MessageError as exc:
            return self._fail(FailureKind.PROTOCOL, str(exc))
        if status.status_name in ("accepted", "grantedWithMods", "revocationWarning",
                                  "revocationNotification"):
            return self._finish(Revoked(status.status_name, status.texts, self.counts))
        return self._finish(Failed(
            FailureKind.REJECTED, f"the CA refused the revocation ({status.status_name})",
            status=status.status_name, failure_info=status.failure_names,
            status_texts=status.texts,
        ))

    def _poll(self, check_after: int, reason: tuple[str, ...]) -> Action:
        if check_after > MAX_CHECK_AFTER:
            shown = (f"{check_after}s" if check_after < 2**63
                     else f"a {check_after.bit_length()}-bit number of seconds")
            return self._fail(
                FailureKind.PROTOCOL,
                f"the CA asks to poll again in {shown}, longer than a year ({MAX_CHECK_AFTER}s):"
                " not a credible checkAfter",
            )
        delay = max(float(check_after), MIN_POLL_INTERVAL)
        if delay > self.remaining():
            return self._fail(
                FailureKind.TIMEOUT,
                f"the CA asks to poll again in {check_after}s, beyond the total timeout",
            )
        self._state = _State.AWAIT_POLL_REP
        body = m.poll_req_body([self._poll_id()])
        return replace(self._send("pollReq", body, delay=delay), reason=reason)

    def _on_poll_rep(self, message: m.DecodedMessage) -> Action:
        wanted = self._poll_id()
        entry = next((p for p in m.poll_responses(message) if p.cert_req_id == wanted), None)
        if entry is None:
            return self._fail(FailureKind.PROTOCOL, f"pollRep without certReqId {wanted}")
        return self._poll(max(0, entry.check_after), entry.reason)

    def _on_pki_conf(self) -> Finished:
        if self._pending_failure is not None:
            return self._finish(self._pending_failure)
        return self._finish(self._enrolled())

    def _enrolled(self) -> Enrolled:
        response, content, message = self._granted
        return Enrolled(
            status=response.status.status_name,
            certificate=response.certificate,
            ca_pubs=content.ca_pubs,
            extra_certs=message.extra_certs,
            status_texts=response.status.texts,
            messages=self.counts,
            ca_pubs_trusted=self._ca_pubs_trusted,
            chain_checked=self._chain_checked,
        )

    # -- helpers ---------------------------------------------------------------

    def _send(self, body_type: str, body, *, delay: float = 0.0, implicit_confirm: bool = False,
              pvno: int = 2, extra: tuple[x509.Certificate, ...] = (),
              cert_profile: str | None = None) -> Send:
        self._sender_nonce = self._rng(16)
        fields = m.HeaderFields(
            sender=self.params.sender,
            recipient=self.params.recipient,
            transaction_id=self.transaction_id,
            sender_nonce=self._sender_nonce,
            recip_nonce=self._recip_nonce,
            message_time=self._clock.now(),
            implicit_confirm=implicit_confirm,
            pvno=pvno,
            cert_profile=cert_profile,
        )
        data = m.encode_message(fields, body, self.params.protector, extra)
        self._sent[body_type] += 1
        return Send(data, delay, body_type)

    def _fail(self, kind: FailureKind, message: str) -> Finished:
        return self._finish(Failed(kind, message))

    def _finish(self, result: TransactionResult) -> Finished:
        self._state = _State.DONE
        return Finished(replace(result, messages=self.counts))
