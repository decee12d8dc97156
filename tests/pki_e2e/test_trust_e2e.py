"""The agent's trust model over NETCONF (issue 12): verification-cert as a trust anchor,
certificate-file trust, and caPubs that become anchors only under a verified MAC."""

from __future__ import annotations

import pytest
from cmp_mock_pki import (EXPLICIT_CA_FALSE, REFERENCE, SECRET, MockCmpServer, TestPki,
                          with_extension_value, write_pem)
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID
from nc_helpers import connect
from ncclient.operations.rpc import RPCError
from pki_helpers import NS, commit_pki, counter, out, rpc, rpc_failure, state
from trust_pki import TrustPki

ENTITY = ("<entity><name>e1</name><organization>Trust Test</organization>"
          "<common-name>router1</common-name></entity>")


def pem(item) -> str:
    if hasattr(item, "private_bytes"):
        return item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    return item.public_bytes(serialization.Encoding.PEM).decode()


def session(name: str, url: str, key: str, extra: str = "") -> str:
    return (f"<cmp-session><name>{name}</name><entity>e1</entity>"
            f"<server-url><url>{url}</url></server-url>"
            f"<local-key-pair><name>{key}</name></local-key-pair>{extra}</cmp-session>")


SIGNED = ("<origin-authentication-method>signature</origin-authentication-method>"
          "<authentication-cert>a-client.pem</authentication-cert>")
MAC = (f"<message-authentication-code><reference-value>{REFERENCE}</reference-value>"
       f"<secret-value>{SECRET}</secret-value></message-authentication-code>")


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    base = tmp_path_factory.mktemp("trust-e2e")
    return TestPki.create(base / "mock"), TrustPki(base / "a", "A"), TrustPki(base / "b", "B")


def trust_of(tree, name: str) -> str:
    return tree.xpath(f"p:certificate-file[p:name='{name}']/p:trust/text()", namespaces=NS)[0]


def test_capubs_become_anchors_only_under_a_verified_mac(fresh_agent, pkis):
    mock, a, b = pkis
    # s1: signed by A's CMP signer (EKU cmcRA) under A's issuing CA; verification-cert is
    # A's root. Its ip carries B's root in caPubs.
    s1 = MockCmpServer(mock, *a.mock_args(capubs=b.path("root.pem")), mac=False, signer=False)
    # s2: signed by B's CMP signer, which chains only to B's root
    s2 = MockCmpServer(mock, *b.mock_args(clients=a), mac=False, signer=False)
    # s3: MAC-protected ip with B's root in caPubs
    s3 = MockCmpServer(mock, *b.mock_args(None), mac=True, signer=False)
    try:
        with connect(fresh_agent) as m:
            rpc(m, "certificate-import", name="a-root.pem", data=pem(a.root), trust_anchor="true")
            rpc(m, "certificate-import", name="a-client.pem", data=pem(a.client))
            rpc(m, "certificate-import", name="a-ca.pem", data=pem(a.ca))
            rpc(m, "key-pair-import", name="a-client-key", private_key=pem(a.client_key))
            rpc(m, "key-pair-import", name="a-new", private_key=pem(a.new_key))
            rpc(m, "key-pair-import", name="b-new", private_key=pem(b.new_key))
            # OpenSSL 3.0's mock answers MAC requests with HMAC-SHA1
            commit_pki(m, "<weak-algorithms-enabled>true</weak-algorithms-enabled>" + ENTITY
                       + session("s1", s1.url, "a-new",
                                 SIGNED + "<verification-cert>a-root.pem</verification-cert>")
                       + session("s2", s2.url, "b-new", SIGNED)
                       + session("s3", s3.url, "b-new", MAC))
            reply = rpc(m, "cmp-initial-request", session_name="s1")
            assert out(reply, "status") == "success", out(reply, "status-text")
            tree = state(m)
            assert trust_of(tree, "a-root.pem") == "anchor-imported"
            assert trust_of(tree, "a-client.pem") == "untrusted"
            assert trust_of(tree, "s1-ca1.pem") == "untrusted"  # B's root from a signed ip

            refused = rpc_failure(m, "cmp-initial-request", session_name="s2")
            assert refused.app_tag == "cmp-protection"
            assert "no trusted chain for CN=CMP signer good,O=Trust Test" in refused.message
            assert counter(state(m), "s2", "p:failures/p:protection") == 1

            reply = rpc(m, "cmp-initial-request", session_name="s3")
            assert out(reply, "status") == "success", out(reply, "status-text")
            assert trust_of(state(m), "s3-ca1.pem") == "anchor-capubs-mac"

            reply = rpc(m, "cmp-initial-request", session_name="s2")
            assert out(reply, "status") == "success", out(reply, "status-text")

            # re-importing a file without trust-anchor ends its trust
            rpc(m, "certificate-import", name="s3-ca1.pem", data=pem(b.root), overwrite="true")
            assert trust_of(state(m), "s3-ca1.pem") == "untrusted"
            rpc_failure(m, "cmp-initial-request", session_name="s2")
    finally:
        for server in (s1, s2, s3):
            server.stop()


def test_verification_cert_is_the_anchor_and_key_usage_switch(fresh_agent, pkis):
    """A signer under the issuing CA is accepted with verification-cert = root (seed step
    10); one without digitalSignature only with ignore-keyusage."""
    mock, a, _ = pkis
    a.signer("keyenc", usage=("key_encipherment",))
    server = MockCmpServer(mock, *a.mock_args("keyenc"), mac=False, signer=False)
    try:
        with connect(fresh_agent) as m:
            rpc(m, "certificate-import", name="a-root.pem", data=pem(a.root))
            rpc(m, "certificate-import", name="a-client.pem", data=pem(a.client))
            rpc(m, "key-pair-import", name="a-client-key", private_key=pem(a.client_key))
            rpc(m, "key-pair-import", name="a-new", private_key=pem(a.new_key))
            commit_pki(m, ENTITY + session(
                "s1", server.url, "a-new", SIGNED + "<verification-cert>a-root.pem</verification-cert>"))
            assert trust_of(state(m), "a-root.pem") == "anchor-verification-cert"
            refused = rpc_failure(m, "cmp-initial-request", session_name="s1")
            assert "lacks digitalSignature key usage" in refused.message
            commit_pki(m, "<cmp-session><name>s1</name><ignore-keyusage>true</ignore-keyusage>"
                          "</cmp-session>")
            reply = rpc(m, "cmp-initial-request", session_name="s1")
            assert out(reply, "status") == "success", out(reply, "status-text")
    finally:
        server.stop()


def test_certificates_that_are_not_der_refused_by_name(fresh_agent, pkis, tmp_path):
    """A certificate encoded as Insta Certifier's (basicConstraints cA FALSE written out,
    tests/data/vectors/cmp): refused as a trust anchor at certificate-import, and as the
    issued certificate in certConf, both naming it and the cause (README "Trust model")."""
    mock = pkis[0]
    bad = with_extension_value(mock.issued, mock.root_key,
                               ExtensionOID.BASIC_CONSTRAINTS.dotted_string, EXPLICIT_CA_FALSE)
    named = f"CN=router1.example.net (serial {bad.serial_number:X}) is refused: its extensions are not DER-encoded ("
    advice = ("); the CA must re-issue it; cmp-agent's path validation (cryptography) refuses"
              " non-DER certificates")
    server = MockCmpServer(mock, rsp_cert=str(write_pem(tmp_path / "bad.pem", bad)))
    try:
        with connect(fresh_agent) as m:
            with pytest.raises(RPCError) as raised:
                rpc(m, "certificate-import", name="bad.pem", data=pem(bad), trust_anchor="true")
            assert raised.value.tag == "invalid-value"
            assert raised.value.message.startswith(f"trust anchor {named}error parsing asn1 value")
            assert raised.value.message.endswith(advice)
            assert not (fresh_agent.state_dir / "pki" / "public" / "bad.pem").exists()
            rpc(m, "key-pair-import", name="new", private_key=pem(mock.new_key))
            commit_pki(m, "<weak-algorithms-enabled>true</weak-algorithms-enabled>" + ENTITY
                       + session("s1", server.url, "new", MAC))
            refused = rpc_failure(m, "cmp-initial-request", session_name="s1")
            assert refused.app_tag == "cmp-certificate-rejected"
            assert f"issued certificate {named}" in refused.message and advice in refused.message
            tree = state(m)
            assert counter(tree, "s1", "p:failures/p:certificate-rejected") == 1
            reason = tree.xpath("string(//p:cmp-session[p:name='s1']/p:statistics/p:last-request"
                                "/p:reason)", namespaces=NS)
            assert f"issued certificate {named}" in reason, reason
            assert not (fresh_agent.state_dir / "pki" / "public" / "s1-local.pem").exists()

            # such a certificate copied into the store, to sign with (authentication-cert):
            # refused before anything is sent
            (fresh_agent.state_dir / "pki" / "public" / "own.pem").write_bytes(pem(bad).encode())
            commit_pki(m, session("s2", server.url, "new", "<origin-authentication-method>"
                                  "signature</origin-authentication-method>"
                                  "<authentication-cert>own.pem</authentication-cert>"))
            refused = rpc_failure(m, "cmp-certificate-request", session_name="s2")
            assert refused.message.startswith(
                f"session s2: certificate file own.pem: certificate {named}"), refused.message
            assert advice in refused.message
            assert counter(state(m), "s2", "p:messages-sent/p:cr") == 0

            # the same file named as the session's anchor, or for TLS (whose checks are
            # OpenSSL's, which would take it): refused by file, role and cause, before
            # anything is sent
            https = "https://127.0.0.1:1/pkix/"
            for name, role, url, extra in (
                ("s3", "trust anchor", server.url, "<verification-cert>own.pem</verification-cert>"),
                ("s4", "TLS trust anchor", https, "<tls><trusted-cert>own.pem</trusted-cert></tls>"),
                ("s5", "TLS client certificate", https,
                 "<tls><client-cert>own.pem</client-cert></tls>"),
            ):
                commit_pki(m, session(name, url, "new", MAC + extra))
                refused = rpc_failure(m, "cmp-initial-request", session_name=name)
                assert refused.message.startswith(
                    f"session {name}: certificate file own.pem: {role} {named}"), refused.message
                assert advice in refused.message
                assert counter(state(m), name, "p:messages-sent/p:ir") == 0

            # a CA certificate of the store that is not DER (BOOLEAN TRUE as 01, X.690
            # 11.1), the only issuer of the certificate we sign with: not sent in extraCerts
            bad_root = with_extension_value(mock.root, mock.root_key,
                                            ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
                                            bytes.fromhex("3003010101"))
            rpc(m, "certificate-import", name="client.pem", data=pem(mock.client))
            rpc(m, "key-pair-import", name="client-key", private_key=pem(mock.client_key))
            (fresh_agent.state_dir / "pki" / "public" / "root.pem").write_bytes(
                pem(bad_root).encode())
            commit_pki(m, session("s6", server.url, "new", "<origin-authentication-method>"
                                  "signature</origin-authentication-method>"
                                  "<authentication-cert>client.pem</authentication-cert>"))
            refused = rpc_failure(m, "cmp-certificate-request", session_name="s6")
            assert refused.message.startswith(
                "session s6: certificate file root.pem (the chain sent with CN=router1.example.net):"
                f" CA certificate {mock.root.subject.rfc4514_string()} (serial"
                f" {mock.root.serial_number:X}) is refused: its extensions are not DER-encoded"
                " (error parsing asn1 value: ParseError { kind: InvalidValue"), refused.message
            assert counter(state(m), "s6", "p:messages-sent/p:cr") == 0
    finally:
        server.stop()
