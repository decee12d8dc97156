"""Lightweight CMP through NETCONF: the PKCS#10 request built from the session's key pair
and entity, the session options implicit-confirm and cert-profile, and their counters."""

from __future__ import annotations

import base64

from cryptography import x509

from nc_helpers import connect
from pki_helpers import (ENTITY, NS, commit_pki, counter, error_info, mac_session, out, rpc,
                         rpc_failure, state)
from testca_process import run_testca


def test_pkcs10_request_with_implicit_confirm_and_profile(fresh_agent, tmp_path):
    public = fresh_agent.state_dir / "pki" / "public"
    with run_testca(tmp_path / "ca") as ca, connect(fresh_agent) as m:
        commit_pki(m, ENTITY + mac_session(
            "s1", ca, extra="<implicit-confirm>true</implicit-confirm>"
                            "<cert-profile>router</cert-profile>"))
        reply = rpc(m, "cmp-pkcs10-request", session_name="s1")
        assert out(reply, "status") == "success", out(reply, "status-text")
        assert out(reply, "request-type") == "p10cr"
        cert = x509.load_pem_x509_certificate((public / out(reply, "certificate-file")).read_bytes())
        assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "router1"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["router1.example.net"]
        tree = state(m)
        assert counter(tree, "s1", "p:messages-sent/p:p10cr") == 1
        assert counter(tree, "s1", "p:messages-received/p:cp") == 1
        # the CA granted implicit confirmation: no certConf
        assert counter(tree, "s1", "p:messages-sent/p:cert-conf") == 0
        assert tree.findtext("p:cmp-statistics/p:messages-sent/p:p10cr", namespaces=NS) == "1"


def test_revocation_and_general_requests(fresh_agent, tmp_path):
    with run_testca(tmp_path / "ca") as ca, connect(fresh_agent) as m:
        commit_pki(m, ENTITY + mac_session("s1", ca))
        ir = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(ir, "status") == "success", out(ir, "status-text")
        local = out(ir, "certificate-file")

        cas = rpc(m, "cmp-general-request", session_name="s1", info_type="ca-certs")
        assert out(cas, "status") == "success", out(cas, "status-text")
        assert cas.xpath("p:ca-certificate-file/text()", namespaces=NS) == ["s1-cacert1.pem"]
        template = rpc(m, "cmp-general-request", session_name="s1", info_type="cert-req-template")
        assert out(template, "status") == "success" and out(template, "template")

        revoked = rpc(m, "cmp-revocation-request", session_name="s1", certificate_file=local,
                      reason="keyCompromise")
        assert out(revoked, "status") == "success", out(revoked, "status-text")
        entry = state(m).find(f"p:certificate-file[p:name='{local}']", NS)
        assert entry.findtext("p:revocation/p:reason", namespaces=NS) == "keyCompromise"
        again = rpc_failure(m, "cmp-revocation-request", session_name="s1", certificate_file=local)
        assert again.app_tag == "cmp-rejected" and "rr failed" in again.message
        assert "certRevoked" in error_info(again, "failure-info")

        commit_pki(m, f"<cmp-session><name>s1</name><authentication-cert>{local}"
                      "</authentication-cert></cmp-session>")
        crl = rpc(m, "cmp-general-request", session_name="s1", info_type="crl-status-list")
        assert out(crl, "status") == "success", out(crl, "status-text")
        serial = int(out(ir, "serial"), 16)
        assert x509.load_der_x509_crl(base64.b64decode(out(crl, "crl"))) \
            .get_revoked_certificate_by_serial_number(serial) is not None

        tree = state(m)
        assert counter(tree, "s1", "p:messages-sent/p:rr") == 2
        assert counter(tree, "s1", "p:messages-received/p:rp") == 2
        assert counter(tree, "s1", "p:messages-sent/p:genm") == 3
        assert counter(tree, "s1", "p:messages-received/p:genp") == 3
        last = tree.find("p:cmp-session/p:statistics/p:last-request", NS)
        assert last.findtext("p:type", namespaces=NS) == "genm"


def test_root_ca_update_then_the_next_enrolment_trusts_the_new_root(fresh_agent, tmp_path):
    """The CA rolls its root; the agent takes newWithNew only after newWithOld verified with
    the root it trusts (saved from the IR's caPubs); the next KUR, signed by the CA with its
    new key, is trusted through the new root."""
    public = fresh_agent.state_dir / "pki" / "public"
    with connect(fresh_agent) as m:
        with run_testca(tmp_path / "ca") as ca:
            commit_pki(m, ENTITY + mac_session("s1", ca))
            ir = rpc(m, "cmp-initial-request", session_name="s1")
            assert out(ir, "status") == "success", out(ir, "status-text")
            local = out(ir, "certificate-file")
            unchanged = rpc(m, "cmp-general-request", session_name="s1", info_type="root-ca-cert")
            assert out(unchanged, "status-text") == "rootCaCert: no root CA key update"
        with run_testca(tmp_path / "ca", "--roll-root") as ca:
            commit_pki(m, f"<cmp-session><name>s1</name><authentication-cert>{local}"
                          f"</authentication-cert><server-url><url>{ca.url}</url></server-url>"
                          "</cmp-session>")
            rpc_failure(m, "cmp-keyupdate-request", session_name="s1")
            update = rpc(m, "cmp-general-request", session_name="s1", info_type="root-ca-cert")
            assert out(update, "status") == "success", out(update, "status-text")
            assert update.xpath("p:ca-certificate-file/text()", namespaces=NS) == ["s1-root.pem"]
            new_root = x509.load_pem_x509_certificate((public / "s1-root.pem").read_bytes())
            assert new_root == x509.load_pem_x509_certificate(ca.certificate_pem.encode())
            kur = rpc(m, "cmp-keyupdate-request", session_name="s1")
            assert out(kur, "status") == "success", out(kur, "status-text")
            renewed = x509.load_pem_x509_certificate((public / local).read_bytes())
            renewed.verify_directly_issued_by(new_root)
