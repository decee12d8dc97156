"""Session options of the seed (steps 6, 8, 9) and the store RPCs, through NETCONF."""

from __future__ import annotations

import subprocess

import pytest
from ncclient.operations import RPCError

from nc_helpers import connect
from pki_helpers import ENTITY, NS, commit_pki, mac_session, out, rpc, state
from testca_process import run_testca


@pytest.fixture
def ca(tmp_path):
    with run_testca(tmp_path / "ca") as running:
        yield running


def test_source_interface_escaped_url_and_weak_mac(fresh_agent, ca):
    # esc: the URL is written with \\xHH escapes, '\\x3f' for the '?' the device CLI cannot take
    escaped = ca.url.replace("/pkix/", "/pki\\x78/\\x3fsite=lab")
    session = mac_session("s1", ca).replace(
        f"<server-url><url>{ca.url}</url></server-url>",
        f"<server-url><url>{escaped}</url><esc>true</esc></server-url>"
        "<source-interface>lo</source-interface>")
    with connect(fresh_agent) as m:
        commit_pki(m, ENTITY + session)
        reply = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")

        # what esc decodes must still be a URL that can be sent: a CR LF (a header of the
        # URL's) is refused before anything is sent, not dropped unseen by the URL parser
        commit_pki(m, f"<cmp-session><name>s1</name><server-url><url>{escaped}\\x0d\\x0aX:"
                      "\\x20y</url></server-url></cmp-session>")
        with pytest.raises(RPCError) as err:
            rpc(m, "cmp-initial-request", session_name="s1")
        assert err.value.tag == "operation-failed", err.value.message
        assert "session s1: server-url:" in err.value.message
        assert "control characters must be percent-encoded" in err.value.message
        commit_pki(m, f"<cmp-session><name>s1</name><server-url><url>{escaped}</url>"
                      "</server-url></cmp-session>")

        # seed step 8: an interface without an address is refused before anything is sent
        commit_pki(m, "<cmp-session><name>s1</name><source-interface>nosuch0</source-interface>"
                      "</cmp-session>")
        with pytest.raises(RPCError) as err:
            rpc(m, "cmp-initial-request", session_name="s1")
        assert err.value.tag == "operation-failed" and "nosuch0" in err.value.message
        assert err.value.app_tag == "precondition"

        # seed step 9: hmac-sha1 is a weak algorithm; the device provides the weak-algorithm
        # package by default: accepted with a warning at commit and in the statistics
        commit_pki(m, "<cmp-session><name>s1</name><source-address>127.0.0.1</source-address>"
                      "<integrity-algorithm>hmac-sha1</integrity-algorithm></cmp-session>")
        reply = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")
        last = state(m).find("p:cmp-session/p:statistics/p:last-request", NS)
        assert last.findtext("p:result", namespaces=NS) == "success"
        assert "hmac-sha1" in last.findtext("p:reason", namespaces=NS)
        assert "WARNING agent.pki.service: commit: warning: session s1 uses hmac-sha1" \
            in fresh_agent.log_text()
        # when the operator disables weak algorithms, hmac-sha1 is refused at commit
        m.edit_config(target="candidate", config=(
            f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><pki xmlns="{NS["p"]}">'
            "<weak-algorithms-enabled>false</weak-algorithms-enabled></pki></config>"))
        with pytest.raises(RPCError) as err:
            m.commit()
        assert "weak" in err.value.message
        m.discard_changes()


def test_source_interface_and_address_over_ipv6(fresh_agent, tmp_path):
    """Seed step 8 with IPv6: the interface's address of the server's family is used."""
    with run_testca(tmp_path / "ca6", host="::1") as ca6, connect(fresh_agent) as m:
        commit_pki(m, ENTITY + mac_session("s6", ca6, extra="<source-interface>lo</source-interface>"))
        reply = rpc(m, "cmp-initial-request", session_name="s6")
        assert out(reply, "status") == "success", out(reply, "status-text")
        commit_pki(m, "<cmp-session><name>s6</name><source-address>::1</source-address>"
                      "</cmp-session>")
        reply = rpc(m, "cmp-initial-request", session_name="s6")
        assert out(reply, "status") == "success", out(reply, "status-text")


def test_key_and_certificate_store_rpcs(fresh_agent, ca, tmp_path):
    pss = tmp_path / "pss.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-out", str(pss)], check=True,
                   capture_output=True, timeout=60)
    with connect(fresh_agent) as m:
        rpc(m, "key-pair-create", name="ec1", algorithm="ec", curve="p384")
        rpc(m, "key-pair-create", name="rsa3k", key_bits="3072")
        with pytest.raises(RPCError) as err:
            rpc(m, "key-pair-create", name="ec1", algorithm="ec")
        assert err.value.tag == "data-exists"
        with pytest.raises(RPCError) as err:
            rpc(m, "key-pair-create", name="k", key_bits="1024")
        assert err.value.tag == "invalid-value"
        with pytest.raises(RPCError) as err:
            rpc(m, "key-pair-create", algorithm="rsa")
        assert err.value.tag == "missing-element"
        with pytest.raises(RPCError) as err:
            rpc(m, "key-pair-import", name="bad", private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n")
        assert err.value.tag == "invalid-value" and "AAAA" not in err.value.message
        with pytest.raises(RPCError) as err:  # not kept as a plain RSA key (README "Algorithms")
            rpc(m, "key-pair-import", name="pss", private_key=pss.read_text())
        assert err.value.tag == "invalid-value" and "is an RSA-PSS key" in err.value.message
        rpc(m, "certificate-import", name="ca.pem", data=ca.certificate_pem)
        with pytest.raises(RPCError) as err:
            rpc(m, "certificate-import", name="junk.pem", data="hello")
        assert err.value.tag == "invalid-value"

        tree = state(m)
        keys = {e.findtext("p:name", namespaces=NS): (e.findtext("p:algorithm", namespaces=NS),
                                                       e.findtext("p:key-bits", namespaces=NS),
                                                       e.findtext("p:curve", namespaces=NS))
                for e in tree.findall("p:key-pair", NS)}
        assert keys == {"ec1": ("ec", "384", "p384"), "rsa3k": ("rsa", "3072", None)}
        cert = tree.find("p:certificate-file[p:name='ca.pem']", NS)
        assert cert.findtext("p:subject", namespaces=NS) == "CN=cmp-agent test CA,O=cmp-agent,C=CN"
        assert cert.findtext("p:not-after", namespaces=NS).endswith("Z")

        rpc(m, "key-pair-delete", name="ec1")
        rpc(m, "certificate-delete", name="ca.pem")
        with pytest.raises(RPCError) as err:
            rpc(m, "certificate-delete", name="ca.pem")
        assert err.value.tag == "data-missing"
        tree = state(m)
        assert tree.xpath("p:key-pair/p:name/text()", namespaces=NS) == ["rsa3k"]
        assert tree.xpath("p:certificate-file", namespaces=NS) == []
