"""Automatic certificate update (seed step 12: ``certificate auto-update enable``,
``certificate update expire-time``).

For every session with ``auto-update/enabled``, the agent runs a KUR once the
``authentication-cert`` has lived ``expire-time`` percent of its validity. The
certificate and key pair are replaced only after the CA's certificate is
verified and confirmed (the PKI service does that); a failure leaves the
working pair alone and is retried with back-off. The schedule is recomputed on
every change of running, after every transaction and on start.

A KUR is signed with the certificate it updates, which must be valid then (RFC 4210
5.3.5, RFC 9483 4.1.3; notAfter inclusive, RFC 5280 4.1.2.5). Once it has expired, no
KUR is sent: the updater says so once (log, ``statistics/last-request``, a failed
``cmp-session-result``) and waits for a new certificate, which a new initial request
(``cmp-initial-request``) brings.

A certificate the agent has just obtained (any request, manual or automatic) whose update
time has already come is not renewed again at once: a CA that caps validity at its own
notAfter, say, answers the same again, and the updater would ask it in a loop until the
certificate expires. It says so once (a WARNING, ``statistics/last-request/reason`` and
``local-certificate-nearly-expired``) and tries again after the back-off, at the latest
:func:`~agent.pki.schedule.update_margin` before notAfter; after that, not with this
certificate. The update time itself is never later than that margin before notAfter
(``expire-time 100``), so that the certificate still signs when the KUR arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from agent import PKI_NS
from agent.netconf.errors import RpcError
from agent.pki.config import PkiConfig
from agent.pki.preconditions import signer_problem
from agent.pki.schedule import Backoff, update_due, update_margin
from agent.pki.service import PkiService, RequestOutcome
from agent.pki.statistics import LastRequest, yang_datetime
from agent.pki.stores import CertificateInfo

log = logging.getLogger(__name__)

#: a held plan's due time after notAfter: the first moment the certificate has expired
_JUST_AFTER = timedelta(microseconds=1)


@dataclass
class _Plan:
    session: str
    certificate_file: str
    #: the certificate as the store describes it (subject, serial, validity)
    certificate: CertificateInfo
    due: datetime
    auto: bool
    #: the jitter added to this certificate's update time
    offset: timedelta
    failures: int = 0
    warned: bool = False
    #: the certificate is past its validity: reported once, nothing more to do with it
    expired: bool = False

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_after


@dataclass(frozen=True)
class UpdatePacing:
    """How automatic updates share the CA when many fall due together.

    At most *concurrency* automatic updates run at once; the others wait
    their turn. Each certificate's update time is moved later by a share of
    *jitter* (or of a tenth of the time left until expiry, if that is
    shorter), so that certificates issued together do not all come back in
    the same second (no thundering herd). The share is drawn from a hash of
    the session name and the certificate: spread like a random one, but the
    same after a restart.
    """

    concurrency: int = 8
    jitter: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"auto-update concurrency must be at least 1, not {self.concurrency}")
        if self.jitter < timedelta(0):
            raise ValueError("auto-update jitter must not be negative")


class AutoUpdater:
    """Watches the sessions' certificates and renews them when due."""

    def __init__(self, service: PkiService, *, tick: float = 1.0, backoff: Backoff | None = None,
                 pacing: UpdatePacing | None = None):
        self.service = service
        self.tick = tick
        self.backoff = backoff or Backoff()
        self.pacing = pacing or UpdatePacing()
        #: the latest update time is this long before notAfter
        self.margin = update_margin(tick)
        #: while a result is planned: the certificate file it wrote -> its session
        self._obtained: dict[str, str] = {}
        #: sessions whose last renewals in a row each brought a certificate already due
        self._due_streak: dict[str, int] = {}
        self._plans: dict[str, _Plan] = {}
        #: (due, session) of the plans, earliest first (a heap): each tick looks at its
        #: head only. A plan's every new due time is pushed; an entry whose plan has
        #: changed since is dropped when it comes up.
        self._queue: list[tuple[datetime, str]] = []
        self._task: asyncio.Task | None = None
        #: sessions whose automatic update is under way
        self._running: set[str] = set()
        service.on_result.append(self._after_request)
        service.on_change.append(self.reschedule)

    def reschedule(self, pki: PkiConfig, names: set[str] | None = None) -> None:
        """Recompute the next update of sessions *names* (``None``: every session)
        from the committed configuration *pki* and the certificate store."""
        if names is None:
            names = set(pki.sessions) | set(self._plans)
        for name in names:
            self._plan(pki, name)

    def _enqueue(self, plan: _Plan) -> None:
        """Plan *plan*'s next look at :attr:`_Plan.due`."""
        heapq.heappush(self._queue, (plan.due, plan.session))
        if len(self._queue) > 2 * len(self._plans) + 64:  # mostly outdated entries: compact
            self._queue = [(p.due, p.session) for p in self._plans.values()]
            heapq.heapify(self._queue)

    def _plan(self, pki: PkiConfig, name: str) -> None:
        old = self._plans.pop(name, None)
        session = pki.sessions.get(name)
        if session is None:
            return
        stats = self.service.stats_for(name)
        stats.next_auto_update = None
        cert_name = session.authentication_cert
        if not cert_name:
            return
        try:
            cert = self.service.certs.describe(cert_name)
        except (RpcError, OSError):
            return  # not (yet) in the store, or not a certificate
        not_after = cert.not_after
        due = update_due(cert.not_before, not_after, session.expire_percent, self.margin)
        # the same file and the same certificate: a renewal may end when the old one did
        same_certificate = old is not None and (
            old.certificate_file, old.not_after, old.certificate.fingerprint) == (
            cert_name, not_after, cert.fingerprint)
        if same_certificate:
            offset = old.offset
        else:
            spread = min(self.pacing.jitter, max(not_after - due, timedelta(0)) / 10)
            digest = hashlib.sha256(f"{name}/{cert.fingerprint}".encode()).digest()
            offset = spread * (int.from_bytes(digest[:8], "big") / 2**64)
        due += offset
        plan = _Plan(name, cert_name, cert, due, session.auto_update, offset)
        if same_certificate:
            plan.failures, plan.warned = old.failures, old.warned
            # told once; again if auto-update was switched on or off since
            plan.expired = old.expired and old.auto == plan.auto
            if old.failures:
                plan.due = old.due
        self._plans[name] = plan
        stats.local_certificate_not_after = not_after
        if not same_certificate and cert_name in self._obtained:
            now = self.service.clock.now()
            if plan.auto and plan.due <= now:
                self._hold(plan, old, now, session.expire_percent, self._obtained[cert_name])
            else:
                self._due_streak.pop(name, None)
        if plan.expired:
            return  # said once; a new certificate makes a new plan
        self._enqueue(plan)
        if plan.auto and plan.due <= plan.not_after:
            stats.next_auto_update = plan.due

    def start(self) -> None:
        """Plan every session's update, then check the plans every tick.

        At the agent's start the service has not read running yet: it does so
        once the agent listens, a chunk of sessions at a time, and each chunk is
        planned as it arrives (:attr:`PkiService.on_change`), so that thousands
        of sessions do not hold up the first ``<hello>``.
        """
        if self.service.has_view:
            self.reschedule(self.service.config())
        else:
            self.service.catch_up_soon()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self._start_due(self.service.clock.now())

    def _start_due(self, now: datetime) -> None:
        """Start the updates that are due, earliest first, as many as the pacing allows;
        idle, this is one comparison."""
        free = self.pacing.concurrency - len(self._running)
        later: list[tuple[datetime, str]] = []
        while self._queue and self._queue[0][0] <= now and free > 0:
            due, name = heapq.heappop(self._queue)
            plan = self._plans.get(name)
            if plan is None or plan.due != due:
                continue  # outdated: the plan's present due time has an entry of its own
            if name in self._running or self.service.busy(name):  # a manual one runs: later
                later.append((due, name))
                continue
            if now > plan.not_after:  # RFC 5280 4.1.2.5: valid through notAfter inclusive
                self._expired(plan, now)
                continue
            # each session's update runs on its own: a slow CA holds up no other
            self._running.add(name)
            free -= 1
            task = asyncio.ensure_future(self._due(plan, now))
            task.add_done_callback(lambda _, name=name: self._running.discard(name))
        for entry in later:
            heapq.heappush(self._queue, entry)

    async def _due(self, plan: _Plan, now: datetime) -> None:
        if not plan.auto:
            self._warn(plan)
            plan.due = plan.not_after  # nothing more to do for this certificate
            self._enqueue(plan)
            return
        log.info("session %s: %s reached its update time, running an automatic KUR",
                 plan.session, plan.certificate_file)
        try:
            outcome = await self.service.request(plan.session, "kur", "auto")
        except RpcError as exc:  # the session's configuration stops the request
            if self.service.clock.now() > plan.not_after:  # it expired meanwhile
                self._expired(plan, self.service.clock.now())
                return
            self._failed(plan, now, str(exc))
            self.service.notify(RequestOutcome(
                plan.session, "kur", "auto", "failure", status_text=exc.message).notification())
            return
        except Exception as exc:  # never let one session's trouble stop the loop
            log.exception("session %s: automatic update could not start", plan.session)
            self._failed(plan, now, f"internal error: {type(exc).__name__}: {exc}")
            return
        if outcome.status == "waiting":
            plan.due = plan.not_after  # the result's listener reschedules
            self._enqueue(plan)

    def _after_request(self, outcome: RequestOutcome) -> None:
        plan = self._plans.get(outcome.session)
        if outcome.status == "failure" and outcome.trigger == "auto" and plan:
            self._failed(plan, self.service.clock.now(), outcome.status_text or "")
            return
        # the session itself, and every session that authenticates with the file it wrote
        pki = self.service.config()
        names = {outcome.session}
        if outcome.certificate_file:
            names.update(pki.sessions_authenticating_with(outcome.certificate_file))
            self._obtained[outcome.certificate_file] = outcome.session
        try:
            self.reschedule(pki, names)
        finally:
            self._obtained.clear()

    def _hold(self, plan: _Plan, old: _Plan | None, now: datetime, percent: int,
              requester: str) -> None:
        """*plan*'s certificate was just obtained and its update time has already come:
        renewing it at once would most likely bring the same again (a CA that caps
        validity at its own notAfter), in a loop until it expires. Try again after the
        back-off instead, not later than the margin before notAfter; said once."""
        streak = self._due_streak[plan.session] = self._due_streak.get(plan.session, 0) + 1
        retry = self.backoff.after_due_renewal(now, streak, plan.not_after - self.margin)
        plan.failures = streak  # kept, with its due time, while the certificate stays
        cert = plan.certificate
        plan.due = retry if retry is not None else cert.not_after + _JUST_AFTER
        if old is not None and cert.not_after <= old.not_after:
            what = (f"the CA issued {plan.certificate_file} (serial {cert.serial}) valid until"
                    f" {yang_datetime(cert.not_after)}, which does not outlive the certificate"
                    f" it replaces (valid until {yang_datetime(old.not_after)})")
        else:
            what = (f"the new certificate {plan.certificate_file} (serial {cert.serial}, valid"
                    f" {yang_datetime(cert.not_before)} to {yang_datetime(cert.not_after)}) is"
                    f" already past its update time (expire-time {percent} %)")
        then = (f"next try at {yang_datetime(retry)}" if retry is not None else
                f"no more automatic updates of it before it expires at"
                f" {yang_datetime(cert.not_after)}")
        reason = f"{what}: not renewed again at once ({then})"
        if streak == 1:
            log.warning("session %s: %s", plan.session, reason)
            self._warn(plan)
        else:  # the same answer again: said at the first
            plan.warned = True
            log.info("session %s: again (%d in a row): %s", plan.session, streak, reason)
        last = self.service.stats_for(plan.session).last_request
        if plan.session == requester and last is not None and last.result == "success":
            last.reason = "; ".join(filter(None, (last.reason, reason)))

    def _expired(self, plan: _Plan, now: datetime) -> None:
        """*plan*'s certificate has expired: a KUR cannot be authenticated with it any more.
        Said once, where the operator looks (log, last-request, notification); the plan
        is not looked at again until the certificate changes."""
        plan.expired = True
        stats = self.service.stats_for(plan.session)
        stats.next_auto_update = None
        if not plan.auto:
            log.warning("session %s: %s expired at %s", plan.session, plan.certificate_file,
                        yang_datetime(plan.not_after))
            return
        reason = signer_problem(plan.session, plan.certificate, now)
        log.error("session %s: automatic update stopped, no KUR sent: %s", plan.session, reason)
        last = stats.last_request = LastRequest("kur", "auto", now)
        last.result, last.reason = "failure", reason
        self.service.notify(RequestOutcome(
            plan.session, "kur", "auto", "failure", status_text=reason).notification())

    def _failed(self, plan: _Plan, now: datetime, reason: str) -> None:
        plan.failures += 1
        plan.due = self.backoff.next_attempt(now, plan.failures, plan.not_after)
        self._enqueue(plan)
        self.service.stats_for(plan.session).next_auto_update = plan.due
        log.warning("session %s: automatic update failed (%d in a row), next try at %s: %s",
                    plan.session, plan.failures, yang_datetime(plan.due), reason)
        self._warn(plan)

    def _warn(self, plan: _Plan) -> None:
        """``local-certificate-nearly-expired``, once per certificate."""
        if plan.warned:
            return
        plan.warned = True
        q = lambda name: f"{{{PKI_NS}}}{name}"  # noqa: E731
        event = etree.Element(q("local-certificate-nearly-expired"), nsmap={None: PKI_NS})
        etree.SubElement(event, q("session")).text = plan.session
        etree.SubElement(event, q("certificate-file")).text = plan.certificate_file
        etree.SubElement(event, q("not-after")).text = yang_datetime(plan.not_after)
        self.service.notify(event)
