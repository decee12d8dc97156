"""Every request type through NETCONF against OpenSSL's own CMP server (``openssl cmp -port``)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from cmp_mock_pki import REFERENCE, SECRET
from nc_helpers import connect
from pki_helpers import NS, WEAK_FOR_THE_MOCK, commit_pki, counter, out, rpc, rpc_failure, state


def pem(item) -> str:
    if hasattr(item, "private_bytes"):
        return item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    return item.public_bytes(serialization.Encoding.PEM).decode()


def test_ir_cr_kur_against_openssl_mock_server(fresh_agent, mock, mock_pki):
    with connect(fresh_agent) as m:
        # the mock always answers with its fixed certificate, issued for mock_pki.new_key
        rpc(m, "key-pair-import", name="dev-key", private_key=pem(mock_pki.new_key))
        rpc(m, "certificate-import", name="root.pem", data=pem(mock_pki.root))
        rpc(m, "certificate-import", name="client.pem", data=pem(mock_pki.client))
        rpc(m, "key-pair-import", name="client-key", private_key=pem(mock_pki.client_key))
        commit_pki(m, (
            WEAK_FOR_THE_MOCK +
            "<entity><name>e1</name><common-name>router1.example.net</common-name></entity>"
            "<cmp-session><name>m1</name><entity>e1</entity>"
            "<ca-name>/C=DE/O=Test/CN=Test CMP Server</ca-name>"
            f"<server-url><url>{mock.url}</url></server-url>"
            "<local-key-pair><name>dev-key</name></local-key-pair>"
            f"<message-authentication-code><reference-value>{REFERENCE}</reference-value>"
            f"<secret-value>{SECRET}</secret-value></message-authentication-code>"
            "</cmp-session>"))
        ir = rpc(m, "cmp-initial-request", session_name="m1")
        assert out(ir, "status") == "success", out(ir, "status-text")
        assert out(ir, "serial") == f"{mock_pki.issued.serial_number:X}"

        commit_pki(m, "<cmp-session><name>m1</name><authentication-cert>client.pem</authentication-cert>"
                      "</cmp-session>")
        cr = rpc(m, "cmp-certificate-request", session_name="m1")
        assert out(cr, "status") == "success", out(cr, "status-text")

        commit_pki(m, f"<cmp-session><name>m1</name><authentication-cert>{out(ir, 'certificate-file')}"
                      "</authentication-cert></cmp-session>")
        kur = rpc(m, "cmp-keyupdate-request", session_name="m1")
        assert out(kur, "status") == "success", out(kur, "status-text")

        tree = state(m)
        for path, expected in (("p:messages-sent/p:ir", 1), ("p:messages-sent/p:cr", 1),
                               ("p:messages-sent/p:kur", 1), ("p:messages-received/p:pki-conf", 3),
                               ("p:outcomes/p:accepted", 3)):
            assert counter(tree, "m1", path) == expected, path


def test_a_certificate_for_another_key_is_refused(fresh_agent, mock):
    """The mock answers with a certificate for its own key, not for the one we asked."""
    with connect(fresh_agent) as m:
        commit_pki(m, (
            WEAK_FOR_THE_MOCK +
            "<entity><name>e1</name><common-name>router1</common-name></entity>"
            f"<cmp-session><name>m2</name><entity>e1</entity><server-url><url>{mock.url}</url>"
            "</server-url><local-key-pair><name>fresh</name></local-key-pair>"
            f"<message-authentication-code><reference-value>{REFERENCE}</reference-value>"
            f"<secret-value>{SECRET}</secret-value></message-authentication-code></cmp-session>"))
        refused = rpc_failure(m, "cmp-initial-request", session_name="m2")
        assert refused.app_tag == "cmp-certificate-rejected"
        assert "public key" in refused.message
        assert not (fresh_agent.state_dir / "pki" / "public" / "m2-local.pem").exists()
        # refused in certConf and counted (README "Trust model")
        assert counter(state(m), "m2", "p:failures/p:certificate-rejected") == 1
        assert counter(state(m), "m2", "p:messages-sent/p:cert-conf") == 1
        assert state(m).xpath("p:key-pair/p:name/text()", namespaces=NS) == ["fresh"]
