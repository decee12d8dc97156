"""HTTPS to the CA (RFC 6712 over TLS) configured over NETCONF: trust anchors from the
certificate store, host name verification, a TLS client certificate. The CA is OpenSSL's
mock server behind a Python ``ssl`` endpoint that requires a client certificate."""

from __future__ import annotations

import pytest
from cmp_mock_pki import REFERENCE, SECRET, TLS_SERVER_NAME, TlsProxy
from test_openssl_mock import pem

from nc_helpers import connect
from pki_helpers import WEAK_FOR_THE_MOCK, commit_pki, out, rpc, rpc_failure

NC = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="replace"'


@pytest.fixture
def https_ca(mock, mock_pki):
    proxy = TlsProxy(mock.port, *mock_pki.tls_server(), client_ca=mock_pki.path("root.pem"))
    yield proxy
    proxy.stop()


def tls(*inner: str) -> str:
    return f"<cmp-session><name>t1</name><tls {NC}>{''.join(inner)}</tls></cmp-session>"


def test_https_ca_over_netconf(fresh_agent, https_ca, mock_pki):
    with connect(fresh_agent) as m:
        rpc(m, "key-pair-import", name="dev-key", private_key=pem(mock_pki.new_key))
        rpc(m, "key-pair-import", name="tls-key", private_key=pem(mock_pki.client_key))
        for name, cert in (("root.pem", mock_pki.root), ("other.pem", mock_pki.other_root),
                           ("tls-client.pem", mock_pki.client)):
            rpc(m, "certificate-import", name=name, data=pem(cert))
        commit_pki(m, (
            WEAK_FOR_THE_MOCK +
            "<entity><name>e1</name><common-name>router1.example.net</common-name></entity>"
            "<cmp-session><name>t1</name><entity>e1</entity>"
            "<ca-name>/C=DE/O=Test/CN=Test CMP Server</ca-name>"
            f"<server-url><url>https://127.0.0.1:{https_ca.port}/pkix/</url></server-url>"
            "<local-key-pair><name>dev-key</name></local-key-pair>"
            f"<message-authentication-code><reference-value>{REFERENCE}</reference-value>"
            f"<secret-value>{SECRET}</secret-value></message-authentication-code>"
            "<tls><trusted-cert>root.pem</trusted-cert><client-cert>tls-client.pem</client-cert>"
            "</tls></cmp-session>"))
        reply = rpc(m, "cmp-initial-request", session_name="t1")
        assert out(reply, "status") == "success", out(reply, "status-text")

        # the name the certificate carries, given where the URL has an address
        commit_pki(m, tls("<trusted-cert>root.pem</trusted-cert>",
                          f"<server-name>{TLS_SERVER_NAME}</server-name>",
                          "<client-cert>tls-client.pem</client-cert>",
                          "<client-key-pair>tls-key</client-key-pair>"))
        reply = rpc(m, "cmp-initial-request", session_name="t1")
        assert out(reply, "status") == "success", out(reply, "status-text")

        failures = {
            "wrong host": (tls("<trusted-cert>root.pem</trusted-cert>",
                               "<server-name>other-ca.example.net</server-name>",
                               "<client-cert>tls-client.pem</client-cert>"),
                           "Hostname mismatch"),
            "wrong anchor": (tls("<trusted-cert>other.pem</trusted-cert>",
                                 "<client-cert>tls-client.pem</client-cert>"),
                             "TLS server certificate not trusted"),
            # TLS 1.3: the certificate_required alert, or the close if it lost the race
            "no client certificate": (tls("<trusted-cert>root.pem</trusted-cert>"), "TLS error: "),
        }
        for case, (config, reason) in failures.items():
            commit_pki(m, config)
            refused = rpc_failure(m, "cmp-initial-request", session_name="t1")
            assert refused.app_tag == "cmp-transport", case
            assert reason in refused.message, (case, refused.message)
