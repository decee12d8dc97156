"""The CMP engine against OpenSSL's own CMP server (``openssl cmp -port 0``)."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
from cmp_mock_pki import REFERENCE, SECRET, issue, write_pem
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.cmp.client import (EnrollmentRequest, MacCredentials, SignerCredentials, enroll,
                              tls_context)
from agent.cmp.names import SubjectAltNames, parse_dn
from agent.cmp.transaction import Enrolled, Failed, FailureKind
from agent.cmp.transport import HttpTransport

SUBJECT = parse_dn("/CN=router1.example.net")


def mac(algorithm: str = "hmac-sha256", secret: str = SECRET) -> MacCredentials:
    return MacCredentials(REFERENCE.encode(), secret.encode(), algorithm)


def request(pki, server, **overrides) -> EnrollmentRequest:
    fields = dict(
        kind="ir",
        server_url=server.url,
        new_key=pki.new_key,
        subject=SUBJECT,
        mac=mac(),
        recipient=pki.server.subject,
        total_timeout=20,
        weak_algorithms=True,  # the mock answers MAC-protected requests with HMAC-SHA1
    )
    fields.update(overrides)
    return EnrollmentRequest(**fields)


def assert_enrolled(result, pki, ca_pubs: bool = True) -> Enrolled:
    assert isinstance(result, Enrolled), str(result)
    assert result.status == "accepted"
    assert result.certificate == pki.issued
    # the mock sends -rsp_capubs in ip only (RFC 4210 5.3.2: caPubs for initialization)
    assert (pki.root in result.ca_pubs) if ca_pubs else result.ca_pubs == ()
    assert pki.root in result.extra_certs
    return result


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hmac-sha1"])
def test_ir_by_mac(pki, mock_server, algorithm):
    server = mock_server()
    result = assert_enrolled(enroll(request(pki, server, mac=mac(algorithm))), pki)
    assert result.messages.sent == {"ir": 1, "certConf": 1}
    assert result.messages.received == {"ip": 1, "pkiconf": 1}


def test_mock_hmac_sha1_answer_refused_unless_weak_algorithms(pki, mock_server):
    server = mock_server()
    result = enroll(request(pki, server, weak_algorithms=False))
    assert isinstance(result, Failed) and result.kind is FailureKind.PROTECTION
    assert "ip refused: PBM MAC uses SHA-1, a weak algorithm" in result.message
    with pytest.raises(ValueError, match="MAC hmac-sha1 is a weak algorithm"):
        request(pki, server, mac=mac("hmac-sha1"), weak_algorithms=False)


def test_ir_with_subject_alt_names(pki, mock_server, tmp_path):
    san = SubjectAltNames(dns=("router1.example.net",), ip=("192.0.2.1", "2001:db8::1"),
                          email=("noc@example.net",))
    subject = parse_dn("/C=DE/ST=Bavaria/L=Munich/O=Example/OU=Net/CN=router1/emailAddress=noc@example.net")
    asked = issue(subject, pki.new_key.public_key(), pki.root.subject, pki.root_key, ca=False,
                  san=list(san.to_extension()))
    server = mock_server(rsp_cert=str(write_pem(tmp_path / "asked.pem", asked)))
    result = enroll(request(pki, server, subject=subject, san=san))
    assert isinstance(result, Enrolled) and result.status == "accepted", str(result)
    assert result.certificate == asked


def test_subject_or_san_not_asked_for(pki, mock_server):
    """The mock's certificate is for CN=router1.example.net without SAN: accepted with
    that subject, refused in certConf for another one, unless the CA says grantedWithMods."""
    other = parse_dn("/CN=router2.example.net")
    server = mock_server()
    result = enroll(request(pki, server, subject=other))
    assert isinstance(result, Failed) and result.kind is FailureKind.CERTIFICATE_REJECTED
    assert "subject CN=router1.example.net is not the requested CN=router2.example.net" in result.message
    assert result.messages.sent == {"ir": 1, "certConf": 1}
    result = enroll(request(pki, server, san=SubjectAltNames(dns=("router1.example.net",))))
    assert isinstance(result, Failed) and "subjectAltName" in result.message
    modified = mock_server("-pkistatus", "1")
    result = enroll(request(pki, modified, subject=other))
    assert isinstance(result, Enrolled) and result.status == "grantedWithMods", str(result)


def test_ir_by_signature_with_external_identity(pki, mock_server):
    server = mock_server(mac=False)
    signer = SignerCredentials(pki.client, pki.client_key)
    # trust anchor: the server's chain is built from the response's extraCerts to the root
    result = enroll(request(pki, server, mac=None, signer=signer, trusted=(pki.root,)))
    assert_enrolled(result, pki)
    # pinned server certificate
    result = enroll(request(pki, server, mac=None, signer=signer, server_cert=pki.server))
    assert_enrolled(result, pki)


def test_cr_signed_with_identity(pki, mock_server):
    server = mock_server(mac=False)
    signer = SignerCredentials(pki.client, pki.client_key)
    result = enroll(request(pki, server, kind="cr", mac=None, signer=signer, server_cert=pki.server))
    assert_enrolled(result, pki, ca_pubs=False)
    assert result.messages.sent == {"cr": 1, "certConf": 1}
    assert result.messages.received == {"cp": 1, "pkiconf": 1}


def test_cr_by_mac(pki, mock_server):
    server = mock_server()
    assert_enrolled(enroll(request(pki, server, kind="cr")), pki, ca_pubs=False)


def test_kur_with_new_key(pki, mock_server, tmp_path):
    """KUR signed with the old certificate and key; oldCertID names the old certificate.

    OpenSSL 3.0's mock checks oldCertID against the issuer and serial of its -rsp_cert,
    so the certificate it returns for the new key carries the old serial number.
    """
    old_key = ec.generate_private_key(ec.SECP256R1())
    old = pki.issue_for(old_key.public_key())
    new_key = ec.generate_private_key(ec.SECP256R1())

    updated = issue(old.subject, new_key.public_key(), pki.root.subject, pki.root_key, ca=False,
                    serial=old.serial_number)
    server = mock_server(mac=False, rsp_cert=str(write_pem(tmp_path / "updated.pem", updated)))
    result = enroll(request(pki, server, kind="kur", mac=None, new_key=new_key,
                            subject=x509.Name([]), signer=SignerCredentials(old, old_key),
                            server_cert=pki.server))
    assert isinstance(result, Enrolled), str(result)
    assert result.certificate == updated
    assert result.messages.sent == {"kur": 1, "certConf": 1}
    assert result.messages.received == {"kup": 1, "pkiconf": 1}


def test_kur_with_wrong_old_cert_is_refused(pki, mock_server):
    """The oldCertID really is sent: the mock refuses one that does not match its cert."""
    server = mock_server(mac=False)
    result = enroll(request(pki, server, kind="kur", mac=None, subject=x509.Name([]),
                            signer=SignerCredentials(pki.client, pki.client_key),
                            server_cert=pki.server))
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.ERROR_MESSAGE
    assert any("wrong certid" in t for t in result.status_texts)


def test_polling_honours_check_after(pki, mock_server):
    server = mock_server("-poll_count", "3", "-check_after", "1")
    delays: list[float] = []
    result = enroll(request(pki, server), sleep=delays.append)
    assert_enrolled(result, pki)
    assert result.messages.sent == {"ir": 1, "pollReq": 3, "certConf": 1}
    assert result.messages.received == {"ip": 2, "pollRep": 2, "pkiconf": 1}
    assert delays == [1.0, 1.0, 1.0]  # each pollRep says 1s; the first pollReq waits the minimum


def test_polling_bounded_by_total_timeout(pki, mock_server):
    server = mock_server("-poll_count", "3", "-check_after", "30")
    delays: list[float] = []
    result = enroll(request(pki, server, total_timeout=5), sleep=delays.append)
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.TIMEOUT
    assert "30s" in result.message
    assert delays == [1.0]  # the first pollReq; its pollRep's 30s are beyond the 5s


def test_check_after_zero_polls_at_most_once_a_second(pki, mock_server):
    """Issue 9: a CA answering checkAfter 0 does not make us poll in a tight loop."""
    server = mock_server("-poll_count", "3", "-check_after", "0")
    delays: list[float] = []
    assert_enrolled(enroll(request(pki, server), sleep=delays.append), pki)
    assert delays == [1.0, 1.0, 1.0]


def test_long_check_after_is_honoured_without_total_timeout(pki, mock_server):
    """RFC 4210 5.3.22: no artificial limit; the wait is announced before it starts."""
    server = mock_server("-poll_count", "2", "-check_after", "7200")
    delays: list[float] = []
    announced = []
    result = enroll(request(pki, server, total_timeout=None), sleep=delays.append,
                    on_poll=announced.append)
    assert_enrolled(result, pki)
    assert delays == [1.0, 7200.0]
    assert len(announced) == 2
    assert (announced[1].when - announced[0].when).total_seconds() >= 7198
    assert [p.delay for p in announced] == [1.0, 7200.0]
    assert all(p.reason == () and "says" not in str(p) for p in announced)  # OpenSSL's has none


def test_hour_long_check_after_on_a_fast_clock(pki, mock_server):
    """The waits between polls are the clock's seconds (agent/clock.py): an hour-long
    checkAfter passes in a second of an OffsetClock running 3600 times faster."""
    from agent.clock import OffsetClock

    server = mock_server("-poll_count", "2", "-check_after", "3600")
    clock = OffsetClock(rate=3600)
    announced = []
    result = enroll(request(pki, server, total_timeout=None), clock=clock,
                    on_poll=announced.append)
    assert_enrolled(result, pki)
    assert result.messages.sent == {"ir": 1, "pollReq": 2, "certConf": 1}
    assert clock.now() >= announced[-1].when  # the hour, as the clock counts it, has passed


def test_message_timeout_bounds_each_exchange(pki):
    """--msg-timeout: a CA that never answers fails at the per-message bound even
    when the transaction itself has no total timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        silent = EnrollmentRequest(
            kind="ir", server_url=f"http://127.0.0.1:{listener.getsockname()[1]}/pkix/",
            new_key=pki.new_key, subject=SUBJECT, mac=mac(), message_timeout=0.5,
            total_timeout=None)
        result = enroll(silent)
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.TIMEOUT
    assert "timed out" in result.message


def test_cancelled_while_polling_tells_the_ca(pki, mock_server):
    """Shutdown: a transaction waiting for its next poll ends at once, and the CA is
    sent an error message (RFC 4210 5.3.21) so that it can forget the request."""
    import threading
    from datetime import datetime, timezone

    from agent.cmp.client import Cancellation

    server = mock_server("-poll_count", "3", "-check_after", "3600")
    cancellation = Cancellation()
    results = []
    long_wait = threading.Event()  # the pollRep's hour has begun
    started = datetime.now(timezone.utc)

    def on_poll(polling) -> None:
        if (polling.when - started).total_seconds() > 1000:
            long_wait.set()

    worker = threading.Thread(target=lambda: results.append(enroll(
        request(pki, server, total_timeout=None), cancellation=cancellation, on_poll=on_poll)))
    worker.start()
    assert long_wait.wait(20)
    cancellation.cancel()
    worker.join(10)
    assert not worker.is_alive()
    (result,) = results
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.CANCELLED
    assert result.messages.sent.get("error") == 1
    log = server.log_once_it_says("systemUnavail")
    assert "mock server received error" in log
    assert 'systemUnavail; StatusString: "the client is shutting down"' in log


def test_implicit_confirm_granted(pki, mock_server):
    server = mock_server("-grant_implicitconf")
    result = assert_enrolled(enroll(request(pki, server, implicit_confirm=True)), pki)
    assert result.messages.sent == {"ir": 1}
    assert result.messages.received == {"ip": 1}


def test_implicit_confirm_not_granted_falls_back_to_cert_conf(pki, mock_server):
    server = mock_server()
    result = assert_enrolled(enroll(request(pki, server, implicit_confirm=True)), pki)
    assert result.messages.sent == {"ir": 1, "certConf": 1}


def test_rejection_reported_with_reason(pki, mock_server):
    server = mock_server("-pkistatus", "2", "-failure", "9", "-statusstring", "key too weak")
    result = enroll(request(pki, server))
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.REJECTED
    assert result.status == "rejection"
    assert result.failure_info == ("badPOP",)
    assert result.status_texts == ("key too weak",)
    assert "badPOP" in str(result) and "key too weak" in str(result)


def test_error_message(pki, mock_server):
    server = mock_server("-send_error")
    result = enroll(request(pki, server))
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.ERROR_MESSAGE
    assert result.status == "rejection"
    assert "badRequest" in result.failure_info
    assert result.status_texts


def test_unprotected_response_refused(pki, mock_server):
    server = mock_server("-send_unprotected")
    result = enroll(request(pki, server))
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.PROTECTION
    assert "not protected" in result.message


def test_wrong_secret(pki, mock_server):
    server = mock_server()
    result = enroll(request(pki, server, mac=mac(secret="not-the-secret")))
    assert isinstance(result, Failed)
    # the CA refuses our MAC; its answer, keyed with its own secret, is not believed
    assert result.kind is FailureKind.ERROR_MESSAGE
    assert "not authenticated" in result.message


def test_wrong_verification_cert(pki, mock_server):
    server = mock_server(mac=False)
    signer = SignerCredentials(pki.client, pki.client_key)
    pinned_wrong = enroll(request(pki, server, mac=None, signer=signer, server_cert=pki.client))
    assert isinstance(pinned_wrong, Failed)
    assert pinned_wrong.kind is FailureKind.PROTECTION
    assert "signature protection is invalid" in pinned_wrong.message
    untrusted = enroll(request(pki, server, mac=None, signer=signer, trusted=(pki.other_root,)))
    assert isinstance(untrusted, Failed)
    assert untrusted.kind is FailureKind.PROTECTION
    assert "no trusted chain" in untrusted.message


def test_closed_port(pki):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = EnrollmentRequest(kind="ir", server_url=f"http://127.0.0.1:{port}/pkix/",
                               new_key=pki.new_key, subject=SUBJECT, mac=mac(), total_timeout=5)
    result = enroll(closed)
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.TRANSPORT
    assert "refused" in result.message
    assert result.messages.sent == {"ir": 1}


def test_wrong_path_is_a_transport_failure(pki, mock_server):
    server = mock_server()
    result = enroll(request(pki, server, server_url=f"http://127.0.0.1:{server.port}/other/"))
    assert isinstance(result, Failed)
    assert result.kind in (FailureKind.TRANSPORT, FailureKind.ERROR_MESSAGE)


def test_issued_cert_for_another_key_is_rejected(pki, mock_server, tmp_path):
    stranger = pki.issue_for(ec.generate_private_key(ec.SECP256R1()).public_key())
    server = mock_server(rsp_cert=str(write_pem(tmp_path / "stranger.pem", stranger)))
    result = enroll(request(pki, server))
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.CERTIFICATE_REJECTED
    assert "badCertTemplate" in result.message and "not for our public key" in result.message
    assert result.messages.sent == {"ir": 1, "certConf": 1}
    assert result.messages.received == {"ip": 1, "pkiconf": 1}
    # the mock logs the certConf's rejection
    rejection = "certificate rejected by client with PKIStatus: rejection"
    assert rejection in server.log_once_it_says(rejection)


def test_keep_alive_connection_reused_within_transaction(pki, mock_server):
    server = mock_server("-poll_count", "1", "-check_after", "0")
    with HttpTransport(server.url) as transport:
        result = assert_enrolled(enroll(request(pki, server), transport=transport), pki)
        assert result.messages.sent == {"ir": 1, "pollReq": 1, "certConf": 1}
        assert transport.connections_opened == 1
    # without keep-alive every message opens a connection
    with HttpTransport(server.url, keep_alive=False) as transport:
        assert_enrolled(enroll(request(pki, server), transport=transport), pki)
        assert transport.connections_opened == 3


def test_source_address_bound(pki, mock_server):
    server = mock_server()
    with HttpTransport(server.url, source_address="127.0.0.1") as transport:
        assert_enrolled(enroll(request(pki, server), transport=transport), pki)
        assert transport._conn.sock.getsockname()[0] == "127.0.0.1"


def test_total_timeout_when_server_never_answers(pki):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        silent = EnrollmentRequest(kind="ir", server_url=f"http://127.0.0.1:{port}/pkix/",
                                   new_key=pki.new_key, subject=SUBJECT, mac=mac(),
                                   total_timeout=0.5)
        result = enroll(silent)
    assert isinstance(result, Failed)
    assert result.kind is FailureKind.TIMEOUT
    assert "timed out" in result.message


@pytest.fixture
def tls_proxy(pki, mock_server):
    from cmp_mock_pki import TlsProxy

    server = mock_server()
    proxy = TlsProxy(server.port, *pki.tls_server())
    yield proxy
    proxy.stop()


def test_https(pki, tls_proxy):
    url = f"https://127.0.0.1:{tls_proxy.port}/pkix/"
    https = EnrollmentRequest(kind="ir", server_url=url, new_key=pki.new_key, subject=SUBJECT,
                              mac=mac(), tls_trusted=(pki.root,), total_timeout=20,
                              weak_algorithms=True)
    assert_enrolled(enroll(https), pki)
    # the certConf goes over the ir's TLS connection (nothing unread on it: TLS 1.3's
    # session tickets are no application data)
    with HttpTransport(url, tls_context=tls_context((pki.root,), None)) as transport:
        assert_enrolled(enroll(https, transport=transport), pki)
        assert transport.connections_opened == 1
    untrusted = enroll(replace(https, tls_trusted=(pki.other_root,)))
    assert isinstance(untrusted, Failed)
    assert untrusted.kind is FailureKind.TRANSPORT
    assert "TLS server certificate not trusted" in untrusted.message


def test_https_host_name_verification(pki, tls_proxy):
    """The TLS certificate must name the host: the URL's, or --tls-host's."""
    from cmp_mock_pki import TLS_SERVER_NAME

    url = f"https://127.0.0.1:{tls_proxy.port}/pkix/"
    https = EnrollmentRequest(kind="ir", server_url=url, new_key=pki.new_key, subject=SUBJECT,
                              mac=mac(), tls_trusted=(pki.root,), tls_host=TLS_SERVER_NAME,
                              total_timeout=20, weak_algorithms=True)
    assert_enrolled(enroll(https), pki)
    wrong = enroll(replace(https, tls_host="other-ca.example.net"))
    assert isinstance(wrong, Failed)
    assert wrong.kind is FailureKind.TRANSPORT
    assert "TLS server certificate not trusted" in wrong.message
    assert "Hostname mismatch" in wrong.message and "other-ca.example.net" in wrong.message


def test_https_with_client_certificate(pki, mock_server):
    """A CA that requires a TLS client certificate (RFC 6712 over TLS, mutual auth)."""
    from cmp_mock_pki import TlsProxy

    proxy = TlsProxy(mock_server().port, *pki.tls_server(), client_ca=pki.path("root.pem"))
    try:
        url = f"https://127.0.0.1:{proxy.port}/pkix/"
        https = EnrollmentRequest(kind="ir", server_url=url, new_key=pki.new_key, subject=SUBJECT,
                                  mac=mac(), tls_trusted=(pki.root,), total_timeout=20,
                                  weak_algorithms=True)
        anonymous = enroll(https)
        assert isinstance(anonymous, Failed)
        assert anonymous.kind is FailureKind.TRANSPORT
        # TLS 1.3: the server's certificate_required alert, or its close when the
        # alert lost the race with our request
        assert "TLS error: " in anonymous.message
        client = SignerCredentials(pki.client, pki.client_key)
        assert_enrolled(enroll(replace(https, tls_client=client)), pki)
    finally:
        proxy.stop()


def test_enroll_async(pki, mock_server):
    import asyncio

    from agent.cmp import enroll_async

    server = mock_server()
    assert_enrolled(asyncio.run(enroll_async(request(pki, server))), pki)


def test_a_transport_kept_across_transactions_reconnects_once_the_server_closed(pki, mock_server):
    """OpenSSL's mock closes the connection when a transaction ends; the next
    transaction's first message, sent on the kept-alive connection, finds it closed and
    goes once more over a new one."""
    server = mock_server()
    with HttpTransport(server.url) as transport:
        for _ in range(2):
            result = assert_enrolled(enroll(request(pki, server), transport=transport), pki)
            assert result.messages.sent == {"ir": 1, "certConf": 1}
        assert transport.connections_opened == 2
