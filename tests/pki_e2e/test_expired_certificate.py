"""A certificate past its validity is not updated by a KUR (RFC 4210 5.3.5, RFC 9483 4.1.3:
the KUR is signed with it; RFC 5280 4.1.2.5: valid through notAfter inclusive): the
automatic update stops with one report, a manual key update is refused before anything
is sent, and a new initial request is named as the way out. ``cmp-agent cmp`` warns and
sends, as ``openssl cmp`` does. Real peers: tools/testca, the agent, ``cmp-agent cli``."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest
from cmp_agent_command import agent_command
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from agent.datastore import Datastores, SecretBox
from agent.model import Model
from agent.netconf.errors import RpcError
from agent.pki.autoupdate import AutoUpdater, UpdatePacing
from agent.pki.schedule import UPDATE_MARGIN, Backoff
from agent.pki.service import PkiService
from agent.pki.statistics import yang_datetime
from nc_helpers import connect
from pki_helpers import (ENTITY, NC_NS, NS, PKI_NS, commit_pki, counter, mac_session, next_event,
                         out, rpc, rpc_failure, state)
from testca_process import run_testca

UTC = datetime.timezone.utc
ROOT = Path(__file__).resolve().parent.parent.parent
CMP_AGENT = agent_command()


def issued_by_testca(ca, not_before: datetime.datetime, not_after: datetime.datetime,
                       serial: int) -> tuple[str, str]:
    """(certificate PEM, key PEM) for CN=router1, issued by the testca's own CA key."""
    ca_key = serialization.load_pem_private_key((ca.directory / "ca-key.pem").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((ca.directory / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "router1")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def test_an_expired_certificate_is_not_sent_in_a_kur(fresh_agent, tmp_path):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    expired_at = now - datetime.timedelta(days=1)
    with run_testca(tmp_path / "ca") as ca, connect(fresh_agent) as m:
        cert_pem, key_pem = issued_by_testca(ca, now - datetime.timedelta(days=30), expired_at,
                                               0x1A2B)
        rpc(m, "key-pair-import", name="k1", private_key=key_pem)
        rpc(m, "certificate-import", name="old.pem", data=cert_pem)
        commit_pki(m, ENTITY + mac_session(
            "s1", ca, key="k1", extra="<authentication-cert>old.pem</authentication-cert>"))
        what = (f"authentication-cert old.pem (CN=router1, serial 1A2B) expired at"
                f" {yang_datetime(expired_at)}")
        remedy = "a new initial request is needed: cmp-initial-request (CLI: pki cmp initial-request session s1)"

        # the RPC: refused at once, nothing sent
        error = rpc_failure(m, "cmp-keyupdate-request", session_name="s1")
        assert what in error.message and remedy in error.message, error.message
        assert error.xml.findtext(f"{{{NC_NS}}}error-app-tag") == "precondition"
        assert counter(state(m), "s1", "p:messages-sent/p:kur") == 0

        # the CLI says the same
        done = subprocess.run(
            [*CMP_AGENT, "cli", "--port", str(fresh_agent.port), "--state-dir",
             str(fresh_agent.state_dir)],
            input="system-view\npki cmp keyupdate-request session s1\n", capture_output=True, text=True,
            cwd=ROOT, env={**os.environ, "CMP_AGENT_PASSWORD": fresh_agent.password}, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"Error: session s1: {what}" in done.stderr and remedy in done.stderr, done.stderr

        # automatic update: one failed cmp-session-result, last-request, one log line
        m.create_subscription()
        commit_pki(m, "<cmp-session><name>s1</name><auto-update><enabled>true</enabled>"
                      "</auto-update></cmp-session>")
        event = next_event(m, "cmp-session-result", time.monotonic() + 30)
        assert event is not None, "no cmp-session-result for the expired certificate"
        fields = {etree.QName(c).localname: c.text for c in event}
        assert (fields["request-type"], fields["trigger"], fields["result"]) == (
            "kur", "auto", "failure")
        assert what in fields["reason"] and remedy in fields["reason"]
        stats = state(m).xpath("//p:cmp-session[p:name='s1']/p:statistics", namespaces=NS)[0]
        last = {etree.QName(c).localname: c.text for c in stats.find("p:last-request", NS)}
        assert (last["type"], last["trigger"], last["result"]) == ("kur", "auto", "failure")
        assert last["reason"] == fields["reason"]
        assert stats.find("p:next-auto-update", NS) is None
        assert counter(state(m), "s1", "p:messages-sent/p:kur") == 0
        assert fresh_agent.log_text().count("automatic update stopped, no KUR sent") == 1

        # the way out: a new initial request (MAC), then the session updates it again
        assert out(rpc(m, "cmp-initial-request", session_name="s1"), "status") == "success"
        commit_pki(m, "<cmp-session><name>s1</name><authentication-cert>s1-local.pem"
                      "</authentication-cert></cmp-session>")
        assert state(m).xpath("string(//p:cmp-session[p:name='s1']/p:statistics/"
                              "p:next-auto-update)", namespaces=NS)
    assert fresh_agent.log_text().count("automatic update stopped, no KUR sent") == 1


def test_cmp_kur_with_an_expired_cert_warns_and_sends_like_openssl(tmp_path):
    """Like ``openssl cmp`` (which warns "has expired" and sends), the shell command sends
    it: it is how one checks that a CA refuses it. tools/testca does."""
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    with run_testca(tmp_path / "ca") as ca:
        cert_pem, key_pem = issued_by_testca(ca, now - datetime.timedelta(days=30),
                                               now - datetime.timedelta(days=1), 0x1A2B)
        (tmp_path / "old.pem").write_text(cert_pem)
        (tmp_path / "old.key").write_text(key_pem)
        done = subprocess.run(
            [*CMP_AGENT, "cmp", "kur", "--server", ca.url, "--cert", str(tmp_path / "old.pem"),
             "--key", str(tmp_path / "old.key"), "--newkey", str(tmp_path / "old.key"),
             "--trusted", str(ca.directory / "ca.pem"), "--certout", str(tmp_path / "new.pem")],
            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    expired_at = yang_datetime(now - datetime.timedelta(days=1))
    assert (f"cmp-agent cmp: warning: --cert {tmp_path / 'old.pem'} (CN=router1, serial 1A2B)"
            f" expired at {expired_at}; a conforming CA refuses a request signed with it"
            in done.stderr), done.stderr
    assert "the signer's certificate is not valid now" in done.stderr  # the CA's answer
    assert not (tmp_path / "new.pem").exists()


class FakeClock:
    """The agent's time, set by the test (agent.clock.Clock); counts the scheduler's looks."""

    def __init__(self, moment: datetime.datetime):
        self.moment = moment
        self.looks = 0

    def now(self) -> datetime.datetime:
        self.looks += 1
        return self.moment

    def real_seconds(self, seconds: float) -> float:
        return seconds


class UpdaterRig:
    """An agent's PKI service on a :class:`FakeClock`, with session s1 of *ca* (MAC, key k1),
    for the real scheduler loop; what it notifies and the results it reports."""

    def __init__(self, model, tmp_path: Path, ca):
        self.datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
        self.commit(ENTITY + mac_session("s1", ca, key="k1"))
        self.clock = FakeClock(datetime.datetime.now(UTC))
        self.events: list[etree._Element] = []
        self.service = PkiService(self.datastores, tmp_path, self.datastores.secrets,
                                  clock=self.clock, notify=self.events.append)
        self.results: list = []
        self.service.on_result.append(self.results.append)

    def commit(self, inner: str) -> None:
        self.datastores.edit_config("candidate", etree.fromstring(
            f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">{inner}</pki></config>'))
        self.datastores.commit()

    async def ticks(self, count: int) -> None:
        """Let the scheduler look at the clock *count* more times."""
        wanted = self.clock.looks + count
        while self.clock.looks < wanted:
            await asyncio.sleep(0.01)

    @staticmethod
    async def until(predicate) -> None:
        for _ in range(3000):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the scheduler did not get there")


@pytest.fixture(scope="module")
def model():
    return Model.load()


def test_the_updater_kurs_at_not_after_exactly_and_stops_once_after_it(model, tmp_path, caplog):
    """A fake clock drives the real scheduler loop against tools/testca: at notAfter the
    certificate still signs a KUR (RFC 5280 4.1.2.5, inclusive); one second later the
    updater sends nothing, says so once, however many ticks pass, and the manual KUR is
    refused; a new certificate is planned again."""
    with run_testca(tmp_path / "ca", "--validity", "3600") as ca:
        rig = UpdaterRig(model, tmp_path, ca)
        commit, clock, events, service, results = (rig.commit, rig.clock, rig.events,
                                                   rig.service, rig.results)
        ticks, until = rig.ticks, rig.until

        def results_told() -> list[etree._Element]:
            return [e for e in events if etree.QName(e).localname == "cmp-session-result"]

        async def scenario():
            updater = AutoUpdater(service, tick=0.01, pacing=UpdatePacing(jitter=datetime.timedelta(0)))
            updater.start()
            try:
                first = await service.request("s1", "ir")
                assert first.status == "success", first.status_text
                commit("<cmp-session><name>s1</name><authentication-cert>s1-local.pem"
                       "</authentication-cert><auto-update><enabled>true</enabled>"
                       "<expire-time>100</expire-time></auto-update></cmp-session>")
                service.config()
                # expire-time 100: the margin before notAfter (the certificate must still sign)
                assert service.stats_for("s1").next_auto_update == first.not_after - UPDATE_MARGIN

                # at notAfter exactly: still valid, the KUR goes out and renews
                clock.moment = first.not_after
                await until(lambda: results[1:])
                renewed = results[1]
                assert (renewed.kind, renewed.trigger, renewed.status) == ("kur", "auto", "success")
                assert renewed.serial != first.serial
                assert service.stats_for("s1").sent["kur"] == 1
                # it ends within the margin of the clock (the CA dates by its real clock):
                # already due, and not renewed again at once
                await ticks(50)
                assert service.stats_for("s1").sent["kur"] == 1

                # a second past the new certificate's notAfter: nothing sent, told once
                clock.moment = renewed.not_after + datetime.timedelta(seconds=1)
                await until(lambda: len(results_told()) == 3)
                for hours in range(1, 25):  # a day of ticks
                    clock.moment = renewed.not_after + datetime.timedelta(hours=hours)
                    await ticks(5)
                return renewed
            finally:
                await updater.stop()

        with caplog.at_level(logging.INFO, logger="agent.pki"):
            renewed = asyncio.run(scenario())

        assert len(results) == 2 and service.stats_for("s1").sent["kur"] == 1
        fields = [{etree.QName(c).localname: c.text for c in event} for event in results_told()]
        assert [(f["request-type"], f["result"]) for f in fields] == [
            ("ir", "success"), ("kur", "success"), ("kur", "failure")]
        what = (f"authentication-cert s1-local.pem (CN=router1,O=Example,C=CN, serial"
                f" {renewed.serial}) expired at {yang_datetime(renewed.not_after)}")
        assert what in fields[2]["reason"] and "cmp-initial-request" in fields[2]["reason"]
        stopped = [r for r in caplog.records if "no KUR sent" in r.getMessage()]
        assert len(stopped) == 1 and stopped[0].levelno == logging.ERROR
        assert what in stopped[0].getMessage()
        assert len([r for r in caplog.records if "reached its update time" in r.getMessage()]) == 1
        last = service.stats_for("s1").last_request
        assert (last.type, last.trigger, last.result, last.reason) == (
            "kur", "auto", "failure", fields[2]["reason"])
        assert service.stats_for("s1").next_auto_update is None

        # the manual KUR: refused before anything is sent
        with pytest.raises(RpcError) as refused:
            asyncio.run(service.request("s1", "kur"))
        assert refused.value.tag == "operation-failed" and refused.value.app_tag == "precondition"
        assert what in refused.value.message
        assert service.stats_for("s1").sent["kur"] == 1


def test_a_renewal_that_brings_a_certificate_already_due_is_not_repeated_at_once(
        model, tmp_path, caplog):
    """A CA that caps validity at its own notAfter issues a renewed certificate ending when
    the old one did, already past its update time: the updater does not renew it again at
    once (it would until it expires), but says so once and waits the back-off; the last
    tries come before the margin ahead of notAfter. A fake clock drives the real scheduler
    against tools/testca; the cap makes every certificate end at the same second."""
    cap = datetime.datetime.now(UTC).replace(microsecond=0) + datetime.timedelta(minutes=10)
    with run_testca(tmp_path / "ca", "--validity", "3600",
                    "--not-after-cap", cap.isoformat()) as ca:
        rig = UpdaterRig(model, tmp_path, ca)
        commit, clock, events, service, results = (rig.commit, rig.clock, rig.events,
                                                   rig.service, rig.results)
        ticks, until = rig.ticks, rig.until
        kurs = lambda: service.stats_for("s1").sent["kur"]  # noqa: E731

        async def scenario():
            updater = AutoUpdater(service, tick=0.01, backoff=Backoff(
                initial=datetime.timedelta(seconds=5)),
                pacing=UpdatePacing(jitter=datetime.timedelta(0)))
            updater.start()
            try:
                first = await service.request("s1", "ir")
                assert first.status == "success" and first.not_after == cap, first
                commit("<cmp-session><name>s1</name><authentication-cert>s1-local.pem"
                       "</authentication-cert><auto-update><enabled>true</enabled>"
                       "<expire-time>90</expire-time></auto-update></cmp-session>")
                service.config()
                # 30 s before the cap: past the update time of any certificate the CA issues
                clock.moment = cap - datetime.timedelta(seconds=30)
                await until(lambda: results[1:])
                assert (results[1].kind, results[1].status, results[1].not_after) == (
                    "kur", "success", cap)
                await ticks(50)  # the same clock: no second KUR
                assert kurs() == 1 and len(results) == 2
                stats = service.stats_for("s1")
                assert stats.next_auto_update == clock.moment + datetime.timedelta(seconds=5)
                assert "does not outlive" in stats.last_request.reason

                clock.moment += datetime.timedelta(seconds=5)  # the back-off has passed: once more
                await until(lambda: results[2:])
                assert (results[2].kind, results[2].status) == ("kur", "success")
                await ticks(50)
                assert kurs() == 2 and len(results) == 3
                assert stats.next_auto_update == clock.moment + datetime.timedelta(seconds=10)

                # past the margin before notAfter: the last try was at it, none after it
                clock.moment = cap - UPDATE_MARGIN
                await until(lambda: results[3:])
                await ticks(50)
                assert kurs() == 3 and stats.next_auto_update is None
                clock.moment = cap - datetime.timedelta(seconds=1)
                await ticks(50)
                assert kurs() == 3
                clock.moment = cap + datetime.timedelta(seconds=1)  # expired: said once
                await until(lambda: any(e.findtext(f"{{{PKI_NS}}}result") == "failure"
                                        for e in events))
                await ticks(50)
            finally:
                await updater.stop()

        with caplog.at_level(logging.INFO, logger="agent.pki"):
            asyncio.run(scenario())

    assert service.stats_for("s1").sent["kur"] == 3 and len(results) == 4
    names = [etree.QName(e).localname for e in events]
    assert names.count("local-certificate-nearly-expired") == 1, names
    assert names.count("cmp-session-result") == 5, names  # ir, 3 kur, the expiry
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "not renewed again at once" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert (f"valid until {yang_datetime(cap)}, which does not outlive the certificate it"
            f" replaces (valid until {yang_datetime(cap)})") in warnings[0]
    assert "next try at" in warnings[0]
    assert len([r for r in caplog.records if "no KUR sent" in r.getMessage()]) == 1
