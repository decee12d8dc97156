"""A CA cannot hold the agent hostage (issue 9 section 4), and long polling (RFC 4210
5.3.22) goes on in the background, through NETCONF against real peers.

The slow CA is an HTTP server that answers ``200, Content-Length: 100000`` and then
one byte per second; the polling CA is OpenSSL's mock server (``-poll_count``,
``-check_after``).
"""

from __future__ import annotations

import asyncio
import threading
import time

from lxml import etree

from agent.cmp.messages import decode_message
from agent.datastore import Datastores, SecretBox
from agent.model import Model
from agent.netconf.errors import RpcError
from agent.pki.service import PkiService

from cmp_mock_pki import REFERENCE, SECRET, MockCmpServer
from http_proxy import CmpHttpProxy
from test_auto_update import next_event

from nc_helpers import connect
from pki_helpers import (ENTITY, NC_NS, NS, PKI_NS, WEAK_FOR_THE_MOCK, commit_pki, mac_session,
                         out, rpc, state)
from test_openssl_mock import pem
from testca_process import run_testca

SLOW = 4  # as many slow CAs as the old shared worker pool had threads


def mock_session(name: str, url: str, extra: str = "") -> str:
    return (f"<cmp-session><name>{name}</name><entity>m</entity>"
            "<ca-name>/C=DE/O=Test/CN=Test CMP Server</ca-name>"
            f"<server-url><url>{url}</url></server-url>"
            "<local-key-pair><name>dev-key</name></local-key-pair>"
            f"<message-authentication-code><reference-value>{REFERENCE}</reference-value>"
            f"<secret-value>{SECRET}</secret-value></message-authentication-code>"
            f"{extra}</cmp-session>")


def configure_mock_session(m, mock_pki, mock) -> None:
    """Session p1 to *mock*, with the key the mock's certificate is for."""
    rpc(m, "key-pair-import", name="dev-key", private_key=pem(mock_pki.new_key))
    commit_pki(m, WEAK_FOR_THE_MOCK + "<entity><name>m</name><common-name>router1.example.net"
                  "</common-name></entity>" + mock_session("p1", mock.url))


def last_request(m, session: str) -> dict[str, str]:
    found = state(m).xpath(f"p:cmp-session[p:name='{session}']/p:statistics/p:last-request",
                           namespaces=NS)
    return {child.tag.split("}")[1]: child.text for child in found[0]} if found else {}


def session_result(m, session: str, trigger: str) -> etree._Element:
    """The next cmp-session-result of *session* started by *trigger* (others skipped)."""
    deadline = time.monotonic() + 60
    while True:
        event = next_event(m, "cmp-session-result", deadline)
        assert event is not None, f"no cmp-session-result of {session} ({trigger})"
        if (event.findtext(f"{{{NS['p']}}}session"), event.findtext(f"{{{NS['p']}}}trigger")) \
                == (session, trigger):
            return event


def test_slow_cas_delay_no_other_session_and_sigterm_stops_the_agent(start_agent, tmp_path):
    """Four CAs trickling their answers hold four transactions; an IR on a healthy session
    and its automatic update (a 10 s certificate, renewed at 50 %) go through meanwhile."""
    agent = start_agent("--cmp-reply-wait", "1")
    slow = [CmpHttpProxy(None, content_length=100_000, trickle=1.0) for _ in range(SLOW)]
    try:
        with run_testca(tmp_path / "ca", "--validity", "10") as ca, connect(agent) as m:
            commit_pki(m, ENTITY + mac_session("healthy", ca, key="k-ok") + "".join(
                mac_session(f"slow{i}", ca, key=f"k{i}").replace(ca.url, proxy.url)
                for i, proxy in enumerate(slow)))
            for i in range(SLOW):
                reply = rpc(m, "cmp-initial-request", session_name=f"slow{i}")
                assert out(reply, "status") == "waiting", out(reply, "status-text")
            assert all(proxy.requests == 1 for proxy in slow)
            # every slow CA is holding its transaction; a healthy one is served all the same
            m.create_subscription()
            reply = rpc(m, "cmp-initial-request", session_name="healthy")
            if out(reply, "status") == "waiting":  # a loaded machine: over a second
                event = session_result(m, "healthy", "manual")
                assert event.findtext(f"{{{NS['p']}}}result") == "success"
            else:
                assert out(reply, "status") == "success", out(reply, "status-text")
            commit_pki(m, "<cmp-session><name>healthy</name>"
                          "<authentication-cert>healthy-local.pem</authentication-cert>"
                          "<auto-update><enabled>true</enabled></auto-update></cmp-session>")
            renewed = session_result(m, "healthy", "auto")
            assert renewed.findtext(f"{{{NS['p']}}}result") == "success"
            assert all(last_request(m, f"slow{i}")["result"] == "waiting" for i in range(SLOW))
        agent.process.terminate()
        agent.process.wait(timeout=10)  # a hang guard; the agent ends its transactions first
        assert agent.process.returncode == 0
        assert "shutting down" in agent.log_text()
    finally:
        for proxy in slow:
            proxy.stop()


def test_long_polling_in_the_background_over_netconf(start_agent, mock_pki):
    """The CA says waiting; the RPC answers ``waiting``, <get> shows the next poll time,
    and the cmp-session-result notification brings the certificate."""
    agent = start_agent("--cmp-reply-wait", "1")
    mock = MockCmpServer(mock_pki, "-poll_count", "2", "-check_after", "3")
    try:
        with connect(agent) as m:
            configure_mock_session(m, mock_pki, mock)
            m.create_subscription()
            reply = rpc(m, "cmp-initial-request", session_name="p1")
            assert out(reply, "status") == "waiting", out(reply, "status-text")
            progress = last_request(m, "p1")
            assert progress["result"] == "waiting"
            assert progress["next-poll-time"] >= progress["start-time"]
            event = next_event(m, "cmp-session-result", time.monotonic() + 30)
            assert event is not None, "no cmp-session-result"
            assert event.findtext(f"{{{NS['p']}}}result") == "success"
            done = last_request(m, "p1")
            assert done["result"] == "success" and "next-poll-time" not in done
            tree = state(m)
            polls = tree.xpath("string(p:cmp-session[p:name='p1']/p:statistics/"
                               "p:messages-sent/p:poll-req)", namespaces=NS)
            assert polls == "2"
    finally:
        mock.stop()


def test_what_the_ca_says_while_polling_is_shown(start_agent, tmp_path):
    """RFC 4210 5.3.22: what the CA writes with "waiting" (tools/testca --poll-reason: the
    statusString of its ip, the reason of each pollRep) is last-request/reason while the
    result is waiting, escaped as the CA's texts are; the agent's log says it at the first
    poll and when it changes, not at every poll (a CA may be polled every second for hours).
    A genm that the CA answers with "waiting" (an error message, RFC 9483 4.4) the same."""
    agent = start_agent("--cmp-reply-wait", "0.5")
    says = "the CA says 'queued \\x07 for the RA'"
    with run_testca(tmp_path / "ca", "--poll", "3", "--check-after", "2",
                    "--poll-reason", "queued \x07 for the RA") as ca, connect(agent) as m:
        commit_pki(m, ENTITY + mac_session("s1", ca))
        m.create_subscription()
        assert out(rpc(m, "cmp-initial-request", session_name="s1"), "status") == "waiting"
        progress = last_request(m, "s1")
        while progress.get("result") == "waiting" and "reason" not in progress:
            time.sleep(0.1)
            progress = last_request(m, "s1")
        assert (progress["result"], progress.get("reason")) == ("waiting", says), progress
        event = next_event(m, "cmp-session-result", time.monotonic() + 30)
        assert event is not None and event.findtext(f"{{{NS['p']}}}result") == "success"
        done = last_request(m, "s1")
        assert done["result"] == "success" and "reason" not in done, done
        assert counter_of(m, "s1", "messages-received/p:poll-rep") == 2

        reply = rpc(m, "cmp-general-request", session_name="s1", info_type="ca-certs")
        assert out(reply, "status") == "success", out(reply, "status-text")
        done = last_request(m, "s1")
        assert (done["type"], done["result"]) == ("genm", "success") and "reason" not in done, done
        assert "next-poll-time" not in done
        assert counter_of(m, "s1", "messages-received/p:poll-rep") == 4
    logged = [line for line in agent.log_text().splitlines() if says in line]
    assert len(logged) == 2, agent.log_text()  # one for each request, at its first poll
    for kind, line in zip(("ir", "genm"), logged):
        assert f"session s1: {kind}: the CA answered waiting: next pollReq in 1s, at " in line
    assert "\x07" not in agent.log_text()


def test_the_rpcs_waiting_answer_says_what_the_ca_wrote(start_agent, tmp_path):
    """The CA answers "waiting" and its next poll is an hour away, beyond the reply wait:
    the RPC answers ``waiting`` then (not at the end of the wait), with the CA's text
    (a pollRep's reason, RFC 4210 5.3.22) in status-text, escaped as the CA's texts are."""
    # (a wait that ncclient's 30 s outlast: before, the RPC answered at its end, without the text)
    agent = start_agent("--cmp-reply-wait", "20")
    with run_testca(tmp_path / "ca", "--poll", "2", "--check-after", "3600",
                    "--poll-reason", "queued <\x07> for the RA") as ca, connect(agent) as m:
        commit_pki(m, ENTITY + mac_session("s1", ca))
        reply = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(reply, "status") == "waiting"
        assert out(reply, "status-text") == (
            "the CA answered waiting; the CA says 'queued <\\x07> for the RA'; the result"
            " comes as a cmp-session-result notification")
        assert last_request(m, "s1")["result"] == "waiting"


def counter_of(m, session: str, path: str) -> int:
    return int(state(m).xpath(f"string(p:cmp-session[p:name='{session}']/p:statistics/p:{path})",
                              namespaces=NS))


def test_sigterm_while_polling_tells_the_ca(start_agent, mock_pki):
    """A transaction waiting an hour for its next poll: SIGTERM ends it, the CA gets an
    error message (RFC 4210 5.3.21), and the agent exits."""
    agent = start_agent("--cmp-reply-wait", "1")
    mock = MockCmpServer(mock_pki, "-poll_count", "3", "-check_after", "3600")
    try:
        with connect(agent) as m:
            configure_mock_session(m, mock_pki, mock)
            assert out(rpc(m, "cmp-initial-request", session_name="p1"), "status") == "waiting"
            for _ in range(100):
                if last_request(m, "p1").get("next-poll-time", "") > "":
                    polled = sum("Received request" in line for line in mock.output)
                    if polled >= 2:  # ir and the first pollReq: the hour has begun
                        break
                threading.Event().wait(0.1)
        agent.process.terminate()
        agent.process.wait(timeout=10)
        assert agent.process.returncode == 0
        for _ in range(50):
            if "systemUnavail" in "".join(mock.output):
                break
            threading.Event().wait(0.1)
        log = "".join(mock.output)
        assert "mock server received error" in log and "systemUnavail" in log
    finally:
        mock.stop()


def test_shutdown_ends_a_revocation_and_a_general_message_waiting_on_a_slow_ca(mock_pki, tmp_path):
    """An rr and a genm whose CAs trickle their answers are ended by the service's close()
    (agent shutdown) as an ir is: each CA is told by an error message (RFC 4210 5.3.21) and
    each request ends ``cancelled``, not at its message timeout."""
    slow = {kind: CmpHttpProxy(None, content_length=100_000, trickle=1.0) for kind in ("rr", "genm")}
    try:
        datastores = Datastores(Model.load(), tmp_path, SecretBox.open(tmp_path))
        service = PkiService(datastores, tmp_path, datastores.secrets)
        service.certs.save("client.pem", mock_pki.client, "pem")
        service.keys.save("client-key", mock_pki.client_key)
        sessions = "".join(
            mock_session(kind, proxy.url, "<timeouts><message-timeout>20</message-timeout></timeouts>")
            .replace("<entity>m</entity>", "").replace("dev-key", "client-key")
            for kind, proxy in slow.items())
        datastores.edit_config("candidate", etree.fromstring(
            f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">{WEAK_FOR_THE_MOCK}{sessions}'
            "</pki></config>"))
        datastores.commit()

        async def scenario() -> list:
            requests = [asyncio.ensure_future(service.revoke("rr", "client.pem", "superseded")),
                        asyncio.ensure_future(service.general("genm", "ca-certs"))]
            while not all(proxy.requests for proxy in slow.values()):  # both CAs are answering
                await asyncio.sleep(0.05)
            await service.close()
            return await asyncio.gather(*requests, return_exceptions=True)

        for kind, outcome in zip(slow, asyncio.run(scenario())):
            assert isinstance(outcome, RpcError), (kind, outcome)
            assert outcome.app_tag == "cmp-cancelled", (kind, outcome.message)
            assert service.stats_for(kind).last_request.result == "failure"
            assert [decode_message(body).body_type for body in slow[kind].received] == [
                kind, "error"], kind
    finally:
        for proxy in slow.values():
            proxy.stop()
