"""Signature algorithms of RFC 9481 3 with OpenSSL's mock CMP server, both ways:
responses it signs with a P-384 key (and, re-signed by a proxy, with RSASSA-PSS and
Ed25519, which OpenSSL 3.0 cannot sign CMP messages with) are verified; requests we sign
with RSASSA-PSS, P-384 and Ed25519 keys are accepted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cmp_mock_pki import issue, write_pem
from cmp_resign import Resigner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from http_proxy import CmpHttpProxy
from test_cli import run_cli
from test_mock_server import assert_enrolled, request

from agent.cmp import messages as m
from agent.cmp import protection
from agent.cmp.client import SignerCredentials, enroll
from agent.cmp.names import format_dn, parse_dn
from agent.cmp.transaction import Failed, FailureKind


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def identity(pki, directory: Path, name: str, kind: str):
    """A certificate for a new *kind* key, issued by the test root; (cert, key, paths).

    ``rsa-pss``: an RSA-PSS key (``openssl genpkey -algorithm RSA-PSS``) certified by
    ``openssl x509`` with an id-RSASSA-PSS public key (``rsa-pss-sha384``: whose
    RSASSA-PSS-params restrict it to SHA-384, MGF1 with SHA-384, salt of 48 bytes or more);
    the others by ``cryptography``.
    """
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    subject = parse_dn(f"/O=Test/CN={name}")
    if kind.startswith("rsa-pss"):
        root_key = write_pem(directory / "root.key", pki.root_key)
        restricted = (("-pkeyopt", "rsa_pss_keygen_md:sha384", "-pkeyopt", "rsa_pss_keygen_mgf1_md:sha384",
                       "-pkeyopt", "rsa_pss_keygen_saltlen:48") if kind == "rsa-pss-sha384" else ())
        _openssl("genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                 *restricted, "-out", str(key_path), cwd=directory)
        _openssl("req", "-new", "-key", str(key_path), "-subj", format_dn(subject),
                 "-out", f"{name}.csr", cwd=directory)
        (directory / "ext.cnf").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", pki.path("root.pem"),
                 "-CAkey", str(root_key), "-CAcreateserial", "-days", "2",
                 "-extfile", "ext.cnf", "-out", str(cert_path), cwd=directory)
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        assert protection.is_rsa_pss_certificate(cert)
        return cert, key, str(cert_path), str(key_path)
    key = {"rsa": lambda: rsa.generate_private_key(65537, 2048),
           "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
           "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]()
    cert = issue(subject, key.public_key(), pki.root.subject, pki.root_key, ca=False)
    write_pem(cert_path, cert)
    write_pem(key_path, key)
    return cert, key, str(cert_path), str(key_path)


def _client(pki) -> SignerCredentials:
    return SignerCredentials(pki.client, pki.client_key)


def test_responses_signed_with_p384_are_verified(pki, mock_server, tmp_path):
    cert, _, cert_path, key_path = identity(pki, tmp_path, "CMP P-384", "p384")
    server = mock_server(mac=False, srv_cert=cert_path, srv_key=key_path)
    result = enroll(request(pki, server, mac=None, signer=_client(pki), trusted=(pki.root,),
                            recipient=cert.subject))
    assert_enrolled(result, pki)
    assert cert in result.extra_certs
    pinned = enroll(request(pki, server, mac=None, signer=_client(pki), server_cert=cert,
                            recipient=cert.subject))
    assert_enrolled(pinned, pki)


def _last_response(server, pki, tmp_path: Path, srvcert: str) -> bytes:
    """OpenSSL's own client enrols through *server* (verifying its answers with *srvcert*);
    the ip it received (-rspout)."""
    done = subprocess.run(
        ["openssl", "cmp", "-cmd", "ir", "-server", f"127.0.0.1:{server.port}", "-path", "pkix/",
         "-cert", pki.path("client.pem"), "-key", pki.path("client.key"), "-srvcert", srvcert,
         "-newkey", pki.path("new.key"), "-subject", "/CN=router1.example.net",
         "-certout", str(tmp_path / "openssl.pem"), "-rspout", str(tmp_path / "ip.der")],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / "ip.der").read_bytes()


@pytest.mark.parametrize("kind,hash_name", [("rsa", "sha384"), ("rsa-pss", "sha256"),
                                            ("ed25519", None)])
def test_rsassa_pss_and_ed25519_signed_responses_are_verified(pki, mock_server, tmp_path, kind,
                                                              hash_name):
    """OpenSSL 3.0's mock cannot sign with an RSA-PSS or Ed25519 key: a proxy re-signs
    its answers, as a CA with such a key would sign them."""
    cert, key, cert_path, _ = identity(pki, tmp_path, f"CMP {kind}", kind)
    server = mock_server(mac=False)
    resigner = Resigner(cert, key, hash_name) if hash_name else Resigner(cert, key)
    proxy = CmpHttpProxy(server.port, rewrite=resigner)
    try:
        result = enroll(request(pki, proxy, mac=None, signer=_client(pki), trusted=(pki.root,),
                                recipient=cert.subject))
        assert_enrolled(result, pki)
        assert resigner.resigned == 2  # ip and pkiConf
        assert result.extra_certs[0] == cert
        if kind != "ed25519":  # OpenSSL 3.0's client verifies PSS (not EdDSA) protection
            _last_response(proxy, pki, tmp_path, cert_path)
        # the new signer still has to chain to a trust anchor
        refused = enroll(request(pki, proxy, mac=None, signer=_client(pki),
                                 trusted=(pki.other_root,), recipient=cert.subject))
        assert isinstance(refused, Failed) and refused.kind is FailureKind.PROTECTION
        assert f"ip refused: no trusted chain for CN=CMP {kind},O=Test" in refused.message
    finally:
        proxy.stop()


@pytest.mark.parametrize("kind,hash_name,pkcs1,reason", [
    ("rsa-pss", "sha256", True, "which signs only with RSASSA-PSS, not RSA PKCS#1 v1.5 with SHA-256"),
    ("rsa-pss-sha384", "sha256", False, "has an RSA-PSS key restricted to RSASSA-PSS with SHA384,"
     " MGF1 with SHA384, salt of at least 48 bytes (RFC 4055 3.3), not RSASSA-PSS with SHA-256"),
    ("rsa-pss-sha384", "sha384", False, None),
])
def test_an_rsa_pss_key_verifies_only_the_pss_signatures_it_names(pki, mock_server, tmp_path, kind,
                                                                  hash_name, pkcs1, reason):
    """A signer whose key is id-RSASSA-PSS (RFC 4055): a PKCS#1 v1.5 signature by the same
    RSA numbers, or a PSS one with a hash its parameters do not name, is refused, whether
    the signer is validated by a path or pinned (--srvcert)."""
    cert, key, cert_path, _ = identity(pki, tmp_path, f"CMP {kind}", kind)
    server = mock_server(mac=False)
    proxy = CmpHttpProxy(server.port, rewrite=Resigner(cert, key, hash_name, pkcs1=pkcs1))
    try:
        for anchors in ({"trusted": (pki.root,)}, {"server_cert": cert}):
            result = enroll(request(pki, proxy, mac=None, signer=_client(pki), recipient=cert.subject,
                                    **anchors))
            if reason is None:
                assert_enrolled(result, pki)
                continue
            assert isinstance(result, Failed) and result.kind is FailureKind.PROTECTION, str(result)
            assert f"ip refused: signer CN=CMP {kind},O=Test" in result.message
            assert reason in result.message
        if reason is not None:  # OpenSSL's own client refuses the same answers ("wrong
            # public key type" for PKCS#1 v1.5, "digest not allowed" for the other hash)
            done = subprocess.run(
                ["openssl", "cmp", "-cmd", "ir", "-server", f"127.0.0.1:{proxy.port}", "-path", "pkix/",
                 "-cert", pki.path("client.pem"), "-key", pki.path("client.key"), "-srvcert", cert_path,
                 "-newkey", pki.path("new.key"), "-subject", "/CN=router1.example.net",
                 "-certout", str(tmp_path / "openssl.pem")],
                capture_output=True, text=True, timeout=60)
            assert done.returncode == 1
            assert "srvcert does not validate msg" in done.stdout + done.stderr
    finally:
        proxy.stop()


@pytest.mark.parametrize("kind,digest,expected", [
    ("rsa-pss", None, protection.SignatureAlgorithm("rsa-pss", "sha256")),
    ("rsa", "sha512", protection.SignatureAlgorithm("rsa", "sha512")),
    ("p384", None, protection.SignatureAlgorithm("ec", "sha384")),
    ("p384", "sha256", protection.SignatureAlgorithm("ec", "sha256")),
    ("ed25519", None, protection.SignatureAlgorithm("ed25519")),
])
def test_requests_we_sign_are_accepted_by_openssl(pki, mock_server, tmp_path, kind, digest, expected):
    cert, key, *_ = identity(pki, tmp_path, f"router {kind}", kind)
    server = mock_server(mac=False)
    proxy = CmpHttpProxy(server.port)
    try:
        result = enroll(request(pki, proxy, kind="cr", mac=None, signer=SignerCredentials(cert, key),
                                server_cert=pki.server, digest=digest))
        assert_enrolled(result, pki, ca_pubs=False)
    finally:
        proxy.stop()
    # what we sent: the scheme of the key (RSA-PSS from its certificate) and the digest
    cr = m.decode_message(proxy.received[0])
    assert cr.body_type == "cr"
    assert m.decode_signature_algorithm(cr.protection_alg) == expected


def test_cli_rsa_pss_key_and_digest(pki, mock_server, tmp_path):
    _, _, cert_path, key_path = identity(pki, tmp_path, "router pss", "rsa-pss")
    server = mock_server(mac=False)
    done = run_cli("cr", "--server", server.url, "--cert", cert_path, "--key", key_path,
                   "--srvcert", pki.path("server.pem"), "--newkey", pki.path("new.key"),
                   "--subject", "/CN=router1.example.net", "--digest", "sha384",
                   "--certout", "cert.pem", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "accepted" in done.stdout
    done = run_cli("cr", "--server", server.url, "--cert", cert_path, "--key", key_path,
                   "--srvcert", pki.path("server.pem"), "--newkey", pki.path("new.key"),
                   "--subject", "/CN=router1.example.net", "--digest", "sha1",
                   "--certout", "cert.pem", cwd=tmp_path)
    assert done.returncode == 2 and "digest sha1 is a weak algorithm" in done.stderr
