"""The PKI service: runs a CMP session's requests and keeps what they produce.

A request (seed steps 11-12) runs against the session's committed (running)
configuration: it is checked, handed to the CMP engine in a thread of its own,
and its result is saved to the stores, counted in the statistics and reported
by a ``cmp-session-result`` notification (RFC 5277).

Each transaction has its own thread, not a place in a shared pool: a CA that
holds its transaction (polling for hours, or trickling its answer until the
message timeout) delays no other session's request and no automatic update.
While the CA says ``waiting``, ``statistics/last-request`` shows it with the time
of the next poll. At shutdown, running transactions are ended on our side and
each CA is told with an error message (RFC 4210 5.3.21); a pending transaction
does not survive a restart.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from agent import PKI_NS
from agent.clock import Clock, SystemClock
from agent.cmp.failure import FailureKind
from agent.datastore import ChangeSummary, Datastores, SecretBox
from agent.datastore.steps import SLICE_SECONDS, Steps, run_cooperatively
from agent.netconf.errors import RpcError
from agent.pki.config import SESSION_LIST, PkiConfig, RequestType, SessionConfig
from agent.pki.enrollment import (
    PreparedRequest,
    current_root,
    checked_certificate,
    prepare,
    prepare_general,
    prepare_revocation,
    weak_algorithm_warning,
)
from agent.pki.statistics import (
    CmpRequestType,
    CmpStatistics,
    LastRequest,
    Trigger,
    yang_datetime,
)
from agent.pki.stores import PREVIOUS_SUFFIX, CertificateStore, KeyStore, RevocationMarks
from agent.xmltext import xml_text

if TYPE_CHECKING:
    from agent.cmp.client import Cancellation, EnrollmentRequest, Polling
    from agent.cmp.transaction import (
        Enrolled,
        EnrollmentResult,
        Failed,
        GeneralResponse,
        TransactionResult,
    )

# The CMP engine (agent.cmp.client and what it imports) is imported where a transaction
# first needs it, not with the service: an agent starts without loading it (issue 11).

log = logging.getLogger(__name__)

#: engine body-type names (RFC 4210 PKIBody choice) -> YANG counter names
_COUNTER_NAMES = {
    "certConf": "cert-conf",
    "pollReq": "poll-req",
    "pkiconf": "pki-conf",
    "pollRep": "poll-rep",
}
#: failure kinds counted under statistics/failures; a CA's refusal (rejection,
#: error message, a certificate for another key) is counted by its PKIFailureInfo
#: bits and outcome instead. A response that is not bound to our transaction
#: (transactionID, nonce, body type) is a protection failure to the operator.
_FAILURE_COUNTERS = {
    FailureKind.TRANSPORT: "transport",
    FailureKind.TIMEOUT: "timeout",
    FailureKind.PROTECTION: "protection",
    FailureKind.PROTOCOL: "protection",
    FailureKind.CERTIFICATE_REJECTED: "certificate-rejected",
}

#: how a failed request RPC names its cause: the error-app-tag of its rpc-error
#: (README "How it fails"); a refusal before anything is sent is "precondition"
_APP_TAGS = {
    FailureKind.REJECTED: "cmp-rejected",
    FailureKind.ERROR_MESSAGE: "cmp-rejected",
    FailureKind.CERTIFICATE_REJECTED: "cmp-certificate-rejected",
    FailureKind.PROTECTION: "cmp-protection",
    FailureKind.PROTOCOL: "cmp-protection",
    FailureKind.TRANSPORT: "cmp-transport",
    FailureKind.TIMEOUT: "cmp-transport",
    FailureKind.CANCELLED: "cmp-cancelled",
}
#: PKIFailureInfo bits whose cause lies on the agent's side, and what to check
_FAILURE_HINTS = {
    "badMessageCheck": "the CA could not verify the request's protection: check"
    " message-authentication-code (reference-value, secret-value) or authentication-cert"
    " against the CA's configuration",
}
PRECONDITION = "precondition"
INTERNAL_ERROR = "internal-error"

#: sessions read again per step when a commit changed many (0.17 to 0.5 ms a step with
#: 1,000 sessions). Each step also tells the listeners: with 2 a step, the slices'
#: longest step was 10 % shorter but a refresh after a commit of 1,000 sessions took
#: twice as long, with reads no faster
VIEW_CHUNK = 5
#: how long the view's steps may hold the event loop before other RPCs run (as long
#: as a commit's slices): a time, not a count of sessions, since what a session costs
#: its listeners varies (the auto-updater reads a session's certificate file). With
#: 1 ms, the first read after a commit of 1,000 sessions took 0.3 to 0.5 ms longer
VIEW_SLICE_SECONDS = SLICE_SECONDS

#: how long shutdown waits for running transactions to end (their error messages to
#: the CA included, agent.cmp.client.ABANDON_TIMEOUT each, all at once)
SHUTDOWN_WAIT = 3.0

T = TypeVar("T")


class Enroll(Protocol):
    """The CMP engine as the service calls it (:func:`agent.cmp.client.enroll`)."""

    def __call__(self, request: EnrollmentRequest, *, cancellation: Cancellation,
                 on_poll: Callable[[Polling], None]) -> EnrollmentResult:
        ...


class _ThreadStarter:
    """Starts threads for the event loop: :meth:`threading.Thread.start` waits until the
    new thread runs, which takes milliseconds when other threads hold the interpreter
    (a renewal storm's transactions); here one long-lived thread does the waiting."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[threading.Thread, Callable[[BaseException], None]]] = (
            queue.SimpleQueue())
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None

    def start(self, thread: threading.Thread, failed: Callable[[BaseException], None]) -> None:
        """Start *thread* soon; *failed* is called (in another thread) if it cannot start."""
        with self._lock:
            if self._starter is None:
                self._starter = threading.Thread(target=self._run, name="thread-starter",
                                                 daemon=True)
                self._starter.start()
        self._queue.put((thread, failed))

    def _run(self) -> None:
        while True:
            thread, failed = self._queue.get()
            try:
                thread.start()
            except BaseException as exc:  # e.g. no more threads: the waiting request fails
                failed(exc)


_STARTER = _ThreadStarter()


def _engine_enroll(request: EnrollmentRequest, **options) -> EnrollmentResult:
    """:func:`agent.cmp.client.enroll`, the engine imported on the first transaction."""
    from agent.cmp.client import enroll

    return enroll(request, **options)


def in_own_thread(name: str, fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run *fn* in a new daemon thread; its outcome as a future of the running loop.

    Daemon, so that a transaction waiting for its CA never holds up the agent's exit.
    The thread is started by :data:`_STARTER`, so the loop does not wait for it to begin.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def hand_over(ok: bool, value) -> None:
        try:
            loop.call_soon_threadsafe(deliver, ok, value)
        except RuntimeError:  # the loop is closed: the agent has stopped
            pass

    def run() -> None:
        try:
            outcome = (True, fn())
        except BaseException as exc:  # delivered to the awaiting coroutine
            outcome = (False, exc)
        hand_over(*outcome)

    _STARTER.start(threading.Thread(target=run, name=name, daemon=True),
                   functools.partial(hand_over, False))
    return future


@dataclass(frozen=True)
class RequestOutcome:
    """The output of ``cmp-initial-request`` and its siblings (YANG grouping request-output)."""

    session: str
    kind: CmpRequestType
    trigger: Trigger
    status: str  # success | failure | waiting
    certificate_file: str | None = None
    ca_certificate_files: tuple[str, ...] = ()
    serial: str | None = None
    not_after: datetime | None = None
    pki_status: str | None = None
    failure_info: tuple[str, ...] = ()
    status_text: str | None = None
    key_pair_created: bool = False
    #: for a failure: the error-app-tag naming its kind (see :data:`_APP_TAGS`)
    app_tag: str | None = None
    #: for a failure: the CA's own text (PKIStatusInfo statusString, errorDetails)
    ca_texts: tuple[str, ...] = ()

    def to_xml(self) -> list[etree._Element]:
        """The RPC's output; a failure is :meth:`rpc_error` instead."""
        q = lambda name: f"{{{PKI_NS}}}{name}"  # noqa: E731
        out: list[etree._Element] = []

        def leaf(name: str, value: object) -> None:
            if value is None:
                return
            el = etree.Element(q(name), nsmap={None: PKI_NS})
            el.text = xml_text(value) if isinstance(value, str) else str(value).lower()
            out.append(el)

        leaf("status", self.status)
        leaf("request-type", self.kind)
        leaf("certificate-file", self.certificate_file)
        for name in self.ca_certificate_files:
            leaf("ca-certificate-file", name)
        leaf("serial", self.serial)
        leaf("not-after", yang_datetime(self.not_after) if self.not_after else None)
        leaf("pki-status", self.pki_status)
        for bit in self.failure_info:
            leaf("failure-info", bit)
        leaf("status-text", self.status_text)
        leaf("key-pair-created", self.key_pair_created)
        return out

    def rpc_error(self) -> RpcError:
        """A failed request as its RPC's ``<rpc-error>`` (RFC 6241 section 4.3): every client
        reports it as a failure. ``operation-failed``, the kind of failure as
        error-app-tag, and in error-info what the CA answered: pki-status,
        failure-info bits, its text."""
        q = lambda name: f"{{{PKI_NS}}}{name}"  # noqa: E731
        details: list[etree._Element] = []
        for name, value in (("session-name", self.session), ("request-type", self.kind),
                            ("pki-status", self.pki_status),
                            *(("failure-info", bit) for bit in self.failure_info),
                            *(("ca-text", text) for text in self.ca_texts),
                            ("key-pair-created", str(self.key_pair_created).lower())):
            if value is not None:
                el = etree.Element(q(name), nsmap={None: PKI_NS})
                el.text = xml_text(value)
                details.append(el)
        hints = [_FAILURE_HINTS[bit] for bit in self.failure_info if bit in _FAILURE_HINTS]
        return RpcError("operation-failed", f"session {self.session}: {self.kind} failed: "
                        + "; ".join([xml_text(self.status_text or "no reason given"), *hints]),
                        app_tag=self.app_tag, info_elements=details)

    def notification(self) -> etree._Element:
        """``cmp-session-result`` (RFC 5277 event content)."""
        q = lambda name: f"{{{PKI_NS}}}{name}"  # noqa: E731
        event = etree.Element(q("cmp-session-result"), nsmap={None: PKI_NS})
        for name, value in (
            ("session", self.session),
            ("request-type", self.kind),
            ("trigger", self.trigger),
            ("result", self.status),
            ("reason", self.status_text),
            ("certificate-file", self.certificate_file),
        ):
            if value:
                etree.SubElement(event, q(name)).text = xml_text(value)
        return event


def _refused(session: str, kind: CmpRequestType, result: Failed, key_pair_created: bool = False) -> RequestOutcome:
    """A failed transaction as the outcome every request RPC reports: its rpc-error names the
    kind of failure (:data:`_APP_TAGS`) and carries what the CA answered."""
    return RequestOutcome(session, kind, "manual", "failure", pki_status=result.status,
                          failure_info=result.failure_info, status_text=str(result),
                          key_pair_created=key_pair_created, app_tag=_APP_TAGS[result.kind],
                          ca_texts=result.status_texts)


@dataclass
class ServiceSettings:
    """Timing knobs; tests shorten them."""

    connect_timeout: float = 10.0
    #: how long an RPC waits for the CA before it answers ``waiting`` and the
    #: transaction goes on in the background, reported by notification
    reply_wait: float = 30.0


class PkiService:
    """CMP sessions, key and certificate stores, statistics; one per agent."""

    def __init__(
        self,
        datastores: Datastores,
        state_dir: Path,
        secrets: SecretBox,
        *,
        clock: Clock | None = None,
        enroll_fn: Enroll | None = None,
        notify: Callable[[etree._Element], None] = lambda event: None,
        settings: ServiceSettings | None = None,
    ):
        self.datastores = datastores
        self.secrets = secrets
        self.clock = clock or SystemClock()
        self.keys = KeyStore(state_dir / "pki" / "private")
        self.certs = CertificateStore(state_dir / "pki" / "public")
        self.revocations = RevocationMarks(state_dir / "pki" / "revocations.json")
        self.notify = notify
        self.settings = settings or ServiceSettings()
        self._enroll: Enroll = enroll_fn or functools.partial(_engine_enroll, clock=self.clock)
        self._busy: set[str] = set()
        self._background: set[asyncio.Future] = set()
        #: the running transactions (one thread each), by session
        self._running: dict[str, tuple[Cancellation, asyncio.Future]] = {}
        started = self.clock.now()
        self.total = CmpStatistics(discontinuity_time=started)
        self.statistics: dict[str, CmpStatistics] = {}
        #: called after every finished transaction (the auto-updater reschedules)
        self.on_result: list[Callable[[RequestOutcome], None]] = []
        #: called with the committed configuration and the names of the sessions whose
        #: configuration changed (``None``: any may have, or the certificate store changed);
        #: the configuration given is for the call: while the view catches up, its next
        #: step may change it in place (:meth:`config` gives one that stays as it is)
        self.on_change: list[Callable[[PkiConfig, set[str] | None], None]] = []
        #: the committed configuration as of running version ``_view_version``
        self._view: PkiConfig | None = None
        #: whether ``_view`` (its dict of sessions) is the catching-up's own, not yet
        #: given out by :meth:`config`: a step then changes it in place instead of
        #: copying the dict of every session (with 1,000 sessions, 200 copies a commit)
        self._view_own = False
        self._view_version = -1
        #: sessions changed by commits and not yet in the view; ``None``: rebuild it all
        self._stale: set[str] | None = None
        self._refresher: asyncio.Task | None = None
        datastores.add_commit_listener(self._running_changed)

    def _running_changed(self, summary: ChangeSummary) -> None:
        """After a commit: note what changed; the view catches up in the background.

        Only the sessions the commit touched are read again (a commit that
        changes anything else of /pki rebuilds the whole view), a chunk at a
        time with other sessions' RPCs in between, starting once the commit
        has been answered. :meth:`config` finishes the work at once if it is
        asked before.
        """
        keys = summary.keys_of(*SESSION_LIST)
        if keys is None:
            self._stale = None
        elif self._stale is not None:
            self._stale.update(key[0] for key in keys)
        self.catch_up_soon()

    def catch_up_soon(self) -> None:
        """Bring the view up to date in the background, in slices of about
        :data:`VIEW_SLICE_SECONDS` between other sessions' RPCs (listeners hear of
        each step of :data:`VIEW_CHUNK` sessions); at once if there is no event loop. :meth:`config` finishes it at once when asked before."""
        if self._refresher is not None and not self._refresher.done():
            return
        try:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh())
        except RuntimeError:  # no event loop (unit use): catch up now
            self.config()

    @property
    def has_view(self) -> bool:
        """Whether running was read into the view at least once (it may lag behind)."""
        return self._view is not None

    async def _refresh(self) -> None:
        if self._view is None:  # the first read of running after a start: its views in slices
            await self.datastores.build_running_views(SESSION_LIST)
        await run_cooperatively(self._catch_up_steps(), VIEW_SLICE_SECONDS)
        # What the committed configuration built (the view, the schedule) lives until
        # the next commit and holds no garbage cycles: taken out of the cyclic garbage
        # collector's scans, whose full passes otherwise stall every session for
        # tens of milliseconds per 10,000 sessions (refcounting still frees it).
        gc.freeze()

    def _catch_up_steps(self) -> Steps[None]:
        """:meth:`_catch_up` until the view is up to date, :data:`VIEW_CHUNK` sessions a
        step (what is not a session, when it is read again, a step of its own)."""
        while self._view_version != self.datastores.running_version:
            if self._view is None or self._stale is None:
                self._rebase()
                yield
            self._catch_up(VIEW_CHUNK)
            yield

    def _rebase(self) -> None:
        """Read what is not a session (entities, top-level leaves) again, and mark every
        session to be read after it, as for a commit that changed them all."""
        base = PkiConfig.from_raw(self.datastores.running_raw(without=SESSION_LIST[-1]))
        old = self._view.sessions if self._view is not None else {}
        self._view = replace(base, sessions=dict(old))
        self._view_own = True
        self._stale = set(old) | {k[0] for k in self.datastores.running_keys(SESSION_LIST)}

    def _catch_up(self, limit: int | None = None) -> None:
        """Apply the changes of running to the view (at most *limit* sessions)."""
        version = self.datastores.running_version
        if self._view is None or self._stale is None:
            self._rebase()
        names = self._stale
        if limit is not None and len(names) > limit:
            names = set(itertools.islice(names, limit))
            self._stale -= names
        else:
            self._stale = set()
        entries = self.datastores.running_entries(SESSION_LIST, [(n,) for n in names])
        changed = {k[0]: raw for k, raw in entries.items()}
        if self._view_own:
            self._view.update_sessions(changed)
        else:  # the view was given out: it stays as it is
            self._view = self._view.with_sessions(changed)
            self._view_own = True
        if not self._stale:
            self._view_version = version
        self._changed(names)


    def on_store_change(self) -> None:
        """The certificate store changed (an RPC imported or deleted a file)."""
        self.config()
        self._changed(None)

    def _changed(self, names: set[str] | None) -> None:
        # seed step 9: a committed session with hmac-sha1 is accepted, with a warning
        for name in self._view.sessions if names is None else names:
            session = self._view.sessions.get(name)
            warning = weak_algorithm_warning(session) if session is not None else None
            if warning:
                log.warning("commit: %s", warning)
        for listener in self.on_change:
            listener(self._view, names)

    # ------------------------------------------------------------------ config
    def config(self) -> PkiConfig:
        """The committed configuration (brought up to date first if a commit
        changed running since)."""
        while self._view is None or self._view_version != self.datastores.running_version:
            self._catch_up()
        self._view_own = False  # the caller may keep it: no longer changed in place
        return self._view

    def session(self, name: str) -> tuple[PkiConfig, SessionConfig]:
        pki = self.config()
        try:
            return pki, pki.sessions[name]
        except KeyError:
            raise RpcError(
                "invalid-value",
                f"no CMP session {name!r} in the running configuration:"
                " configure /pki/cmp-session and commit first",
                path=f"/pki:pki/pki:cmp-session[pki:name='{name}']",
                path_namespaces={"pki": PKI_NS},
            ) from None

    def stats_for(self, name: str) -> CmpStatistics:
        if name not in self.statistics:
            self.statistics[name] = CmpStatistics(discontinuity_time=self.clock.now())
        return self.statistics[name]

    # ---------------------------------------------------------------- requests
    async def request(self, name: str, kind: RequestType, trigger: Trigger = "manual") -> RequestOutcome:
        """Run *kind* on session *name*; the RPC's answer, or ``waiting`` after reply_wait
        (sooner when the CA said "waiting" and its next poll comes after reply_wait;
        status-text then says what the CA wrote).

        Precondition errors raise :class:`RpcError` before anything is sent;
        once the transaction has started, every way it ends is an outcome
        (also notified), an internal error included.
        """
        pki, session = self.session(name)
        if name in self._busy:
            raise RpcError(
                "in-use",
                f"session {name}: a CMP transaction is already running; wait for its"
                " cmp-session-result notification",
            )
        self._busy.add(name)
        try:  # key generation and file reads stay off the event loop
            prepared = await in_own_thread(f"cmp-{name}", functools.partial(
                prepare, session, kind, pki, self.keys, self.certs, self.secrets,
                connect_timeout=self.settings.connect_timeout, now=self.clock.now(),
            ))
        except RpcError as exc:  # what prepare refuses, nothing was sent for
            self._busy.discard(name)
            if exc.tag == "operation-failed" and exc.app_tag is None:
                exc.app_tag = PRECONDITION
            raise
        except BaseException:
            self._busy.discard(name)
            raise
        # this request's record: it outlives a clear-statistics while the CA is asked
        last = self.stats_for(name).last_request = LastRequest(kind, trigger, self.clock.now())
        began = time.monotonic()
        log.info("session %s: %s started (%s) to %s", name, kind, trigger, prepared.request.server_url)

        # the CA answered "waiting" and the next pollReq goes out after the reply wait: the
        # RPC answers "waiting" then, with the CA's text, not at the end of the wait
        reply_deadline = time.monotonic() + self.settings.reply_wait
        polls_late = asyncio.get_running_loop().create_future()

        def polled(polling: Polling) -> None:  # on the event loop
            late = time.monotonic() + self.clock.real_seconds(polling.delay) >= reply_deadline
            if late and not polls_late.done():
                polls_late.set_result(None)

        on_poll = self._progress(name, kind, last, polled)
        from agent.cmp.client import Cancellation

        cancellation = Cancellation()
        task = in_own_thread(f"cmp-{name}", functools.partial(
            self._transact, prepared, pki, trigger, cancellation, on_poll))
        self._running[name] = (cancellation, task)

        def conclude() -> RequestOutcome:
            last.next_poll_time = None
            try:
                if task.exception() is None:
                    outcome = self._complete(prepared, *task.result(), trigger,
                                             time.monotonic() - began, last)
                else:
                    outcome = self._internal_error(prepared, trigger, task.exception(), last)
            except Exception as exc:  # keeping the result failed (e.g. the disk is full)
                outcome = self._internal_error(prepared, trigger, exc, last)
            finally:
                self._busy.discard(name)
                self._running.pop(name, None)
            self.notify(outcome.notification())
            for listener in self.on_result:
                try:
                    listener(outcome)
                except Exception:
                    log.exception("session %s: result listener %r failed", name, listener)
            return outcome

        done, _ = await asyncio.wait({task, polls_late}, timeout=self.settings.reply_wait,
                                     return_when=asyncio.FIRST_COMPLETED)
        polls_late.cancel()
        if task in done:
            return conclude()

        async def later() -> None:
            await asyncio.wait({task})
            conclude()

        background = asyncio.ensure_future(later())
        self._background.add(background)
        background.add_done_callback(self._background.discard)
        return RequestOutcome(
            name, kind, trigger, "waiting", key_pair_created=prepared.key_pair_created,
            status_text=(f"the CA answered waiting; {last.reason}" if last.reason else
                         "the CA has not answered yet" if last.result != "waiting" else
                         "the CA answered waiting")
            + "; the result comes as a cmp-session-result notification",
        )

    def _progress(self, name: str, kind: str, last: LastRequest,
                  polled: Callable[[Polling], None] = lambda polling: None,
                  ) -> Callable[[Polling], None]:
        """The transaction's *on_poll* (called in its thread): each time the CA says
        "waiting", *last* shows when the next pollReq goes out and what the CA wrote with
        it (a pollRep's reason, RFC 4210 5.3.22), for <get>; the log says it at the first
        poll and whenever the text changes, every poll at DEBUG (a CA polled every second
        for hours with the same text would flood the log otherwise); then *polled* is told."""
        loop = asyncio.get_running_loop()
        logged: list[str | None] = [None]  # what the CA said at the last poll logged at INFO

        def waiting(polling: Polling) -> None:  # on the event loop
            last.result, last.next_poll_time = "waiting", polling.when
            last.reason = polling.says()
            stats = self.stats_for(name)
            if stats.last_request is None:  # cleared meanwhile: still the present
                stats.last_request = last
            level = logging.DEBUG if last.reason == logged[0] else logging.INFO
            logged[0] = last.reason
            log.log(level, "session %s: %s: %s", name, kind, polling)
            polled(polling)

        def on_poll(polling: Polling) -> None:
            try:
                loop.call_soon_threadsafe(waiting, polling)
            except RuntimeError:  # the loop is closed: the agent has stopped
                pass

        return on_poll

    # ------------------------------------------------- revocation, general messages
    async def _exchange(self, name: str, kind: CmpRequestType, build: Callable[[SessionConfig], EnrollmentRequest]
                        ) -> tuple[EnrollmentRequest, TransactionResult]:
        """Run one rr or genm of session *name* to its end (RFC 9483 4.2, 4.3): counted in
        the statistics, recorded in last-request; among the running transactions that
        :meth:`close` ends at shutdown."""
        from agent.cmp.client import Cancellation

        _, session = self.session(name)
        if name in self._busy:
            raise RpcError("in-use", f"session {name}: a CMP transaction is already running")
        self._busy.add(name)
        try:
            try:
                request = await in_own_thread(f"cmp-{name}", functools.partial(build, session))
            except RpcError as exc:  # refused before anything was sent
                if exc.tag == "operation-failed" and exc.app_tag is None:
                    exc.app_tag = PRECONDITION
                raise
            last = self.stats_for(name).last_request = LastRequest(kind, "manual", self.clock.now())
            began = time.monotonic()
            log.info("session %s: %s started to %s", name, kind, request.server_url)
            cancellation = Cancellation()  # ended at shutdown like an ir/cr/kur (close)
            task = in_own_thread(f"cmp-{name}", functools.partial(
                self._enroll, request, cancellation=cancellation,
                on_poll=self._progress(name, kind, last)))
            self._running[name] = (cancellation, task)
            result = await task
        finally:
            self._running.pop(name, None)
            self._busy.discard(name)
        for stats in (self.stats_for(name), self.total):
            self._count(stats, result)
        self.stats_for(name).last_request = last
        last.duration_ms = int((time.monotonic() - began) * 1000)
        last.next_poll_time = None
        last.result = "success" if result.ok else "failure"
        last.reason = "" if result.ok else str(result)
        log.log(logging.INFO if result.ok else logging.WARNING, "session %s: %s %s", name, kind,
                "done" if result.ok else f"failed: {result}")
        return request, result

    async def revoke(self, name: str, certificate_file: str, reason: str) -> dict[str, object]:
        """``cmp-revocation-request``: the output leaves; the file is marked revoked."""
        from agent.cmp import messages as m
        from agent.cmp.transaction import Failed, Revoked

        code = next(k for k, v in m.CRL_REASONS.items() if v == reason)
        request, result = await self._exchange(name, "rr", lambda session: prepare_revocation(
            session, self.config(), self.keys, self.certs, self.secrets, certificate_file, code,
            connect_timeout=self.settings.connect_timeout, now=self.clock.now()))
        if isinstance(result, Failed):
            raise _refused(name, "rr", result).rpc_error()
        assert isinstance(result, Revoked)
        self.revocations.mark(request.old_certificate, reason, self.clock.now())
        return {"status": "success", "pki-status": result.status,
                "status-text": " | ".join(result.status_texts) or None}

    async def general(self, name: str, info_type: str) -> dict[str, object]:
        """``cmp-general-request``: ask, check and keep what the genp holds (RFC 9483 4.3)."""
        from agent.cmp import genm, messages as m
        from agent.cmp.protection import ProtectionError
        from agent.cmp.transaction import Failed, GeneralResponse

        wanted = {"ca-certs": "caCerts", "root-ca-cert": "rootCaCert",
                  "cert-req-template": "certReqTemplate", "crl-status-list": "crlStatusList"}[info_type]
        pki, session = self.session(name)

        def build(session: SessionConfig) -> EnrollmentRequest:
            old_root = current_root(session, self.certs) if wanted == "rootCaCert" else None
            if wanted == "rootCaCert" and old_root is None:
                raise RpcError("operation-failed", f"session {name}: no root CA certificate in the"
                               " store to check a root CA key update against")
            statuses = []
            if wanted == "crlStatusList":
                if not session.authentication_cert:
                    raise RpcError("operation-failed", f"session {name}: crl-status-list asks for"
                                   " the CRL of the authentication-cert; configure it")
                statuses.append(m.crl_status_for(checked_certificate(session, self.certs,
                                                                 session.authentication_cert)))
            entries = genm.request_entries(wanted, old_root=old_root, crl_statuses=statuses)
            return prepare_general(session, pki, self.keys, self.certs, self.secrets, entries,
                                   connect_timeout=self.settings.connect_timeout,
                                   now=self.clock.now())

        request, result = await self._exchange(name, "genm", build)
        if isinstance(result, Failed):
            raise _refused(name, "genm", result).rpc_error()
        assert isinstance(result, GeneralResponse)
        value = genm.response_value(wanted, result.entries)
        try:
            return await in_own_thread(f"cmp-{name}", functools.partial(
                self._keep_general, wanted, value, request, result, session, pki.file_format))
        except (m.MessageError, ProtectionError) as exc:
            raise RequestOutcome(name, "genm", "manual", "failure", status_text=f"{wanted}: {exc}",
                                 app_tag=_APP_TAGS[FailureKind.PROTECTION]).rpc_error() from None

    def _keep_general(self, wanted: str, value: bytes | None, request: EnrollmentRequest,
                      result: GeneralResponse, session: SessionConfig, file_format: str) -> dict:
        """What a genp brought, checked: CA certificates that chain to a trust anchor of the
        store, a new root chained to the current one; a template or a CRL as output."""
        from agent.cmp import genm, messages as m
        from agent.cmp.protection import ProtectionError
        from agent.cmp.verify import validate_path

        now = self.clock.now()
        if wanted == "caCerts":
            anchors = request.trusted  # the session's trust anchors (README "Trust model")
            saved, refused = [], []
            certs = m.read_certificates(value)
            for index, cert in enumerate(certs, start=1):
                try:
                    if cert not in anchors:
                        validate_path(cert, certs + result.extra_certs, anchors, now,
                                      "CA certificate")
                except ProtectionError as exc:
                    refused.append(str(exc))
                    continue
                file_name = f"{session.name}-cacert{index}.{file_format}"
                self.certs.save(file_name, cert, file_format)
                saved.append(file_name)
            text = f"caCerts: {len(certs)} certificate(s), {len(saved)} chained to a trust anchor"
            if refused:
                text += "; not kept: " + "; ".join(refused)
            return {"status": "success", "ca-certificate-file": saved, "status-text": text}
        if wanted == "rootCaCert":
            update = m.read_root_ca_key_update(value)
            if update is None:
                return {"status": "success", "status-text": "rootCaCert: no root CA key update"}
            old_root = x509.load_der_x509_certificate(request.general[0].value)
            new_root = genm.verify_root_update(update, old_root, now)
            file_name = f"{session.name}-root.{file_format}"
            # RFC 9483 4.3.2: verified with the current root, the new root is an anchor too
            self.certs.save(file_name, new_root, file_format, "anchor-root-update")
            self.on_store_change()
            return {"status": "success", "ca-certificate-file": [file_name],
                    "status-text": "rootCaCert: new root saved, newWithOld verified with"
                                   f" {old_root.subject.rfc4514_string()}"}
        if wanted == "certReqTemplate":
            template = m.read_cert_req_template(value)
            if template is None:
                return {"status": "success", "status-text": "certReqTemplate: the CA has none"}
            return {"status": "success", "template": template.to_der()}
        crls = m.read_crls(value)
        if not crls:
            return {"status": "success", "status-text": "crlStatusList: no newer CRL"}
        return {"status": "success", "crl": crls[0].public_bytes(serialization.Encoding.DER),
                "status-text": f"crlStatusList: CRL of {crls[0].issuer.rfc4514_string()},"
                               f" {len(crls[0])} revoked"}

    def busy(self, name: str) -> bool:
        """Whether a transaction of session *name* is running."""
        return name in self._busy

    def _internal_error(self, prepared: PreparedRequest, trigger: Trigger,
                        exc: BaseException, last: LastRequest) -> RequestOutcome:
        """The engine or the stores failed in a way no CA answer explains (a bug, a full disk)."""
        reason = f"internal error: {type(exc).__name__}: {exc}"
        self.stats_for(prepared.session.name).last_request = last
        last.result, last.reason = "failure", reason
        log.error("session %s: %s ended abnormally", prepared.session.name, prepared.kind,
                  exc_info=exc)
        return RequestOutcome(prepared.session.name, prepared.kind, trigger, "failure",
                              status_text=reason, key_pair_created=prepared.key_pair_created,
                              app_tag=INTERNAL_ERROR)

    def _transact(self, prepared: PreparedRequest, pki: PkiConfig, trigger: Trigger,
                  cancellation: Cancellation, on_poll: Callable[[Polling], None],
                  ) -> tuple[EnrollmentResult, RequestOutcome | Exception | None]:
        """In the transaction's thread: the CMP transaction and, if it enrolled,
        saving what it produced (the file writes and their fsyncs stay off the
        event loop)."""
        from agent.cmp.transaction import Enrolled

        result = self._enroll(prepared.request, cancellation=cancellation, on_poll=on_poll)
        if not isinstance(result, Enrolled):
            return result, None
        try:
            return result, self._save(prepared, pki, result, trigger)
        except Exception as exc:  # reported by _complete, after the counting
            return result, exc

    def _complete(
        self, prepared: PreparedRequest, result: EnrollmentResult,
        saved: RequestOutcome | Exception | None, trigger: Trigger, seconds: float,
        last: LastRequest,
    ) -> RequestOutcome:
        from agent.cmp.transaction import Enrolled

        name = prepared.session.name
        stats = self.stats_for(name)
        self._count(stats, result)
        self._count(self.total, result)
        stats.last_request = last  # again, if clear-statistics dropped it meanwhile
        if isinstance(result, Enrolled):
            if isinstance(saved, Exception):
                raise saved
            assert saved is not None
            outcome = saved
            last.result, last.reason = "success", prepared.warning or ""
            stats.local_certificate_not_after = outcome.not_after
            log.info("session %s: %s %s, certificate %s serial %s",
                     name, prepared.kind, result.status, outcome.certificate_file, outcome.serial)
            if prepared.warning:
                log.warning("session %s: %s", name, prepared.warning)
            if not result.chain_checked:
                log.warning("session %s: the new certificate's chain was not checked: no trust"
                            " anchor (verification-cert, or certificate-import trust-anchor true)",
                            name)
        else:
            outcome = self._failed(prepared, result, trigger)
            last.result, last.reason = "failure", str(result)
            log.warning("session %s: %s failed: %s", name, prepared.kind, result)
        last.duration_ms = int(seconds * 1000)
        return outcome

    @staticmethod
    def _count(stats: CmpStatistics, result: TransactionResult) -> None:
        from agent.cmp.transaction import Enrolled, Failed

        for body, count in result.messages.sent.items():
            stats.sent[_COUNTER_NAMES.get(body, body)] += count
        for body, count in result.messages.received.items():
            stats.received[_COUNTER_NAMES.get(body, body)] += count
        if result.messages.received.get("pollRep"):  # the CA answered "waiting" first
            stats.outcomes["waiting"] += 1
        if isinstance(result, Enrolled):
            stats.outcomes["granted-with-mods" if result.status == "grantedWithMods" else "accepted"] += 1
            return
        if not isinstance(result, Failed):  # rp or genp: not a certificate response
            return
        if result.status == "rejection":
            stats.outcomes["rejection"] += 1
        if result.kind in _FAILURE_COUNTERS:
            stats.failures[_FAILURE_COUNTERS[result.kind]] += 1
        for bit in result.failure_info:
            stats.failure_info[bit] += 1

    def _save(
        self, prepared: PreparedRequest, pki: PkiConfig, result: Enrolled, trigger: Trigger
    ) -> RequestOutcome:
        """Seed 11/12: save (not install) the certificate and the CA certificates.

        A KUR replaces the certificate it was signed with (and, with
        ``regenerate``, the key pair). What it replaces is kept first as
        ``NAME.previous``, taken from the request itself (the signer's
        certificate and key), so that an interrupted update never loses the
        working pair: the signer key is always found again, in ``NAME`` or
        in ``NAME.previous``.
        """
        session = prepared.session
        signer = prepared.request.signer
        if prepared.replaces_certificate:
            cert_file = prepared.replaces_certificate
            encoding = self.certs.encoding_of(cert_file, pki.file_format)
            self.certs.save(cert_file + PREVIOUS_SUFFIX, signer.certificate, encoding)
        else:
            cert_file = prepared.certificate_file
            encoding = pki.file_format
        if prepared.key_is_new:
            self.keys.save(session.key_pair_name + PREVIOUS_SUFFIX, signer.key)
            self.keys.save(session.key_pair_name, prepared.new_key)
        self.certs.save(cert_file, result.certificate, encoding)
        ca_files = []
        # caPubs are trust anchors only when they came under our verified MAC in an IR (RFC 4210
        # 5.3.2); other caPubs never take an anchor's place: they get the next free name
        anchor = "anchor-capubs-mac" if result.ca_pubs_trusted else None
        index = 0
        for ca in result.ca_pubs:
            index += 1
            ca_file = f"{session.name}-ca{index}.{pki.file_format}"
            while anchor is None and self.certs.displaces_anchor(ca_file, ca):
                index += 1
                ca_file = f"{session.name}-ca{index}.{pki.file_format}"
            # the same certificate again stays the anchor it was
            self.certs.save(ca_file, ca, pki.file_format, anchor or self.certs.anchor_for(ca_file, ca))
            ca_files.append(ca_file)
        cert: x509.Certificate = result.certificate
        return RequestOutcome(
            session.name, prepared.kind, trigger, "success",
            certificate_file=cert_file,
            ca_certificate_files=tuple(ca_files),
            serial=f"{cert.serial_number:X}",
            not_after=cert.not_valid_after_utc,
            pki_status=result.status,
            status_text=" | ".join(result.status_texts) or None,
            key_pair_created=prepared.key_pair_created,
        )

    @staticmethod
    def _failed(prepared: PreparedRequest, result: Failed, trigger: Trigger) -> RequestOutcome:
        return replace(_refused(prepared.session.name, prepared.kind, result,
                                prepared.key_pair_created), trigger=trigger)

    async def close(self) -> None:
        """Agent shutdown: end the running transactions, each CA told by an error message
        (RFC 4210 5.3.21), and wait for them and their notifications, at most
        :data:`SHUTDOWN_WAIT` seconds."""
        tasks = [task for _, task in self._running.values()]
        for cancellation, _ in self._running.values():
            cancellation.cancel()
        pending = set(tasks) | self._background
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_WAIT)

    # -------------------------------------------------------------- statistics
    def clear_statistics(self, name: str | None) -> None:
        now = self.clock.now()
        if name is None:
            self.total.clear(now)
            for stats in self.statistics.values():
                stats.clear(now)
        else:
            self.session(name)
            self.stats_for(name).clear(now)

    # ------------------------------------------------------------------- state
    def state(self) -> list[etree._Element]:
        """``/pki``'s config-false nodes: key-pair, certificate-file, statistics."""
        q = lambda name: f"{{{PKI_NS}}}{name}"  # noqa: E731
        pki = etree.Element(q("pki"), nsmap={None: PKI_NS})
        sessions = self.config().sessions
        for name in sessions:
            entry = etree.SubElement(pki, q("cmp-session"))
            etree.SubElement(entry, q("name")).text = name
            entry.append(self.stats_for(name).to_xml("statistics"))
        for name in self.keys.names():
            try:
                info = self.keys.describe(name)
            except (RpcError, ValueError, OSError):
                continue  # a file that vanished or is not a key: not a key pair
            entry = etree.SubElement(pki, q("key-pair"))
            etree.SubElement(entry, q("name")).text = info.name
            etree.SubElement(entry, q("algorithm")).text = info.algorithm
            etree.SubElement(entry, q("key-bits")).text = str(info.key_bits)
            if info.curve:
                etree.SubElement(entry, q("curve")).text = info.curve
            etree.SubElement(entry, q("fingerprint")).text = info.fingerprint
        revoked = self.revocations.all()
        verification_certs = {s.verification_cert for s in sessions.values()}
        registry = self.certs.trust_registry()
        for name in self.certs.names():
            try:
                cert_info = self.certs.describe(name)
            except (RpcError, OSError):
                continue
            anchor = self.certs.trust_of(name, cert_info.fingerprint, registry)
            if anchor is None:
                anchor = "anchor-verification-cert" if name in verification_certs else "untrusted"
            entry = etree.SubElement(pki, q("certificate-file"))
            for leaf, value in (
                ("name", cert_info.name),
                ("subject", cert_info.subject),
                ("issuer", cert_info.issuer),
                ("serial", cert_info.serial),
                ("not-before", yang_datetime(cert_info.not_before)),
                ("not-after", yang_datetime(cert_info.not_after)),
                ("fingerprint", cert_info.fingerprint),
                ("trust", anchor),
            ):
                etree.SubElement(entry, q(leaf)).text = xml_text(value)
            mark = revoked.get(cert_info.fingerprint)
            if mark is not None:
                revocation = etree.SubElement(entry, q("revocation"))
                etree.SubElement(revocation, q("reason")).text = mark.reason
                etree.SubElement(revocation, q("time")).text = yang_datetime(mark.time)
        pki.append(self.total.to_xml("cmp-statistics"))
        return [pki]
