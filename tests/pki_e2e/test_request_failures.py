"""A failed request is an rpc-error on every client: netconf-console2 exits non-zero.

(ncclient raising RPCError is in test_seed_procedure.py and test_openssl_mock.py,
Ansible's netconf_rpc failing the task in tests/ansible, ``cmp-agent cli`` in
tests/opcli, scrapli-netconf in test_scrapli.py.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

from lxml import etree
from nc_helpers import connect
from pki_helpers import (
    ENTITY, NC_NS, PKI_NS, commit_pki, error_info, mac_session, rpc_failure, state,
)
from testca_process import run_testca

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / ".venv" / "bin" / "netconf-console2"
REQUEST = ROOT / "tools" / "examples" / "initial-request.xml"  # the walk-through's, session s1
NS = {"nc": NC_NS, "p": PKI_NS}


def console(agent, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        # -r: ncclient's 30 s reply timeout is too short for a loaded CI machine
        [str(CONSOLE), "--host", "127.0.0.1", "--port", str(agent.port), "-u", "admin",
         "-p", agent.password, "-r", "110", *args],
        capture_output=True, text=True, timeout=120)


def test_netconf_console_exits_non_zero_with_the_cas_answer(fresh_agent, tmp_path):
    with run_testca(tmp_path / "ca", "--reject", "quota exceeded") as refusing:
        with connect(fresh_agent) as m:
            commit_pki(m, ENTITY + mac_session("s1", refusing))
        refused = console(fresh_agent, "--rpc", str(REQUEST))
    assert refused.returncode != 0, refused.stdout
    assert refused.stdout.strip(), refused.stderr
    error = etree.fromstring(refused.stdout.encode())  # netconf-console2 prints the rpc-error
    assert error.findtext("nc:error-tag", namespaces=NS) == "operation-failed"
    assert error.findtext("nc:error-app-tag", namespaces=NS) == "cmp-rejected"
    info = {leaf: error.xpath(f"nc:error-info/p:{leaf}/text()", namespaces=NS)
            for leaf in ("session-name", "request-type", "pki-status", "failure-info", "ca-text")}
    assert info == {"session-name": ["s1"], "request-type": ["ir"], "pki-status": ["rejection"],
                    "failure-info": ["badRequest"], "ca-text": ["quota exceeded"]}

    # the CA is gone: a transport failure, also loud
    unreachable = console(fresh_agent, "--rpc", str(REQUEST))
    assert unreachable.returncode != 0, unreachable.stdout
    assert "<error-app-tag>cmp-transport</error-app-tag>" in unreachable.stdout


def test_netconf_console_exits_non_zero_when_the_session_is_incomplete(fresh_agent):
    with connect(fresh_agent) as m:
        commit_pki(m, "<cmp-session><name>s1</name></cmp-session>")
    refused = console(fresh_agent, "--rpc", str(REQUEST))
    assert refused.returncode != 0, refused.stdout
    assert "<error-app-tag>precondition</error-app-tag>" in refused.stdout
    assert "session s1: no server-url" in refused.stdout


def test_a_wrong_mac_secret_is_named_as_the_cause(fresh_agent, tmp_path):
    with run_testca(tmp_path / "ca") as ca:
        wrong = SimpleNamespace(url=ca.url, ref=ca.ref, secret="not-the-secret")
        with connect(fresh_agent) as m:
            commit_pki(m, ENTITY + mac_session("s1", wrong))
            refused = rpc_failure(m, "cmp-initial-request", session_name="s1")
    assert refused.app_tag == "cmp-rejected"
    assert error_info(refused, "failure-info") == ["badMessageCheck"]
    assert "check message-authentication-code (reference-value, secret-value)" in refused.message
    assert "not-the-secret" not in refused.message


def test_control_characters_in_the_cas_text_are_shown_escaped(fresh_agent, tmp_path):
    """statusString is any UTF8String (RFC 4210 5.2.3), but XML 1.0 cannot carry control
    characters: the rpc-error and statistics/last-request show them escaped, instead of
    the reply failing to serialise (an internal error) and every <get> of /pki after it
    (a forged, unprotected error message is enough to put such text there)."""
    with run_testca(tmp_path / "ca", "--reject", "quota\x01exceeded\x1b[0m") as refusing:
        with connect(fresh_agent) as m:
            commit_pki(m, ENTITY + mac_session("s1", refusing))
            refused = rpc_failure(m, "cmp-initial-request", session_name="s1")
            reason = state(m).xpath("string(p:cmp-session[p:name='s1']/p:statistics/"
                                    "p:last-request/p:reason)", namespaces=NS)
    assert refused.app_tag == "cmp-rejected", refused.message
    assert error_info(refused, "ca-text") == ["quota\\x01exceeded\\x1b[0m"]
    assert "text='quota\\x01exceeded\\x1b[0m'" in refused.message
    assert "text='quota\\x01exceeded\\x1b[0m'" in reason


def test_credentials_in_the_server_url_are_refused_not_logged(fresh_agent, tmp_path):
    """user:password@ in server-url was dropped unseen (never sent) and the URL logged with
    it at each request; RFC 9110 4.2.4 says to treat userinfo in an http(s) URI as an
    error. The refusal does not repeat it."""
    with run_testca(tmp_path / "ca") as ca:
        with_password = SimpleNamespace(url=ca.url.replace("://", "://operator:pw-in-url-77@"),
                                        ref=ca.ref, secret=ca.secret)
        with connect(fresh_agent) as m:
            commit_pki(m, ENTITY + mac_session("s1", with_password))
            refused = rpc_failure(m, "cmp-initial-request", session_name="s1")
    assert "user information" in refused.message
    assert "pw-in-url" not in refused.message
    assert "pw-in-url" not in (fresh_agent.state_dir / "agent.log").read_text()
