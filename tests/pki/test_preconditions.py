"""What a session lacks before a request may start, on configurations
committed through real datastores, so that the model's defaults apply as
they do in the agent (running's report-all view)."""

from __future__ import annotations

from agent.pki.config import TOP, PkiConfig
from agent.pki.preconditions import problems

COMPLETE_MAC = {
    "entity": "e1",
    "server-url": {"url": "http://127.0.0.1:1/pkix/"},
    "local-key-pair": {"name": "rsa1"},
    "message-authentication-code": {"reference-value": "ref", "secret-value": "insta-secret"},
}


def test_a_complete_mac_session_may_start(pki_config):
    pki = pki_config(COMPLETE_MAC)
    assert problems(pki.sessions["s1"], "ir", lambda n: True) == []


def test_every_missing_item_is_named_at_once(pki_config):
    pki = pki_config({"message-authentication-code": {"reference-value": "ref"}})
    found = problems(pki.sessions["s1"], "ir", lambda n: True)
    assert found == [
        "no server-url",
        "no local-key-pair name",
        "no entity (the subject of the request)",
        "message-authentication-code has no secret-value",
    ]


def test_signature_requests_need_an_authentication_cert_in_the_store(pki_config):
    pki = pki_config({**COMPLETE_MAC, "origin-authentication-method": "signature"})
    assert problems(pki.sessions["s1"], "ir", lambda n: True) == [
        "no authentication-cert: an IR by signature is signed with it"
    ]
    pki = pki_config({**COMPLETE_MAC, "authentication-cert": "id.pem", "verification-cert": "ca.pem"})
    assert problems(pki.sessions["s1"], "kur", lambda n: n == "ca.pem") == [
        "authentication-cert 'id.pem' is not in the certificate store"
    ]


def test_dangling_entity_is_reported(pki_config):
    """The leafref makes such a commit impossible; the check is defensive,
    so the view is given a running whose entity list lost the entry."""
    raw = pki_config.committed(COMPLETE_MAC)
    raw[TOP]["cmp-session"][0]["entity"] = "nope"
    pki = PkiConfig.from_raw(raw)
    assert problems(pki.sessions["s1"], "cr", lambda n: True) == [
        "entity 'nope' is not configured under /pki/entity",
        "no authentication-cert: a CR is signed with it",
    ]


def test_a_session_with_nothing_set_has_the_models_defaults(pki_config):
    """config.py repeats no default: these come from the YANG module's
    ``default`` statements through running's report-all view."""
    pki = pki_config({})
    session = pki.sessions["s1"]
    assert (pki.file_format, pki.weak_algorithms_enabled) == ("pem", True)
    assert (session.integrity_algorithm, session.origin_authentication) == (
        "hmac-sha256", "message-authentication-code")
    assert (session.auto_update, session.expire_percent) == (False, 50)
    assert (session.message_timeout, session.total_timeout) == (120, 0)
    assert not (session.url_escaped or session.regenerate or session.ignore_keyusage
                or session.implicit_confirm)


def test_a_kur_signer_is_valid_from_not_before_through_not_after_inclusive():
    """RFC 5280 4.1.2.5: at notAfter exactly the certificate may still sign a KUR; a
    microsecond later, or before notBefore, it may not (RFC 4210 5.3.5, RFC 9483 4.1.3)."""
    from datetime import datetime, timedelta, timezone

    from agent.pki.preconditions import signer_problem
    from agent.pki.stores import CertificateInfo

    start, end = (datetime(2026, 1, 1, tzinfo=timezone.utc),
                  datetime(2026, 2, 1, tzinfo=timezone.utc))
    cert = CertificateInfo("s1-local.pem", "CN=router1", "CN=CA", "1A2B", start, end, "00")
    assert signer_problem("s1", cert, start) is None
    assert signer_problem("s1", cert, end) is None
    expired = signer_problem("s1", cert, end + timedelta(microseconds=1))
    assert expired.startswith("authentication-cert s1-local.pem (CN=router1, serial 1A2B)"
                              " expired at 2026-02-01T00:00:00Z: a key update request (KUR)")
    assert "cmp-initial-request (CLI: pki cmp initial-request session s1)" in expired
    early = signer_problem("s1", cert, start - timedelta(microseconds=1))
    assert "is not valid before 2026-01-01T00:00:00Z" in early and "clock" in early
