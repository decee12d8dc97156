"""Seed fidelity: what the vendor guide says of regenerate, ``server url esc`` and
``source interface``, checked on the functions the request preparation uses."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.cmp import messages as m
from agent.cmp.client import EnrollmentRequest, MacCredentials, enroll
from agent.cmp.transaction import GeneralResponse
from agent.netconf.errors import RpcError
from agent.pki.enrollment import connection, regenerated_key, session_trust, unescape_url
from agent.pki.interfaces import interface_address, ipv6_addresses
from agent.pki.stores import CertificateStore, KeyStore, describe_key, generate_key
from testca_process import run_testca


@pytest.mark.parametrize("algorithm, bits, curve, key_bits, expected", [
    ("ec", 256, "p256", None, ("ec", 256, "p256")),
    ("ec", 384, "p384", 4096, ("ec", 384, "p384")),  # key-bits is for RSA only
    ("rsa", 3072, None, None, ("rsa", 3072, None)),  # keeps its length
    ("rsa", 2048, None, 3072, ("rsa", 3072, None)),  # regenerate 3072
])
def test_regenerate_keeps_the_algorithm_and_size(algorithm, bits, curve, key_bits, expected):
    current = generate_key(algorithm, bits, curve or "p256")
    new = regenerated_key(current, key_bits)
    info = describe_key("new", new)
    assert (info.algorithm, info.key_bits, info.curve) == expected
    assert describe_key("new", new).fingerprint != describe_key("old", current).fingerprint
    assert isinstance(new, ec.EllipticCurvePrivateKey if algorithm == "ec" else rsa.RSAPrivateKey)


def test_esc_decodes_backslash_x_escapes_only():
    assert unescape_url(r"http://ca.example.net/pkix/\x3fprofile=router") == \
        "http://ca.example.net/pkix/?profile=router"
    assert unescape_url(r"http://h/\x2Fa\x2fb") == "http://h//a/b"
    # nothing else is decoded: percent escapes, other backslashes, a short \x
    assert unescape_url(r"http://h/%3F/\n/\x3/\xZZ") == r"http://h/%3F/\n/\x3/\xZZ"


LISTING = (
    "fe8000000000000000fcfffffe000001 02 40 20 80     eth9\n"
    "20010db8000000000000000000000001 02 40 00 80     eth9\n"
    "00000000000000000000000000000001 01 80 10 80       lo\n"
)


def test_ipv6_addresses_global_first_link_local_with_zone(tmp_path):
    listing = tmp_path / "if_inet6"
    listing.write_text(LISTING)
    assert ipv6_addresses("eth9", listing) == ["2001:db8::1", "fe80::fc:ffff:fe00:1%eth9"]
    assert ipv6_addresses("lo", listing) == ["::1"]
    assert ipv6_addresses("eth0", listing) == []


def test_source_interface_uses_the_servers_family():
    # the loopback interface of this machine has 127.0.0.1 and ::1
    assert interface_address("lo", "127.0.0.1") == "127.0.0.1"
    assert interface_address("lo", "::1") == "::1"
    assert interface_address("lo", "ca.example.net") == "127.0.0.1"


def test_an_interface_with_only_ipv6_addresses(tmp_path):
    """The kernel's IPv6 listing of an interface that has no IPv4 address."""
    listing = tmp_path / "if_inet6"
    listing.write_text(LISTING)
    assert interface_address("eth9", "2001:db8::443", listing) == "2001:db8::1"
    assert interface_address("eth9", "[2001:db8::443]", listing) == "2001:db8::1"
    with pytest.raises(RpcError) as err:
        interface_address("nosuch0", "::1", listing)
    assert err.value.tag == "operation-failed" and "no IPv6 address" in err.value.message
    with pytest.raises(RpcError) as err:
        interface_address("nosuch0", None, listing)
    assert "does not exist" in err.value.message


def test_source_interface_for_a_url_without_http(pki_config, tmp_path):
    """The URL is parsed once: the source address is of the family of the very host
    connected to, also when ``http://`` is left out (as :class:`ServerUrl` allows; the
    YANG pattern asks for it, so this is a library caller's request)."""
    with run_testca(tmp_path / "ca6", host="::1") as ca6:
        committed = pki_config({"server-url": {"url": ca6.url}, "source-interface": "lo"})
        session = dataclasses.replace(committed.sessions["s1"], url=f"[::1]:{ca6.port}/pkix/")
        certs = CertificateStore(tmp_path / "certs")
        fields = connection(session, committed, KeyStore(tmp_path / "keys"), certs,
                            session_trust(session, certs), connect_timeout=10)
        assert fields["source_address"] == "::1"  # not lo's 127.0.0.1, which cannot reach ::1
        result = enroll(EnrollmentRequest(
            kind="genm", mac=MacCredentials(ca6.ref.encode(), ca6.secret.encode()),
            general=(m.InfoTypeAndValue(m.INFO_TYPES["caCerts"][0]),), **fields))
        assert isinstance(result, GeneralResponse), str(result)
