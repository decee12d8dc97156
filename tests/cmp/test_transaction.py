"""The sans-IO transaction: responses OpenSSL's mock cannot be made to send.

The CA side here is built with our own message layer (which OpenSSL accepts, see
test_mock_server.py); these tests feed the state machine hostile or odd responses.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from cmp_mock_pki import issue, with_oid_replaced
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from lxml import etree

from agent.cmp import messages as m
from agent.cmp.client import EnrollmentRequest, MacCredentials, transaction_params
from agent.cmp.names import SubjectAltNames, parse_dn
from agent.cmp.protection import PbmParameters
from agent.cmp.transaction import (
    MAX_CHECK_AFTER, MIN_POLL_INTERVAL, Enrolled, EnrollmentTransaction, Failed, FailureKind, Finished,
    GeneralResponse, Revoked, Send,
)

SECRET = b"s3cret"


class FixedClock:
    def __init__(self):
        self.time = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def now(self):
        return self.time


def rng_counter():
    counter = itertools.count(1)
    return lambda size: next(counter).to_bytes(size, "big")


@pytest.fixture
def setup():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = parse_dn("/CN=CA")
    key = ec.generate_private_key(ec.SECP256R1())
    request = EnrollmentRequest(kind="ir", server_url="http://unused/", new_key=key,
                                subject=parse_dn("/CN=ee"), mac=MacCredentials(b"ref", SECRET),
                                total_timeout=30)
    rng = rng_counter()
    clock = FixedClock()
    tx = EnrollmentTransaction(transaction_params(request, rng), clock, rng)
    now = datetime.now(timezone.utc) - timedelta(days=1)
    cert = issue(parse_dn("/CN=ee"), key.public_key(), ca_name, ca_key, ca=False, not_before=now)
    return tx, cert, ca_key, ca_name, clock


def answer(request_bytes: bytes, body, *, protector="mac", transaction_id=None, recip_nonce=None,
           implicit=False):
    req = m.decode_message(request_bytes)
    fields = m.HeaderFields(
        sender=parse_dn("/CN=CA"), recipient=req.sender,
        transaction_id=transaction_id or req.transaction_id, sender_nonce=b"\x77" * 16,
        recip_nonce=recip_nonce or req.sender_nonce, implicit_confirm=implicit,
    )
    if protector == "mac":
        protector = m.MacProtector(b"ca", SECRET, "hmac-sha256", 100, lambda n: b"\x01" * n)
    return m.encode_message(fields, body, protector)


def ip(cert, status=0):
    return m.cert_rep_body("ip", m.CertRepContent((m.CertResponse(0, m.StatusInfo(status), cert),)))


def test_happy_path_and_counts(setup):
    tx, cert, *_ = setup
    first = tx.start()
    assert isinstance(first, Send) and first.delay == 0
    conf = tx.receive(answer(first.message, ip(cert)))
    assert isinstance(conf, Send)
    entries = m.cert_conf_entries(m.decode_message(conf.message))
    assert entries[0].cert_hash == m.cert_hash(cert)[0] and entries[0].status is None
    done = tx.receive(answer(conf.message, m.pki_conf_body()))
    assert isinstance(done, Finished) and isinstance(done.result, Enrolled)
    assert done.result.messages.sent == {"ir": 1, "certConf": 1}
    with pytest.raises(RuntimeError):
        tx.receive(b"")


@pytest.mark.parametrize("case,expected", [
    ("transaction_id", "transactionID differs"),
    ("recip_nonce", "recipNonce does not match"),
    ("body_type", "unexpected pollRep, expected ip"),
    ("garbage", "not a valid PKIMessage"),
])
def test_response_checks(setup, case, expected):
    tx, cert, *_ = setup
    request = tx.start().message
    data = {
        "transaction_id": lambda: answer(request, ip(cert), transaction_id=b"\x00" * 16),
        "recip_nonce": lambda: answer(request, ip(cert), recip_nonce=b"\x00" * 16),
        "body_type": lambda: answer(request, m.poll_rep_body([m.PollResponse(0, 1)])),
        "garbage": lambda: b"<html>oops</html>",
    }[case]()
    done = tx.receive(data)
    assert isinstance(done, Finished) and isinstance(done.result, Failed)
    assert done.result.kind is FailureKind.PROTOCOL and expected in done.result.message
    assert tx.finished


def test_hostile_iteration_count_is_capped(setup):
    tx, cert, *_ = setup
    request = tx.start().message

    class Hostile(m.MacProtector):
        def algorithm(self):
            params = PbmParameters(b"salt", "2.16.840.1.101.3.4.2.1", 10**9, "1.2.840.113549.2.9")
            return m.ProtectionAlgorithm("1.2.840.113533.7.66.13", m.encode_pbm_parameters(params))

        def protect(self, algorithm, part):
            return b"\x00" * 32

    done = tx.receive(answer(request, ip(cert), protector=Hostile(b"ca", SECRET)))
    assert done.result.kind is FailureKind.PROTECTION
    assert "PBM iteration count 1000000000 above the maximum 100000" in done.result.message


def test_unprotected_error_reported_not_believed(setup):
    tx, *_ = setup
    request = tx.start().message
    body = m.error_body(m.ErrorContent(m.StatusInfo(2, ("go away",), (25,))))
    done = tx.receive(answer(request, body, protector=None))
    result = done.result
    assert result.kind is FailureKind.ERROR_MESSAGE
    assert "not authenticated" in result.message
    assert result.failure_info == ("systemFailure",) and result.status_texts == ("go away",)


def test_waiting_then_timeout_by_clock(setup):
    tx, cert, _, _, clock = setup
    request = tx.start().message
    poll = tx.receive(answer(request, ip(cert, status=3)))
    assert isinstance(poll, Send) and poll.delay == MIN_POLL_INTERVAL
    assert m.poll_req_ids(m.decode_message(poll.message)) == [0]
    again = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(0, 10)])))
    assert isinstance(again, Send) and again.delay == 10
    assert poll.reason == again.reason == ()  # the CA wrote nothing with "waiting"
    clock.time += timedelta(seconds=25)
    done = tx.receive(answer(again.message, m.poll_rep_body([m.PollResponse(0, 10)])))
    assert done.result.kind is FailureKind.TIMEOUT


def test_check_after_zero_waits_the_minimum(setup):
    tx, cert, *_ = setup
    poll = tx.receive(answer(tx.start().message, ip(cert, status=3)))
    again = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(0, 0)])))
    assert isinstance(again, Send) and again.body_type == "pollReq"
    assert again.delay == MIN_POLL_INTERVAL == 1.0


def test_error_message_with_status_waiting_polls(setup):
    """RFC 9483 4.4: "waiting" may come in an error message; it is polled like a pollRep."""
    tx, cert, *_ = setup
    waiting = m.error_body(m.ErrorContent(m.StatusInfo(3, ("queued for approval",)),
                                          details=("RA on duty at 9",)))
    poll = tx.receive(answer(tx.start().message, waiting))
    assert isinstance(poll, Send) and poll.body_type == "pollReq"
    assert m.poll_req_ids(m.decode_message(poll.message)) == [0]
    assert poll.reason == ("queued for approval", "RA on duty at 9")  # shown while polling
    again = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(0, 5, ("queued",))])))
    assert isinstance(again, Send) and again.reason == ("queued",)  # the pollRep's reason
    conf = tx.receive(answer(again.message, ip(cert)))
    assert isinstance(conf, Send) and conf.body_type == "certConf"
    assert conf.reason == ()


def test_unauthenticated_waiting_error_does_not_poll(setup):
    tx, *_ = setup
    waiting = m.error_body(m.ErrorContent(m.StatusInfo(3)))
    done = tx.receive(answer(tx.start().message, waiting, protector=None))
    assert isinstance(done, Finished) and done.result.kind is FailureKind.ERROR_MESSAGE


def test_abandon_sends_an_error_message_bound_to_the_transaction(setup):
    tx, cert, *_ = setup
    poll = tx.receive(answer(tx.start().message, ip(cert, status=3)))
    farewell, done = tx.abandon("the client is shutting down")
    sent = m.decode_message(farewell.message)
    assert sent.body_type == "error" and sent.transaction_id == tx.transaction_id
    assert sent.recip_nonce == b"\x77" * 16  # the CA's last senderNonce
    content = m.error_content(sent)
    assert content.status.status_name == "rejection"
    assert content.status.failure_names == ("systemUnavail",)
    assert content.status.texts == ("the client is shutting down",)
    assert done.result.kind is FailureKind.CANCELLED and tx.finished
    assert poll.body_type == "pollReq"


def test_abandon_before_start_sends_nothing(setup):
    tx, *_ = setup
    farewell, done = tx.abandon("stop")
    assert farewell is None and done.result.kind is FailureKind.CANCELLED


def test_mismatching_cert_rejected_in_cert_conf(setup):
    tx, cert, ca_key, ca_name, _ = setup
    other = issue(parse_dn("/CN=ee"), ec.generate_private_key(ec.SECP256R1()).public_key(),
                  ca_name, ca_key, ca=False)
    request = tx.start().message
    conf = tx.receive(answer(request, ip(other)))
    entry = m.cert_conf_entries(m.decode_message(conf.message))[0]
    assert entry.status.status_name == "rejection" and entry.status.failure_names == ("badCertTemplate",)
    done = tx.receive(answer(conf.message, m.pki_conf_body()))
    assert done.result.kind is FailureKind.CERTIFICATE_REJECTED
    assert "not for our public key" in done.result.message


def test_ed25519_cert_confirmed_with_hash_alg_and_pvno_3(setup):
    tx, _, _, ca_name, _ = setup
    ca_ed = ed25519.Ed25519PrivateKey.generate()
    cert = issue(parse_dn("/CN=ee"), tx.params.pop_key.public_key(), ca_name, ca_ed, ca=False)
    request = tx.start().message
    conf = m.decode_message(tx.receive(answer(request, ip(cert))).message)
    assert conf.pvno == 3
    entry = m.cert_conf_entries(conf)[0]
    assert entry.hash_alg == "2.16.840.1.101.3.4.2.3"
    assert entry.cert_hash == m.cert_hash(cert)[0]


def test_implicit_confirm_only_when_granted(setup):
    tx, cert, *_ = setup
    tx = EnrollmentTransaction(replace(tx.params, implicit_confirm=True), FixedClock(), rng_counter())
    request = tx.start().message
    assert m.decode_message(request).implicit_confirm
    done = tx.receive(answer(request, ip(cert), implicit=True))
    assert isinstance(done.result, Enrolled) and done.result.messages.sent == {"ir": 1}


def reply(request_bytes: bytes, body, **header) -> bytes:
    """A MAC-protected answer with the header fields in *header* changed."""
    req = m.decode_message(request_bytes)
    fields = dict(sender=parse_dn("/CN=CA"), recipient=req.sender, transaction_id=req.transaction_id,
                  sender_nonce=b"\x77" * 16, recip_nonce=req.sender_nonce)
    fields.update(header)
    protector = m.MacProtector(b"ca", SECRET, "hmac-sha256", 100, lambda n: b"\x01" * n)
    return m.encode_message(m.HeaderFields(**fields), body, protector)


@pytest.mark.parametrize("header,expected", [
    ({"pvno": 1}, "ip refused: pvno 1 is not 2 or 3"),
    ({"pvno": 4}, "ip refused: pvno 4 is not 2 or 3"),
    ({"sender_nonce": b"\x77" * 8}, "ip refused: senderNonce of 64 bits is shorter than 128 bits"),
])
def test_header_checks_name_what_failed(setup, header, expected):
    """RFC 9480 2.20 (pvno 2 or 3), RFC 9483 3.1 (nonces of at least 128 bits)."""
    tx, cert, *_ = setup
    done = tx.receive(reply(tx.start().message, ip(cert), **header))
    assert isinstance(done.result, Failed) and done.result.kind is FailureKind.PROTOCOL
    assert done.result.message == expected


def test_pvno_3_is_accepted(setup):
    tx, cert, *_ = setup
    assert isinstance(tx.receive(reply(tx.start().message, ip(cert), pvno=3)), Send)


@pytest.mark.parametrize("missing", ["recipNonce", "transactionID"])
def test_error_without_recip_nonce_or_transaction_id_reports_the_cas_own_words(setup, missing):
    """An error about a request the CA could not parse has no recipNonce, perhaps no
    transactionID either: what it says matters, not a nonce or transactionID mismatch."""
    tx, *_ = setup
    bit = m.FAILURE_BIT_NAMES.index("badDataFormat")
    error = m.error_body(m.ErrorContent(m.StatusInfo(2, ("cannot parse the request",), (bit,))))
    header = {"recip_nonce": None} if missing == "recipNonce" else {"transaction_id": None}
    done = tx.receive(reply(tx.start().message, error, **header))
    result = done.result
    assert result.kind is FailureKind.ERROR_MESSAGE
    assert result.message == f"the CA sent an error message (not bound to our request: it has no {missing})"
    assert result.status_texts == ("cannot parse the request",)
    assert result.failure_info == ("badDataFormat",)
    assert result.failure_info == ("badDataFormat",) and result.status == "rejection"


def other_transaction(kind: str, **fields) -> EnrollmentTransaction:
    """An rr or genm transaction under the fixture's MAC."""
    rng = rng_counter()
    request = EnrollmentRequest(kind=kind, server_url="http://unused/", subject=parse_dn("/CN=ee"),
                                mac=MacCredentials(b"ref", SECRET), total_timeout=30, **fields)
    return EnrollmentTransaction(transaction_params(request, rng), FixedClock(), rng)


def waiting_error() -> bytes:
    return m.error_body(m.ErrorContent(m.StatusInfo(3, ("queued for approval",))))


@pytest.mark.parametrize("kind", ["genm", "rr"])
def test_waiting_error_to_genm_or_rr_polls_with_cert_req_id_minus_1(setup, kind):
    """RFC 9483 4.4: a response other than a CertResponse that is delayed comes as an error
    message of status waiting; the pollReq and pollRep then carry certReqId -1, and the
    final answer (genp, rp) ends the polling."""
    _, cert, *_ = setup
    if kind == "genm":
        tx = other_transaction("genm", general=(m.InfoTypeAndValue(m.INFO_TYPES["caCerts"][0]),))
        final = m.genp_body([m.InfoTypeAndValue(m.INFO_TYPES["caCerts"][1], m.ca_certs_value([cert]))])
        result_type = GeneralResponse
    else:
        tx = other_transaction("rr", old_certificate=cert)
        final = m.rp_body(m.RevocationResponse((m.StatusInfo(0),)))
        result_type = Revoked
    poll = tx.receive(answer(tx.start().message, waiting_error()))
    assert isinstance(poll, Send) and poll.body_type == "pollReq"
    assert m.poll_req_ids(m.decode_message(poll.message)) == [-1]
    again = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(-1, 5)])))
    assert isinstance(again, Send) and again.delay == 5
    assert m.poll_req_ids(m.decode_message(again.message)) == [-1]
    done = tx.receive(answer(again.message, final))
    assert isinstance(done, Finished) and isinstance(done.result, result_type)
    assert done.result.messages.sent == {kind: 1, "pollReq": 2}


def test_waiting_error_to_cert_conf_polls_for_the_pki_conf(setup):
    """RFC 9483 4.4: a certConf answered with an error of status waiting is polled with
    certReqId -1 until the pkiConf comes."""
    tx, cert, *_ = setup
    conf = tx.receive(answer(tx.start().message, ip(cert)))
    assert conf.body_type == "certConf"
    poll = tx.receive(answer(conf.message, waiting_error()))
    assert isinstance(poll, Send) and m.poll_req_ids(m.decode_message(poll.message)) == [-1]
    again = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(-1, 2)])))
    assert isinstance(again, Send) and again.body_type == "pollReq"
    unexpected = tx.receive(answer(again.message, ip(cert)))  # not what a certConf awaits
    assert unexpected.result.message == "unexpected ip, expected pollRep or pkiconf"
    tx2 = EnrollmentTransaction(tx.params, FixedClock(), rng_counter())
    conf = tx2.receive(answer(tx2.start().message, ip(cert)))
    poll = tx2.receive(answer(conf.message, waiting_error()))
    done = tx2.receive(answer(poll.message, m.pki_conf_body()))
    assert isinstance(done.result, Enrolled) and done.result.messages.sent == {
        "ir": 1, "certConf": 1, "pollReq": 1}


def test_poll_rep_for_another_cert_req_id_is_refused(setup):
    tx = other_transaction("genm", general=(m.InfoTypeAndValue(m.INFO_TYPES["caCerts"][0]),))
    poll = tx.receive(answer(tx.start().message, waiting_error()))
    done = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(0, 5)])))
    assert done.result.kind is FailureKind.PROTOCOL
    assert done.result.message == "pollRep without certReqId -1"


def test_non_200_answer_to_rr_with_a_certificate_response_body_fails_cleanly(setup):
    """RFC 6712 3.3: an HTTP status other than 200 is a transport failure; a body that is
    a certificate response, which an rr cannot have asked for, adds nothing to it."""
    _, cert, *_ = setup
    tx = other_transaction("rr", old_certificate=cert)
    request = tx.start().message
    done = tx.transport_failed("HTTP 500 instead of 200", body=answer(request, ip(cert, status=2)))
    assert done.result.kind is FailureKind.TRANSPORT
    assert done.result.message == "HTTP 500 instead of 200" and done.result.status is None


@pytest.mark.parametrize("check_after,shown", [
    (MAX_CHECK_AFTER + 1, f"{MAX_CHECK_AFTER + 1}s"),
    (2**62, f"{2**62}s"),
    (10**5000, "a 16610-bit number of seconds"),
], ids=["a-year-and-a-second", "2**62", "10**5000"])
def test_check_after_beyond_a_year_fails_the_transaction(setup, check_after, shown):
    """RFC 4210 5.3.22 checkAfter is an INTEGER of any size: without a total timeout a
    hostile one must fail the transaction, not overflow the wait (float, Event.wait,
    datetime) or hold it for centuries."""
    tx, cert, *_ = setup
    tx = EnrollmentTransaction(replace(tx.params, total_timeout=None), FixedClock(), rng_counter())
    poll = tx.receive(answer(tx.start().message, ip(cert, status=3)))
    done = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(0, check_after)])))
    assert isinstance(done, Finished) and done.result.kind is FailureKind.PROTOCOL
    assert done.result.message == (f"the CA asks to poll again in {shown}, longer than a year"
                                   f" ({MAX_CHECK_AFTER}s): not a credible checkAfter")


def test_check_after_of_a_year_is_honoured_without_total_timeout(setup):
    tx, cert, *_ = setup
    tx = EnrollmentTransaction(replace(tx.params, total_timeout=None), FixedClock(), rng_counter())
    poll = tx.receive(answer(tx.start().message, ip(cert, status=3)))
    again = tx.receive(answer(poll.message, m.poll_rep_body([m.PollResponse(0, MAX_CHECK_AFTER)])))
    assert isinstance(again, Send) and again.delay == MAX_CHECK_AFTER


def test_issued_certificate_with_an_unknown_key_type_is_rejected_in_cert_conf(setup):
    """RFC 9483 4.1.1: the certificate must be for our key; one of a key type we do not know
    cannot be, and is rejected (badCertTemplate) instead of raising UnsupportedAlgorithm."""
    tx, cert, *_ = setup
    odd = with_oid_replaced(cert, "1.2.840.10045.2.1", "1.2.840.10045.2.9")  # id-ecPublicKey
    conf = tx.receive(answer(tx.start().message, ip(odd)))
    assert isinstance(conf, Send) and conf.body_type == "certConf"
    entry = m.cert_conf_entries(m.decode_message(conf.message))[0]
    assert entry.status.failure_names == ("badCertTemplate",)
    done = tx.receive(answer(conf.message, m.pki_conf_body()))
    assert done.result.kind is FailureKind.CERTIFICATE_REJECTED
    assert "not for our public key" in done.result.message


def test_issued_certificate_with_an_unknown_signature_algorithm_is_confirmed_by_sha256(setup):
    """RFC 9480 2.10: certHash with the hash named in hashAlg (pvno 3) when the
    certificate's signature algorithm gives none we know, instead of raising
    UnsupportedAlgorithm out of the transaction."""
    tx, cert, *_ = setup
    odd = with_oid_replaced(cert, "1.2.840.10045.4.3.2", "1.2.840.10045.4.3.9")  # ecdsa-with-SHA256
    conf = m.decode_message(tx.receive(answer(tx.start().message, ip(odd))).message)
    assert conf.body_type == "certConf" and conf.pvno == 3
    entry = m.cert_conf_entries(conf)[0]
    assert entry.hash_alg == "2.16.840.1.101.3.4.2.1"
    digest = hashes.Hash(hashes.SHA256())
    digest.update(odd.public_bytes(serialization.Encoding.DER))
    assert entry.cert_hash == digest.finalize() and entry.status is None


def with_duplicate_extension(cert):
    """*cert* with its keyUsage turned into a second subjectKeyIdentifier (RFC 5280 4.2:
    an extension appears at most once); cryptography loads it and raises only once its
    extensions are read."""
    return with_oid_replaced(cert, "2.5.29.15", "2.5.29.14")


def test_issued_certificate_whose_extensions_cannot_be_read_is_rejected_when_a_san_was_asked(setup):
    """RFC 9483 4.1.1: with status accepted the subjectAltName must be the one asked for; a
    certificate whose extensions do not parse cannot show it and is rejected in certConf,
    instead of DuplicateExtension escaping the transaction."""
    tx, cert, *_ = setup
    params = replace(tx.params, request=replace(tx.params.request, san=SubjectAltNames(
        dns=("ee.example",)).to_extension()))
    tx = EnrollmentTransaction(params, FixedClock(), rng_counter())
    conf = tx.receive(answer(tx.start().message, ip(with_duplicate_extension(cert))))
    entry = m.cert_conf_entries(m.decode_message(conf.message))[0]
    assert entry.status.failure_names == ("badCertTemplate",)
    done = tx.receive(answer(conf.message, m.pki_conf_body()))
    assert done.result.kind is FailureKind.CERTIFICATE_REJECTED
    assert done.result.message == (
        "rejected the issued certificate (badCertTemplate): the issued certificate's extensions"
        " cannot be read (Duplicate 2.5.29.14 extension found), so neither can its subjectAltName")


def test_a_forged_sender_name_is_shown_escaped(setup):
    """A forged answer names a sender with a terminal escape sequence: the failure says
    which sender, with what is not printable escaped (CLI, log, the agent's reason)."""
    tx, cert, ca_key, ca_name, clock = setup
    anchor = issue(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
    tx = EnrollmentTransaction(replace(tx.params, verifier=replace(tx.params.verifier, trusted=(anchor,))),
                               clock, rng_counter())
    request = m.decode_message(tx.start().message)
    forger = ec.generate_private_key(ec.SECP256R1())
    fields = m.HeaderFields(parse_dn("/CN=CA\x1b[2J"), request.sender, request.transaction_id,
                            b"\x05" * 16, recip_nonce=request.sender_nonce)
    done = tx.receive(m.encode_message(fields, ip(cert), m.SignatureProtector(cert, forger)))
    assert done.result.kind is FailureKind.PROTECTION
    assert "\x1b" in done.result.message and str(done.result).isprintable()
    assert str(done.result) == ("protection: ip refused: no certificate of the sender CN=CA\\x1b[2J"
                                " in the message's extraCerts or on the device")


def test_the_error_message_of_an_abandoned_transaction_is_reported_as_sent(setup):
    """The agent counts what it sends by body type; the error message that ends a
    transaction (RFC 4210 5.3.21) has its leaf in cmp-statistics/messages-sent."""
    from agent import PKI_NS
    from agent.pki.service import PkiService
    from agent.pki.statistics import CmpStatistics

    tx, cert, _, _, clock = setup
    tx.receive(answer(tx.start().message, ip(cert, status=3)))
    _, done = tx.abandon("the client is shutting down")
    stats = CmpStatistics(discontinuity_time=clock.now())
    PkiService._count(stats, done.result)
    sent = stats.to_xml("statistics").find(f"{{{PKI_NS}}}messages-sent")
    assert {etree.QName(el).localname: el.text for el in sent} == {
        "ir": "1", "cr": "0", "kur": "0", "cert-conf": "0", "poll-req": "1", "p10cr": "0",
        "rr": "0", "genm": "0", "error": "1"}
