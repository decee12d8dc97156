"""Trust decisions on signed responses (issue 12), against OpenSSL's mock CMP server with a
three-level PKI: root -> issuing CA -> CMP signer (EKU id-kp-cmcRA)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cmp_mock_pki import issue, write_pem
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID
from http_proxy import CmpHttpProxy
from test_cli import run_cli
from trust_pki import CMC_RA, ExtraCertsStripper, TrustPki, certificate, name

from agent.cmp.client import EnrollmentRequest, SignerCredentials, enroll
from agent.cmp.transaction import Enrolled, Failed, FailureKind


@pytest.fixture(scope="module")
def tpki(tmp_path_factory) -> TrustPki:
    tpki = TrustPki(tmp_path_factory.mktemp("trust-pki"))
    tpki.signer("keyenc", usage=("key_encipherment",))
    tpki.signer("expired", expired=True)
    tpki.signer("tls", eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    tpki.signer("any", eku=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,))
    return tpki


def signed_request(tpki: TrustPki, url: str, **overrides) -> EnrollmentRequest:
    fields = dict(kind="ir", server_url=url, new_key=tpki.new_key, subject=tpki.issued.subject,
                  signer=SignerCredentials(tpki.client, tpki.client_key, (tpki.ca,)),
                  trusted=(tpki.root,), total_timeout=20)
    fields.update(overrides)
    return EnrollmentRequest(**fields)


def _signer(tpki: TrustPki) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(tpki.path("signer-good.pem")).read_bytes())


def cli_ir(tpki: TrustPki, url: str, cwd, *extra: str):
    return run_cli("ir", "--server", url, "--cert", tpki.path("client.pem"),
                   "--key", tpki.path("client.key"), "--extracerts", tpki.path("ca.pem"),
                   "--newkey", tpki.path("new.key"), "--subject", "/O=Trust Test/CN=router1",
                   "--certout", "cert.pem", *extra, cwd=cwd)


def test_root_anchor_validates_an_ra_signer_through_the_issuing_ca(tpki, mock_server, tmp_path):
    server = mock_server(*tpki.mock_args(), mac=False, signer=False)
    result = enroll(signed_request(tpki, server.url))
    assert isinstance(result, Enrolled), str(result)
    assert result.certificate == tpki.issued
    assert isinstance(enroll(signed_request(tpki, server.url)), Enrolled)
    done = cli_ir(tpki, server.url, tmp_path, "--trusted", tpki.path("root.pem"))
    assert done.returncode == 0, done.stderr
    assert x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes()) == tpki.issued


def test_srvcert_pins_the_signer(tpki, mock_server, tmp_path):
    server = mock_server(*tpki.mock_args(), mac=False, signer=False)
    pinned = cli_ir(tpki, server.url, tmp_path, "--srvcert", tpki.path("signer-good.pem"))
    assert pinned.returncode == 0, pinned.stderr
    assert "warning: the new certificate's chain was not checked: no trust anchor" in pinned.stderr
    checked = cli_ir(tpki, server.url, tmp_path, "--srvcert", tpki.path("signer-good.pem"),
                     "--trusted", tpki.path("root.pem"))
    assert checked.returncode == 0, checked.stderr
    assert "warning" not in checked.stderr
    other = cli_ir(tpki, server.url, tmp_path, "--srvcert", tpki.path("signer-tls.pem"))
    assert other.returncode == 1
    assert "pinned server certificate CN=CMP signer tls" in other.stderr


def test_signer_without_digital_signature_needs_the_switch(tpki, mock_server, tmp_path):
    server = mock_server(*tpki.mock_args("keyenc"), mac=False, signer=False)
    refused = enroll(signed_request(tpki, server.url))
    assert isinstance(refused, Failed) and refused.kind is FailureKind.PROTECTION
    assert "signer CN=CMP signer keyenc,O=Trust Test lacks digitalSignature key usage" in refused.message
    assert refused.messages.sent == {"ir": 1}  # no certConf for an unauthenticated answer
    assert isinstance(enroll(signed_request(tpki, server.url, ignore_keyusage=True)), Enrolled)
    done = cli_ir(tpki, server.url, tmp_path, "--trusted", tpki.path("root.pem"))
    assert done.returncode == 1 and "lacks digitalSignature key usage" in done.stderr
    done = cli_ir(tpki, server.url, tmp_path, "--trusted", tpki.path("root.pem"), "--ignore-keyusage")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("signer,reason", [
    ("expired", "signer CN=CMP signer expired,O=Trust Test expired at"),
    ("tls", "has extended key usage serverAuth, none of which allows CMP"),
])
def test_unfit_signers_are_refused_by_name(tpki, mock_server, signer, reason):
    server = mock_server(*tpki.mock_args(signer), mac=False, signer=False)
    result = enroll(signed_request(tpki, server.url, ignore_keyusage=True))
    assert isinstance(result, Failed) and result.kind is FailureKind.PROTECTION
    assert reason in result.message


def test_any_extended_key_usage_allows_cmp(tpki, mock_server):
    server = mock_server(*tpki.mock_args("any"), mac=False, signer=False)
    assert isinstance(enroll(signed_request(tpki, server.url)), Enrolled)


def test_wrong_anchor_is_refused(tpki, mock_server, pki):
    server = mock_server(*tpki.mock_args(), mac=False, signer=False)
    result = enroll(signed_request(tpki, server.url, trusted=(pki.root,)))
    assert isinstance(result, Failed) and result.kind is FailureKind.PROTECTION
    assert "no trusted chain for CN=CMP signer good,O=Trust Test: no path to a trust anchor" in result.message
    # the issuing CA alone, without its root, is not an anchor either: it is untrusted
    result = enroll(signed_request(tpki, server.url, trusted=(), untrusted=(tpki.ca, tpki.root)))
    assert isinstance(result, Failed) and "no server certificate or trust anchor" in result.message


def test_signer_reused_for_poll_rep_and_pki_conf_without_extra_certs(tpki, mock_server):
    server = mock_server(*tpki.mock_args(), "-poll_count", "2", "-check_after", "0",
                         mac=False, signer=False)
    stripper = ExtraCertsStripper(("pollRep", "pkiconf"))
    proxy = CmpHttpProxy(server.port, rewrite=stripper)
    try:
        result = enroll(signed_request(tpki, proxy.url))
    finally:
        proxy.stop()
    assert isinstance(result, Enrolled), str(result)
    assert ("pollRep", True) in stripper.seen and ("pkiconf", True) in stripper.seen


def test_key_not_matching_cert_is_refused_before_sending(tpki, tmp_path):
    # nothing listens on the URL: a refusal after sending would be a transport error
    done = run_cli("ir", "--server", "http://127.0.0.1:9/pkix/", "--cert", tpki.path("client.pem"),
                   "--key", tpki.path("new.key"), "--newkey", tpki.path("new.key"),
                   "--subject", "/CN=router1", "--trusted", tpki.path("root.pem"), cwd=tmp_path)
    assert done.returncode == 2
    assert "cert and key do not match" in done.stderr
    with pytest.raises(ValueError, match="cert and key do not match"):
        SignerCredentials(tpki.client, tpki.new_key)


def test_issued_certificate_without_a_path_to_an_anchor_is_rejected(tpki, mock_server, pki, tmp_path):
    """The CA's own signature is fine, but the certificate it issues chains to another
    root: certConf says rejection (incorrectData), as the mock's log shows."""
    stray = issue(tpki.issued.subject, tpki.new_key.public_key(), pki.root.subject, pki.root_key,
                  ca=False)
    server = mock_server(*tpki.mock_args(), "-rsp_cert", str(write_pem(tmp_path / "stray.pem", stray)),
                         mac=False, signer=False)
    result = enroll(signed_request(tpki, server.url))
    assert isinstance(result, Failed) and result.kind is FailureKind.CERTIFICATE_REJECTED
    assert "rejected the issued certificate (incorrectData): no trusted chain for" in result.message
    assert result.messages.sent == {"ir": 1, "certConf": 1}
    assert result.messages.received == {"ip": 1, "pkiconf": 1}
    rejection = "certificate rejected by client with PKIStatus: rejection"
    assert rejection in server.log_once_it_says(rejection)


def test_srvcert_still_checks_the_issued_chain_against_trusted(tpki, mock_server, pki, tmp_path):
    """--srvcert pins the signer only: the certificate it issues must still chain to
    --trusted, as without --srvcert. (OpenSSL 3.0 ignores -trusted when -srvcert is given,
    "-trusted option is ignored since -srvcert option is present", and checks a new
    certificate only against -out_trusted; without an anchor it says nothing, we warn.)"""
    stray = issue(tpki.issued.subject, tpki.new_key.public_key(), pki.root.subject, pki.root_key,
                  ca=False)
    stray_path = str(write_pem(tmp_path / "stray.pem", stray))
    server = mock_server(*tpki.mock_args(), "-rsp_cert", stray_path, mac=False, signer=False)
    pinned = signed_request(tpki, server.url, server_cert=_signer(tpki))
    result = enroll(pinned)
    assert isinstance(result, Failed) and result.kind is FailureKind.CERTIFICATE_REJECTED
    assert "rejected the issued certificate (incorrectData): no trusted chain for" in result.message
    rejection = "certificate rejected by client with PKIStatus: rejection"
    assert rejection in server.log_once_it_says(rejection)
    refused = cli_ir(tpki, server.url, tmp_path, "--srvcert", tpki.path("signer-good.pem"),
                     "--trusted", tpki.path("root.pem"))
    assert refused.returncode == 1 and "no trusted chain for CN=router1" in refused.stderr
    unchecked = enroll(signed_request(tpki, server.url, server_cert=_signer(tpki), trusted=()))
    assert isinstance(unchecked, Enrolled) and not unchecked.chain_checked
    openssl = subprocess.run(
        ["openssl", "cmp", "-cmd", "ir", "-server", f"127.0.0.1:{server.port}", "-path", "pkix/",
         "-cert", tpki.path("client.pem"), "-key", tpki.path("client.key"),
         "-extracerts", tpki.path("ca.pem"), "-newkey", tpki.path("new.key"),
         "-subject", "/O=Trust Test/CN=router1", "-certout", str(tmp_path / "openssl.pem"),
         "-srvcert", tpki.path("signer-good.pem"), "-trusted", tpki.path("root.pem")],
        capture_output=True, text=True, timeout=60)
    assert openssl.returncode == 0, openssl.stdout + openssl.stderr  # it enrols the stray one
    assert "-trusted option is ignored since -srvcert option is present" in openssl.stdout


@pytest.mark.parametrize("kind,key_class", [("Ed25519", ed25519.Ed25519PrivateKey),
                                            ("Ed448", ed448.Ed448PrivateKey)])
def test_an_eddsa_ca_on_the_signers_path_is_refused_by_name(tpki, mock_server, tmp_path, kind,
                                                            key_class):
    """root (P-256) -> issuing CA with an EdDSA key -> CMP signer (P-256). cryptography's
    x509.verification, our path validation, refuses EdDSA CA keys (pyca/cryptography#13391):
    the refusal names the CA and the limit; OpenSSL's client, which has no such limit,
    enrols through the same server."""
    ca_key = key_class.generate()
    ca = certificate(name(f"{kind} Issuing CA"), ca_key, tpki.root, tpki.root_key, ca=True,
                     usage=("key_cert_sign", "crl_sign"))
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = certificate(name(f"CMP signer under {kind}"), signer_key, ca, ca_key, ca=False,
                         eku=(CMC_RA,))
    paths = {file: str(write_pem(tmp_path / file, item)) for file, item in (
        ("eddsa-ca.pem", ca), ("eddsa-signer.pem", signer), ("eddsa-signer.key", signer_key))}
    server = mock_server(*tpki.mock_args(None), "-srv_cert", paths["eddsa-signer.pem"],
                         "-srv_key", paths["eddsa-signer.key"], "-rsp_extracerts", paths["eddsa-ca.pem"],
                         mac=False, signer=False)
    result = enroll(signed_request(tpki, server.url))
    assert isinstance(result, Failed) and result.kind is FailureKind.PROTECTION, str(result)
    assert (f"no trusted chain for CN=CMP signer under {kind},O=Trust Test: CN={kind} Issuing"
            f" CA,O=Trust Test has an {kind} key; path validation (cryptography's"
            " x509.verification) accepts only RSA (rsaEncryption) and ECDSA keys for CAs"
            in result.message)
    openssl = subprocess.run(
        ["openssl", "cmp", "-cmd", "ir", "-server", f"127.0.0.1:{server.port}", "-path", "pkix/",
         "-cert", tpki.path("client.pem"), "-key", tpki.path("client.key"),
         "-extracerts", tpki.path("ca.pem"), "-newkey", tpki.path("new.key"),
         "-subject", "/O=Trust Test/CN=router1", "-certout", str(tmp_path / "openssl.pem"),
         "-trusted", tpki.path("root.pem")],
        capture_output=True, text=True, timeout=60)
    assert openssl.returncode == 0, openssl.stdout + openssl.stderr


def test_signer_and_chain_found_among_the_device_certificates(tpki, mock_server):
    """README "Trust model": the signer named by sender may come from the device, the chain
    too; looked up by subject among the device's certificates (issue 11), not each read."""
    server = mock_server(*tpki.mock_args(), mac=False, signer=False)
    stripper = ExtraCertsStripper(("ip", "pkiconf"))
    proxy = CmpHttpProxy(server.port, rewrite=stripper)
    signer = x509.load_pem_x509_certificate(open(tpki.path("signer-good.pem"), "rb").read())
    others = (tpki.client, tpki.issued, tpki.root)  # the root too: untrusted here, not an anchor
    try:
        without = enroll(signed_request(tpki, proxy.url, untrusted=(*others, tpki.ca)))
        result = enroll(signed_request(tpki, proxy.url, untrusted=(*others, signer, tpki.ca)))
    finally:
        proxy.stop()
    assert ("ip", True) in stripper.seen
    assert isinstance(without, Failed) and without.kind is FailureKind.PROTECTION
    assert "no certificate of the sender CN=CMP signer good,O=Trust Test" in without.message
    assert isinstance(result, Enrolled), str(result)


def test_a_signed_responses_protection_alg_is_decoded_once(tpki, mock_server, monkeypatch):
    """One decoding of protectionAlg per response, however many candidate signers are
    tried and checked with it (the ip and the pkiConf here)."""
    import agent.cmp.verify as verify

    decoded = []
    real = verify.decode_signature_algorithm
    monkeypatch.setattr(verify, "decode_signature_algorithm",
                        lambda alg: decoded.append(alg.oid) or real(alg))
    server = mock_server(*tpki.mock_args(), mac=False, signer=False)
    candidates = (tpki.client, tpki.issued, tpki.root, tpki.ca, _signer(tpki))
    result = enroll(signed_request(tpki, server.url, untrusted=candidates))
    assert isinstance(result, Enrolled), str(result)
    assert result.messages.received == {"ip": 1, "pkiconf": 1}
    assert len(decoded) == 2
