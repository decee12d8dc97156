"""The seed's procedure end to end through NETCONF (ncclient) against tools/testca."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from ncclient.operations import RPCError

from nc_helpers import connect
from pki_helpers import (
    ENTITY,
    NS,
    commit_pki,
    counter,
    external_identity,
    mac_session,
    openssl_verify,
    error_info,
    out,
    rpc,
    rpc_failure,
    state,
)
from testca_process import run_testca


@pytest.fixture
def ca(tmp_path):
    with run_testca(tmp_path / "ca", "--validity", "3600") as running:
        yield running


@pytest.mark.parametrize("file_format", ["pem", "der"])
def test_initial_request_by_mac_saves_a_certificate_openssl_accepts(fresh_agent, ca, file_format):
    with connect(fresh_agent) as m:
        commit_pki(m, f"<file-format>{file_format}</file-format>{ENTITY}{mac_session('s1', ca)}")
        reply = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")
        assert out(reply, "request-type") == "ir"
        assert out(reply, "key-pair-created") == "true"
        cert_file = out(reply, "certificate-file")
        assert cert_file == f"s1-local.{file_format}"
        assert reply.xpath("p:ca-certificate-file/text()", namespaces=NS) == [f"s1-ca1.{file_format}"]

        public = fresh_agent.state_dir / "pki" / "public"
        verified = openssl_verify(ca.directory / "ca.pem", public / cert_file, der=file_format == "der")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        raw = (public / cert_file).read_bytes()
        assert raw.startswith(b"-----BEGIN CERTIFICATE") == (file_format == "pem")
        cert = (x509.load_pem_x509_certificate if file_format == "pem" else x509.load_der_x509_certificate)(raw)
        assert cert.subject.rfc4514_string() == "CN=router1,O=Example,C=CN"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["router1.example.net"]
        assert out(reply, "serial") == f"{cert.serial_number:X}"

        private = fresh_agent.state_dir / "pki" / "private" / "rsa1.pem"
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600

        tree = state(m)
        files = tree.xpath("p:certificate-file/p:name/text()", namespaces=NS)
        assert {cert_file, f"s1-ca1.{file_format}"} <= set(files)
        assert tree.xpath("p:key-pair[p:name='rsa1']/p:key-bits/text()", namespaces=NS) == ["2048"]
        assert counter(tree, "s1", "p:messages-sent/p:ir") == 1
        assert counter(tree, "s1", "p:messages-sent/p:cert-conf") == 1
        assert counter(tree, "s1", "p:messages-received/p:ip") == 1
        assert counter(tree, "s1", "p:messages-received/p:pki-conf") == 1
        assert counter(tree, "s1", "p:outcomes/p:accepted") == 1
        assert tree.xpath("string(//p:cmp-session[p:name='s1']/p:statistics/p:last-request/p:result)",
                          namespaces=NS) == "success"
        assert tree.xpath("string(p:cmp-statistics/p:outcomes/p:accepted)", namespaces=NS) == "1"

        # the MAC secret is never shown in clear text
        running = m.get_config("running").data_xml
        assert ca.secret not in running and "$cmp$" in running
    assert ca.secret not in fresh_agent.log_text()


def test_requests_check_the_session_first_and_name_every_problem(fresh_agent, ca):
    with connect(fresh_agent) as m:
        commit_pki(m, "<cmp-session><name>s1</name><message-authentication-code>"
                      "<reference-value>1234</reference-value></message-authentication-code>"
                      "</cmp-session>")
        with pytest.raises(RPCError) as err:
            rpc(m, "cmp-initial-request", session_name="s1")
        assert (err.value.tag, err.value.app_tag) == ("operation-failed", "precondition")
        assert err.value.message == (
            "session s1: no server-url; no local-key-pair name; no entity (the subject of"
            " the request); message-authentication-code has no secret-value")
        with pytest.raises(RPCError) as err:
            rpc(m, "cmp-keyupdate-request", session_name="s1")
        assert "no authentication-cert: a KUR is signed with it" in err.value.message
        with pytest.raises(RPCError) as err:
            rpc(m, "cmp-initial-request", session_name="nope")
        assert err.value.tag == "invalid-value" and "commit" in err.value.message
        # the session is still usable
        assert m.get_config("running").ok


def test_signature_ir_then_cr_then_kur_with_and_without_regenerate(fresh_agent, tmp_path):
    root_file, identity_pem, identity_key = external_identity(tmp_path)
    with run_testca(tmp_path / "ca", "--trust", str(root_file)) as ca, connect(fresh_agent) as m:
        rpc(m, "certificate-import", name="ca.pem", data=ca.certificate_pem)
        rpc(m, "certificate-import", name="identity.pem", data=identity_pem)
        rpc(m, "key-pair-import", name="identity-key", private_key=identity_key)
        rpc(m, "key-pair-create", name="rsa1", algorithm="rsa", key_bits="2048")
        commit_pki(m, ENTITY + mac_session(
            "s1", ca, extra="<origin-authentication-method>signature</origin-authentication-method>"
                            "<authentication-cert>identity.pem</authentication-cert>"
                            "<verification-cert>ca.pem</verification-cert>"))
        reply = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")
        assert out(reply, "key-pair-created") == "false"
        local = out(reply, "certificate-file")

        # CR and KUR are signed with the local certificate the CA issued
        m.edit_config(target="candidate", config=(
            f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><pki xmlns="{NS["p"]}">'
            f"<cmp-session><name>s1</name><authentication-cert>{local}</authentication-cert>"
            "</cmp-session></pki></config>"))
        m.commit()
        reply = rpc(m, "cmp-certificate-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")

        public = fresh_agent.state_dir / "pki" / "public"
        private = fresh_agent.state_dir / "pki" / "private"
        before = x509.load_pem_x509_certificate((public / local).read_bytes())
        key_before = (private / "rsa1.pem").read_bytes()

        reply = rpc(m, "cmp-keyupdate-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")
        assert out(reply, "certificate-file") == local
        after = x509.load_pem_x509_certificate((public / local).read_bytes())
        assert after.serial_number != before.serial_number
        assert after.public_key() == before.public_key()  # same key without regenerate
        assert (private / "rsa1.pem").read_bytes() == key_before
        assert (public / f"{local}.previous").exists()

        commit_pki(m, "<cmp-session><name>s1</name><local-key-pair><regenerate>true</regenerate>"
                      "</local-key-pair></cmp-session>")
        reply = rpc(m, "cmp-keyupdate-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")
        renewed = x509.load_pem_x509_certificate((public / local).read_bytes())
        assert renewed.public_key() != after.public_key()
        assert (private / "rsa1.pem").read_bytes() != key_before
        assert (private / "rsa1.previous.pem").read_bytes() == key_before
        ok = openssl_verify(ca.directory / "ca.pem", public / local)
        assert ok.returncode == 0, ok.stdout

        tree = state(m)
        assert counter(tree, "s1", "p:messages-sent/p:kur") == 2
        assert counter(tree, "s1", "p:messages-received/p:kup") == 2
        assert counter(tree, "s1", "p:messages-sent/p:cr") == 1


def test_a_ca_that_is_down_or_rejects_is_reported_and_counted(fresh_agent, tmp_path):
    with connect(fresh_agent) as m:
        with run_testca(tmp_path / "ca", "--reject", "quota exceeded for this device") as ca:
            commit_pki(m, ENTITY + mac_session("s1", ca))
            refused = rpc_failure(m, "cmp-initial-request", session_name="s1")
        assert refused.app_tag == "cmp-rejected"
        assert error_info(refused, "pki-status") == ["rejection"]
        assert error_info(refused, "failure-info") == ["badRequest"]
        assert error_info(refused, "ca-text") == ["quota exceeded for this device"]
        assert error_info(refused, "session-name") == ["s1"]
        assert "session s1: ir failed" in refused.message
        assert "quota exceeded for this device" in refused.message

        # the CA is gone now: the same port refuses connections
        unreachable = rpc_failure(m, "cmp-initial-request", session_name="s1")
        assert unreachable.app_tag == "cmp-transport"
        assert "transport" in unreachable.message
        assert error_info(unreachable, "pki-status") == []

        tree = state(m)
        assert counter(tree, "s1", "p:outcomes/p:rejection") == 1
        assert counter(tree, "s1", "p:failures/p:transport") == 1
        assert tree.xpath("//p:cmp-session[p:name='s1']/p:statistics/p:failures/p:failure-info"
                          "[p:bit='badRequest']/p:count/text()", namespaces=NS) == ["1"]
        assert "transport" in tree.xpath(
            "string(//p:cmp-session[p:name='s1']/p:statistics/p:last-request/p:reason)", namespaces=NS)

        rpc(m, "clear-statistics", session_name="s1")
        assert counter(state(m), "s1", "p:outcomes/p:rejection") == 0
