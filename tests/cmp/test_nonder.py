"""Certificates whose extensions are not DER (README "Trust model"): refused by name with
the cause, never accepted, wherever they reach cryptography's extension parsing or path
validation: the issued certificate, the CMP signer, CA certificates, trust anchors.

Two sources: Insta Certifier's certificate in tests/data/vectors/cmp/insta_ip_pbm.der (a
basicConstraints with ``cA FALSE`` written out), and certificates of the test PKI encoded
the same way (:func:`cmp_mock_pki.with_extension_value`), served by OpenSSL's mock CA.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cmp_mock_pki import EXPLICIT_CA_FALSE, REFERENCE, SECRET, _name, with_extension_value, write_pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1_alt_modules import rfc5280, rfc9480
from test_cli import run_cli
from test_mock_server import request

from agent.cmp.client import SignerCredentials, enroll
from agent.cmp.pool import CertificatePool
from agent.cmp.protection import ProtectionError
from agent.cmp.transaction import Failed, FailureKind
from agent.cmp.verify import ResponseVerifier, check_cmp_signer, validate_path

VECTORS = Path(__file__).resolve().parents[1] / "data" / "vectors" / "cmp"
#: inside the Insta certificate's validity (2018-02-06 to 2018-05-07) and its CA's (to 2025-12-31)
INSTA_TIME = datetime.datetime(2018, 3, 1, tzinfo=datetime.timezone.utc)
#: what cryptography 50 says of a basicConstraints with cA FALSE written out
ENCODED_DEFAULT = 'ParseError { kind: EncodedDefault, location: ["BasicConstraints::ca"] }'
ADVICE = ("the CA must re-issue it; cmp-agent's path validation (cryptography) refuses"
          " non-DER certificates")
BC = ExtensionOID.BASIC_CONSTRAINTS.dotted_string
NC = ExtensionOID.NAME_CONSTRAINTS.dotted_string


def refusal(role: str, cert: x509.Certificate, parse_error: str = ENCODED_DEFAULT) -> str:
    return (f"{role} {cert.subject.rfc4514_string()} (serial {cert.serial_number:X}) is refused:"
            f" its extensions are not DER-encoded (error parsing asn1 value: {parse_error}); {ADVICE}")


def insta() -> tuple[x509.Certificate, x509.Certificate]:
    """The issued certificate and the CA certificate (extraCerts) of Insta's ip, read
    with pyasn1, independently of the agent's decoder."""
    message, _ = decoder.decode((VECTORS / "insta_ip_pbm.der").read_bytes(),
                                asn1Spec=rfc9480.PKIMessage())
    tagged = message["body"]["ip"]["response"][0]["certifiedKeyPair"]["certOrEncCert"]["certificate"]
    untagged = rfc5280.Certificate()  # certOrEncCert's certificate is [0]-tagged
    for component in tagged:
        untagged[component] = tagged[component]
    issued = encoder.encode(untagged)
    ca = encoder.encode(message["extraCerts"][0])
    return x509.load_der_x509_certificate(issued), x509.load_der_x509_certificate(ca)


def test_insta_issued_certificate_refused_by_name_and_cause():
    issued, ca = insta()
    # the bytes as Insta signed them (the extension value is an OCTET STRING to pyasn1)
    ca.public_key().verify(issued.signature, issued.tbs_certificate_bytes, padding.PKCS1v15(),
                           hashes.SHA256())
    with pytest.raises(ValueError, match="EncodedDefault"):
        issued.extensions  # what cryptography says, as of 50
    ca.extensions  # its CA's are DER
    with pytest.raises(ProtectionError) as raised:
        ResponseVerifier(trusted=[ca]).validate_issued(issued, [ca], [], False, INSTA_TIME)
    assert str(raised.value).startswith(refusal("issued certificate", issued))
    assert "(serial 6DC8CAD)" in str(raised.value) and "CN=test2" in str(raised.value)


@pytest.fixture(scope="module")
def explicit_default(pki) -> x509.Certificate:
    """The mock's certificate for the new key, with Insta's encoding of basicConstraints."""
    return with_extension_value(pki.issued, pki.root_key, BC, EXPLICIT_CA_FALSE)


def test_crafted_certificate_is_like_insta_s(pki, explicit_default):
    explicit_default.verify_directly_issued_by(pki.root)  # a valid signature
    assert bytes.fromhex("0603551d130101ff0405" + EXPLICIT_CA_FALSE.hex()) in \
        explicit_default.tbs_certificate_bytes
    with pytest.raises(ValueError, match="EncodedDefault"):
        explicit_default.extensions


def test_issued_certificate_rejected_in_cert_conf(pki, mock_server, explicit_default, tmp_path):
    """Through OpenSSL's mock CA: rejection in certConf, with or without a trust anchor
    (the MAC-protected caPubs are anchors in one, --trusted in the other)."""
    server = mock_server(rsp_cert=str(write_pem(tmp_path / "bad.pem", explicit_default)))
    for overrides in ({}, {"trusted": (pki.root,)}):
        result = enroll(request(pki, server, **overrides))
        assert isinstance(result, Failed) and result.kind is FailureKind.CERTIFICATE_REJECTED
        assert refusal("issued certificate", explicit_default) in result.message
        assert result.messages.sent == {"ir": 1, "certConf": 1}


def test_signer_refused(pki, mock_server, tmp_path):
    """A CMP signer certificate from such a CA (an RA's, say), pinned or on a path."""
    signer = with_extension_value(pki.server, pki.root_key, BC, EXPLICIT_CA_FALSE)
    server = mock_server(mac=False, srv_cert=str(write_pem(tmp_path / "srv.pem", signer)))
    credentials = SignerCredentials(pki.client, pki.client_key)
    for overrides in ({"server_cert": signer}, {"trusted": (pki.root,)}):
        result = enroll(request(pki, server, mac=None, signer=credentials, **overrides))
        assert isinstance(result, Failed) and result.kind is FailureKind.PROTECTION, str(result)
        assert refusal("signer", signer) in result.message
    with pytest.raises(ProtectionError, match="is refused: its extensions are not DER"):
        check_cmp_signer(signer)


@pytest.fixture(scope="module")
def constrained(pki):
    """(sub CA, its key, the same with NameConstraints' minimum 0 written out, a certificate
    it issued): a CA certificate that is not DER."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    sub = (x509.CertificateBuilder().subject_name(_name((NameOID.COMMON_NAME, "Test Sub CA"),))
           .issuer_name(pki.root.subject).public_key(key.public_key()).serial_number(0x5AB)
           .not_valid_before(now - datetime.timedelta(hours=1))
           .not_valid_after(now + datetime.timedelta(days=30))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .add_extension(x509.NameConstraints([x509.DNSName("example.net")], None), critical=True)
           .sign(pki.root_key, hashes.SHA256()))
    subtree = b"\x82\x0bexample.net" + b"\x80\x01\x00"  # base, minimum [0] 0 (its DEFAULT)
    value = bytes([0x30, len(subtree) + 4, 0xA0, len(subtree) + 2, 0x30, len(subtree)]) + subtree
    bad = with_extension_value(sub, pki.root_key, NC, value)
    ee = (x509.CertificateBuilder().subject_name(_name((NameOID.COMMON_NAME, "r1.example.net"),))
          .issuer_name(sub.subject).public_key(pki.new_key.public_key()).serial_number(7)
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .sign(key, hashes.SHA256()))
    return sub, bad, ee


def test_ca_certificate_and_trust_anchor_refused_by_name(pki, constrained):
    sub, bad, ee = constrained
    now = datetime.datetime.now(datetime.timezone.utc)
    nc_error = 'ParseError { kind: EncodedDefault, location: ["NameConstraints::permitted_subtrees", 0, "GeneralSubtree::minimum"] }'
    assert validate_path(ee, [sub], [pki.root], now)[1] == sub  # DER: a path
    with pytest.raises(ProtectionError) as raised:
        validate_path(ee, [bad], [pki.root], now, "issued certificate")
    assert str(raised.value) == ("no trusted chain for CN=r1.example.net: "
                                 + refusal("CA certificate", bad, nc_error))
    with pytest.raises(ProtectionError) as raised:
        validate_path(ee, [], [bad], now)
    assert str(raised.value).endswith(refusal("trust anchor", bad, nc_error))
    # another certificate of the same CA that is DER still makes the path
    assert validate_path(ee, [bad, sub], [pki.root], now)[1] == sub


def test_store_offers_such_a_ca_certificate_so_that_it_is_named(pki, constrained):
    """A certificate of the device's store (a CertificatePool) that is not DER cannot say
    it is a CA's: offered as an intermediate, it is refused by name, not as missing."""
    _, bad, ee = constrained
    pool = CertificatePool.of([bad, pki.client])
    assert pool.intermediates() == [bad]
    with pytest.raises(ProtectionError, match=r"CA certificate CN=Test Sub CA \(serial 5AB\) is refused"):
        ResponseVerifier(trusted=[pki.root], untrusted=pool).validate_issued(
            ee, [], [], False, datetime.datetime.now(datetime.timezone.utc))


def test_cli_refuses_such_trust_anchors_and_issued_certificates(pki, mock_server, explicit_default,
                                                                  tmp_path):
    bad = write_pem(tmp_path / "bad.pem", explicit_default)
    base = ("ir", "--ref", REFERENCE, "--secret", f"pass:{SECRET}", "--newkey", pki.path("new.key"),
            "--subject", "/CN=router1.example.net", "--certout", "cert.pem", "--weak-algorithms")
    for option, role in (("--trusted", "trust anchor"), ("--srvcert", "server certificate")):
        done = run_cli(*base, "--server", "http://127.0.0.1:1/pkix/", option, str(bad), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert f"{option}: {bad}: {refusal(role, explicit_default)}" in done.stderr
    # our own certificate: to sign with, to ask for its CRL
    nowhere = ("--server", "http://127.0.0.1:1/pkix/")
    signing = run_cli("cr", *nowhere, "--cert", str(bad), "--key", pki.path("new.key"),
                      "--srvcert", pki.path("server.pem"), "--newkey", pki.path("new.key"),
                      "--subject", "/CN=x", cwd=tmp_path)
    naming = run_cli("genm", "--infotype", "crlStatusList", *nowhere, "--crlcert", str(bad),
                     "--ref", REFERENCE, "--secret", f"pass:{SECRET}", cwd=tmp_path)
    for option, done in (("--cert", signing), ("--crlcert", naming)):
        assert done.returncode == 2, done.stderr
        assert f"{option}: {bad}: {refusal('certificate', explicit_default)}" in done.stderr
    server = mock_server(rsp_cert=str(bad))
    done = run_cli(*base, "--server", server.url, "--trusted", pki.path("root.pem"), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert refusal("issued certificate", explicit_default) in done.stderr
    assert not (tmp_path / "cert.pem").exists()


def test_cli_refuses_every_other_certificate_file_that_is_not_der(pki, mock_server, explicit_default,
                                                                 tmp_path):
    """The other certificate file options load through the same check, by option, file,
    name and cause, with exit 2 before anything is sent: intermediates (--untrusted), the
    chain we send (--extracerts: a CA would read what we would refuse in its answer), the
    TLS anchors and client certificate (OpenSSL would take them as they are), the
    certificate to revoke or update (--oldcert) and the root trusted now (--oldwithold).
    A file is refused for any certificate in it, not only the first."""
    bad = write_pem(tmp_path / "bad.pem", pki.root, explicit_default)  # a DER one first
    server = mock_server()  # never reached: every refusal comes first
    mac = ("--ref", REFERENCE, "--secret", f"pass:{SECRET}", "--weak-algorithms")
    ir = ("ir", "--server", server.url, *mac, "--newkey", pki.path("new.key"), "--subject", "/CN=x")
    https = ("ir", "--server", "https://127.0.0.1:1/pkix/", *mac, "--newkey", pki.path("new.key"),
             "--subject", "/CN=x")
    cases = (
        ("--untrusted", "untrusted certificate", (*ir, "--untrusted", str(bad))),
        ("--extracerts", "certificate", (
            "cr", "--server", server.url, "--cert", pki.path("client.pem"), "--key",
            pki.path("client.key"), "--extracerts", str(bad), "--srvcert", pki.path("server.pem"),
            "--newkey", pki.path("new.key"), "--subject", "/CN=x")),
        ("--tls-trusted", "TLS trust anchor", (*https, "--tls-trusted", str(bad))),
        ("--tls-cert", "TLS client certificate", (
            *https, "--tls-cert", str(bad), "--tls-key", pki.path("new.key"))),
        ("--oldcert", "certificate", ("rr", "--server", server.url, *mac, "--oldcert", str(bad))),
        ("--oldwithold", "trust anchor", ("genm", "--server", server.url, *mac, "--infotype",
                                          "rootCaCert", "--oldwithold", str(bad))),
    )
    for option, role, args in cases:
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (option, done.stderr)
        assert done.stderr == (f"cmp-agent cmp: {option}: {bad}: "
                               f"{refusal(role, explicit_default)}\n"), option
    assert not any("Received request" in line for line in server.output)


#: Insta's second difference: the issued certificate writes its issuer's name in UTF8String,
#: the CA certificate its subject in PrintableString
WRITTEN_OTHERWISE = ("the issuer name of CN=test2 is the subject of CN=Insta Demo CA,O=Insta Demo,C=FI"
                     " written with other string types, and cmp-agent's path validation"
                     " (cryptography) matches names as encoded (RFC 5280 4.1.2.6 asks the CA to"
                     " write its name as in its certificate)")


def test_issuer_name_written_otherwise_is_said(pki):
    """Insta's issued certificate names its CA in UTF8String, the CA certificate itself in
    PrintableString: cryptography chains names as encoded, so even DER extensions would
    not make a path. The refusal says both; a certificate of the test PKI written the same
    way is refused with that reason instead of "no path"."""
    issued, ca = insta()
    assert issued.issuer == ca.subject and issued.issuer.public_bytes() != ca.subject.public_bytes()
    with pytest.raises(ProtectionError) as raised:
        validate_path(issued, [], [ca], INSTA_TIME, "issued certificate")
    assert str(raised.value) == f"{refusal('issued certificate', issued)}; {WRITTEN_OTHERWISE}"

    printable = x509.Name([x509.NameAttribute(a.oid, a.value, _ASN1Type.PrintableString)
                           for a in pki.root.subject])
    assert printable == pki.root.subject and printable.public_bytes() != pki.root.subject.public_bytes()
    now = datetime.datetime.now(datetime.timezone.utc)
    other = (x509.CertificateBuilder().subject_name(_name((NameOID.COMMON_NAME, "r2"),))
             .issuer_name(printable).public_key(pki.new_key.public_key()).serial_number(9)
             .not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=1)).sign(pki.root_key, hashes.SHA256()))
    with pytest.raises(ProtectionError) as raised:
        validate_path(other, [], [pki.root], now)
    assert str(raised.value) == (
        "no trusted chain for CN=r2: the issuer name of CN=r2 is the subject of"
        f" {pki.root.subject.rfc4514_string()} written with other string types, and cmp-agent's"
        " path validation (cryptography) matches names as encoded (RFC 5280 4.1.2.6 asks the CA"
        " to write its name as in its certificate)")



def test_new_root_refused(pki):
    """A root CA key update (RFC 9483 4.3.2) whose newWithNew is not DER would become an
    anchor that no path validation can use: refused by name, before any other check."""
    from agent.cmp import genm, messages as m

    bad = with_extension_value(pki.other_root, pki.root_key, BC, EXPLICIT_CA_FALSE)
    with pytest.raises(ProtectionError) as raised:
        genm.verify_root_update(m.RootCaKeyUpdate(bad, pki.root), pki.root,
                                datetime.datetime.now(datetime.timezone.utc))
    assert str(raised.value) == refusal("newWithNew", bad)
