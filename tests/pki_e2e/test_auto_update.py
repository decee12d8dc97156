"""Seed step 12, automatic update: a certificate that lives 20 seconds is renewed at
50 % of its validity, with and without a new key, observed through state and
notifications."""

from __future__ import annotations

import time

from cryptography import x509
from lxml import etree

from nc_helpers import connect
from pki_helpers import ENTITY, NS, PKI_NS, commit_pki, mac_session, next_event, out, rpc, state
from testca_process import run_testca


def test_certificates_are_renewed_at_the_configured_percentage(fresh_agent, tmp_path):
    public = fresh_agent.state_dir / "pki" / "public"
    private = fresh_agent.state_dir / "pki" / "private"
    with run_testca(tmp_path / "ca", "--validity", "20") as ca, connect(fresh_agent) as m:
        commit_pki(m, ENTITY + mac_session("keep", ca, key="k-keep")
                   + mac_session("fresh", ca, key="k-fresh",
                                 extra="<local-key-pair><regenerate>true</regenerate></local-key-pair>"))
        first = {}
        for name in ("keep", "fresh"):
            reply = rpc(m, "cmp-initial-request", session_name=name)
            assert out(reply, "status") == "success", out(reply, "status-text")
            first[name] = x509.load_pem_x509_certificate((public / f"{name}-local.pem").read_bytes())
        keys_before = {n: (private / f"k-{n}.pem").read_bytes() for n in ("keep", "fresh")}

        m.create_subscription()
        commit_pki(m, "".join(
            f"<cmp-session><name>{n}</name><authentication-cert>{n}-local.pem</authentication-cert>"
            "<auto-update><enabled>true</enabled><expire-time>50</expire-time></auto-update>"
            "</cmp-session>" for n in ("keep", "fresh")))

        tree = state(m)
        entries = tree.findall("p:cmp-session", NS)
        assert [e.findtext("p:name", namespaces=NS) for e in entries] == ["keep", "fresh"]
        assert [len(e.findall("p:statistics", NS)) for e in entries] == [1, 1]
        for name in ("keep", "fresh"):
            scheduled = tree.xpath(f"string(//p:cmp-session[p:name='{name}']/p:statistics/"
                                   "p:next-auto-update)", namespaces=NS)
            assert scheduled, f"no next-auto-update for {name}"

        renewed = {}
        deadline = time.monotonic() + 60
        while len(renewed) < 2:
            event = next_event(m, "cmp-session-result", deadline)
            assert event is not None, f"no automatic update within 60 s (got {sorted(renewed)})"
            fields = {etree.QName(c).localname: c.text for c in event}
            assert fields["trigger"] == "auto" and fields["request-type"] == "kur"
            assert fields["result"] == "success", fields.get("reason")
            renewed.setdefault(fields["session"], fields["certificate-file"])

        for name in ("keep", "fresh"):
            assert renewed[name] == f"{name}-local.pem"
            new = x509.load_pem_x509_certificate((public / f"{name}-local.pem").read_bytes())
            assert new.serial_number != first[name].serial_number
            assert (public / f"{name}-local.pem.previous").exists()
        keep_new = x509.load_pem_x509_certificate((public / "keep-local.pem").read_bytes())
        fresh_new = x509.load_pem_x509_certificate((public / "fresh-local.pem").read_bytes())
        assert keep_new.public_key() == first["keep"].public_key()
        assert (private / "k-keep.pem").read_bytes() == keys_before["keep"]
        assert fresh_new.public_key() != first["fresh"].public_key()
        assert (private / "k-fresh.pem").read_bytes() != keys_before["fresh"]
        assert (private / "k-fresh.previous.pem").read_bytes() == keys_before["fresh"]

        tree = state(m)
        for name in ("keep", "fresh"):
            stats = f"//p:cmp-session[p:name='{name}']/p:statistics"
            assert tree.xpath(f"string({stats}/p:last-request/p:trigger)", namespaces=NS) == "auto"
            assert int(tree.xpath(f"string({stats}/p:messages-sent/p:kur)", namespaces=NS)) >= 1
            assert tree.xpath(f"string({stats}/p:next-auto-update)", namespaces=NS)


def test_a_failed_automatic_update_keeps_the_working_pair_and_warns(fresh_agent, tmp_path):
    public = fresh_agent.state_dir / "pki" / "public"
    with connect(fresh_agent) as m:
        with run_testca(tmp_path / "ca", "--validity", "20") as ca:
            commit_pki(m, ENTITY + mac_session("s1", ca, key="k1"))
            assert out(rpc(m, "cmp-initial-request", session_name="s1"), "status") == "success"
        working = (public / "s1-local.pem").read_bytes()
        m.create_subscription()
        # the CA is down from now on
        commit_pki(m, "<cmp-session><name>s1</name><authentication-cert>s1-local.pem"
                      "</authentication-cert><auto-update><enabled>true</enabled>"
                      "<expire-time>10</expire-time></auto-update></cmp-session>")
        deadline = time.monotonic() + 40
        result = next_event(m, "cmp-session-result", deadline)
        assert result is not None
        fields = {etree.QName(c).localname: c.text for c in result}
        assert (fields["trigger"], fields["result"]) == ("auto", "failure")
        assert "transport" in fields["reason"]
        warning = next_event(m, "local-certificate-nearly-expired", deadline)
        assert warning is not None
        assert warning.findtext(f"{{{PKI_NS}}}certificate-file") == "s1-local.pem"
        assert (public / "s1-local.pem").read_bytes() == working
        tree = state(m)
        assert int(tree.xpath("string(//p:cmp-session[p:name='s1']/p:statistics/p:failures/"
                              "p:transport)", namespaces=NS)) >= 1


def test_a_slow_ca_answers_waiting_and_reports_by_notification(start_agent, tmp_path):
    """A CA that polls past the RPC's patience: the reply says ``waiting``, the
    transaction goes on in the background and ends in a notification."""
    agent = start_agent("--cmp-reply-wait", "0.5")
    with run_testca(tmp_path / "ca", "--poll", "3") as ca, connect(agent) as m:
        commit_pki(m, ENTITY + mac_session("s1", ca))
        m.create_subscription()
        reply = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(reply, "status") == "waiting"
        assert "notification" in out(reply, "status-text")
        event = next_event(m, "cmp-session-result", time.monotonic() + 30)
        assert event is not None
        fields = {etree.QName(c).localname: c.text for c in event}
        assert (fields["result"], fields["certificate-file"]) == ("success", "s1-local.pem")
        tree = state(m)
        stats = "//p:cmp-session[p:name='s1']/p:statistics"
        assert int(tree.xpath(f"string({stats}/p:messages-received/p:poll-rep)",
                              namespaces=NS)) == 2
        assert int(tree.xpath(f"string({stats}/p:outcomes/p:waiting)", namespaces=NS)) == 1
        assert int(tree.xpath(f"string({stats}/p:outcomes/p:accepted)", namespaces=NS)) == 1


def test_the_schedule_survives_a_restart(fresh_agent, tmp_path):
    with run_testca(tmp_path / "ca", "--validity", "3600") as ca:
        with connect(fresh_agent) as m:
            commit_pki(m, ENTITY + mac_session("s1", ca))
            assert out(rpc(m, "cmp-initial-request", session_name="s1"), "status") == "success"
            commit_pki(m, "<cmp-session><name>s1</name><authentication-cert>s1-local.pem"
                          "</authentication-cert><auto-update><enabled>true</enabled>"
                          "<expire-time>80</expire-time></auto-update></cmp-session>")
            before = state(m).xpath("string(//p:statistics/p:next-auto-update)", namespaces=NS)
        fresh_agent.restart()
        with connect(fresh_agent) as m:
            after = state(m).xpath("string(//p:statistics/p:next-auto-update)", namespaces=NS)
    assert before and after == before
