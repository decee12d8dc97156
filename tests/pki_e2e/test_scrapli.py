"""scrapli-netconf, the network-automation teams' client, runs the walk-through's steps
over OpenSSH's ssh (its default "system" transport): <get>, edit-config of the
candidate and commit, a request RPC that succeeds and one that fails."""

from __future__ import annotations

import pytest
from lxml import etree
from pki_helpers import ENTITY, NC_NS, PKI_NS, mac_session
from scrapli_netconf.driver import NetconfDriver
from testca_process import run_testca

NS = {"nc": NC_NS, "p": PKI_NS}


@pytest.fixture
def scrapli(fresh_agent, tmp_path):
    conn = NetconfDriver(host="127.0.0.1", port=fresh_agent.port, auth_username="admin",
                         auth_password=fresh_agent.password, auth_strict_key=False,
                         ssh_config_file=False, ssh_known_hosts_file=str(tmp_path / "known_hosts"),
                         timeout_socket=30, timeout_transport=60, timeout_ops=120)
    conn.open()
    yield conn
    conn.close()


def request(name: str, session: str) -> str:
    return f'<{name} xmlns="{PKI_NS}"><session-name>{session}</session-name></{name}>'


def test_get_edit_commit_and_requests(scrapli, fresh_agent, tmp_path):
    hello = scrapli.get(filter_='<netconf-state xmlns="urn:ietf:params:xml:ns:yang:'
                                'ietf-netconf-monitoring"><sessions/></netconf-state>')
    assert not hello.failed, hello.result
    assert "<username>admin</username>" in hello.result

    with run_testca(tmp_path / "ca") as ca:
        config = (f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">'
                  f'{ENTITY}{mac_session("s1", ca)}</pki></config>')
        edited = scrapli.edit_config(config=config, target="candidate")
        assert not edited.failed, edited.result
        committed = scrapli.commit()
        assert not committed.failed, committed.result

        enrolled = scrapli.rpc(filter_=request("cmp-initial-request", "s1"))
        assert not enrolled.failed, enrolled.result
        reply = etree.fromstring(enrolled.result.encode())
        assert reply.findtext(".//p:status", namespaces=NS) == "success"
        assert reply.findtext(".//p:certificate-file", namespaces=NS) == "s1-local.pem"

    # the CA is gone: the failure is an rpc-error, which scrapli marks as failed
    refused = scrapli.rpc(filter_=request("cmp-initial-request", "s1"))
    assert refused.failed
    error = etree.fromstring(refused.result.encode())
    assert error.findtext(".//nc:error-app-tag", namespaces=NS) == "cmp-transport"

    files = scrapli.get(filter_=f'<pki xmlns="{PKI_NS}"><certificate-file><name/>'
                                '</certificate-file></pki>')
    assert "<name>s1-local.pem</name>" in files.result
    assert (fresh_agent.state_dir / "pki" / "public" / "s1-local.pem").exists()
