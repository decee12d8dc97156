from agent.pki.config import PkiConfig
from agent.pki.preconditions import problems

ENTITY = {"name": "e1", "common-name": "router1"}


def config(session: dict) -> PkiConfig:
    raw = {"cmp-agent-pki:pki": {"entity": [ENTITY], "cmp-session": [{"name": "s1", **session}],
}}
    return PkiConfig.from_raw(raw)


COMPLETE_MAC = {
    "entity": "e1",
    "server-url": {"url": "http://127.0.0.1:1/pkix/"},
    "local-key-pair": {"name": "rsa1"},
    "message-authentication-code": {"reference-value": "ref", "secret-value": "$cmp$1$x"},
}


def test_a_complete_mac_session_may_start():
    pki = config(COMPLETE_MAC)
    assert problems(pki.sessions["s1"], "ir", lambda n: True) == []


def test_every_missing_item_is_named_at_once():
    pki = config({"message-authentication-code": {"reference-value": "ref"}})
    found = problems(pki.sessions["s1"], "ir", lambda n: True)
    assert found == [
        "no server-url",
        "no local-key-pair name",
        "no entity (the subject of the request)",
        "message-authentication-code has no secret-value",
    ]


def test_signature_requests_need_an_authentication_cert_in_the_store():
    pki = config({**COMPLETE_MAC, "origin-authentication-method": "signature"})
    assert problems(pki.sessions["s1"], "ir", lambda n: True) == [
        "no authentication-cert: an IR by signature is signed with it"
    ]
    pki = config({**COMPLETE_MAC, "authentication-cert": "id.pem", "verification-cert": "ca.pem"})
    assert problems(pki.sessions["s1"], "kur", lambda n: n == "ca.pem") == [
        "authentication-cert 'id.pem' is not in the certificate store"
    ]


def test_dangling_entity_is_reported():
    pki = config({**COMPLETE_MAC, "entity": "nope"})
    assert problems(pki.sessions["s1"], "cr", lambda n: True) == [
        "entity 'nope' is not configured under /pki/entity",
        "no authentication-cert: a CR is signed with it",
    ]
