"""Automatic certificate update (seed step 12: ``certificate auto-update enable``,
``certificate update expire-time``).

For every session with ``auto-update/enabled``, the agent runs a KUR once the
``authentication-cert`` has lived ``expire-time`` percent of its validity. The
certificate and key pair are replaced only after the CA's certificate is
verified and confirmed (the PKI service does that); a failure leaves the
working pair alone and is retried with back-off. The schedule is recomputed on
every change of running, after every transaction and on start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from agent import PKI_NS
from agent.netconf.errors import RpcError
from agent.pki.schedule import Backoff, update_due
from agent.pki.service import PkiService, RequestOutcome
from agent.pki.statistics import yang_datetime

log = logging.getLogger(__name__)


@dataclass
class _Plan:
    session: str
    certificate_file: str
    not_after: datetime
    due: datetime
    auto: bool
    failures: int = 0
    warned: bool = False


class AutoUpdater:
    """Watches the sessions' certificates and renews them when due."""

    def __init__(self, service: PkiService, *, tick: float = 1.0, backoff: Backoff | None = None):
        self.service = service
        self.tick = tick
        self.backoff = backoff or Backoff()
        self._plans: dict[str, _Plan] = {}
        self._task: asyncio.Task | None = None
        #: sessions whose automatic update is under way
        self._running: set[str] = set()
        service.on_result.append(self._after_request)
        service.on_change.append(self.reschedule)

    def reschedule(self) -> None:
        """Recompute every session's next update from running and the stores."""
        plans: dict[str, _Plan] = {}
        for name, session in self.service.config().sessions.items():
            stats = self.service.stats_for(name)
            stats.next_auto_update = None
            cert_name = session.authentication_cert
            if not cert_name or not self.service.certs.exists(cert_name):
                continue
            try:
                cert = self.service.certs.load(cert_name)
            except RpcError:
                continue
            not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
            due = update_due(not_before, not_after, session.expire_percent)
            old = self._plans.get(name)
            plan = _Plan(name, cert_name, not_after, due, session.auto_update)
            if old and (old.certificate_file, old.not_after) == (cert_name, not_after):
                plan.failures, plan.warned = old.failures, old.warned
                if old.failures:
                    plan.due = old.due
            plans[name] = plan
            stats.local_certificate_not_after = not_after
            if plan.auto:
                stats.next_auto_update = plan.due
        self._plans = plans

    def start(self) -> None:
        self.reschedule()
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
            now = self.service.clock.now()
            for plan in list(self._plans.values()):
                if now < plan.due or plan.session in self._running:
                    continue
                if self.service.busy(plan.session):
                    continue  # a manual request is running: look again next tick
                # each session's update runs on its own: a slow CA holds up no other
                self._running.add(plan.session)
                task = asyncio.ensure_future(self._due(plan, now))
                task.add_done_callback(lambda _, name=plan.session: self._running.discard(name))

    async def _due(self, plan: _Plan, now: datetime) -> None:
        if not plan.auto:
            self._warn(plan)
            plan.due = plan.not_after  # nothing more to do for this certificate
            return
        log.info("session %s: %s reached its update time, running an automatic KUR",
                 plan.session, plan.certificate_file)
        try:
            outcome = await self.service.request(plan.session, "kur", "auto")
        except RpcError as exc:  # the session's configuration stops the request
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

    def _after_request(self, outcome: RequestOutcome) -> None:
        plan = self._plans.get(outcome.session)
        if outcome.status == "failure" and outcome.trigger == "auto" and plan:
            self._failed(plan, self.service.clock.now(), outcome.status_text or "")
            return
        self.reschedule()

    def _failed(self, plan: _Plan, now: datetime, reason: str) -> None:
        plan.failures += 1
        plan.due = self.backoff.next_attempt(now, plan.failures, plan.not_after)
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
