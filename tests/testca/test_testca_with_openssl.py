"""tools/testca held to an implementation we did not write: OpenSSL's CMP client."""

import subprocess

import pytest
from cryptography import x509

from testca_process import run_testca


def openssl_cmp(*args, cwd):
    """Run ``openssl cmp``; its diagnostics go to stdout or stderr: both are in .output."""
    result = subprocess.run(["openssl", "cmp", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60)
    result.output = result.stdout + result.stderr
    return result


@pytest.fixture
def keys(tmp_path):
    for name, algo in (("k1.key", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("k2.key", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        subprocess.run(["openssl", "genpkey", *algo, "-out", str(tmp_path / name)], check=True,
                       capture_output=True)
    return tmp_path


def test_ir_cr_kur_with_openssl_client(keys):
    with run_testca(keys / "ca", "--validity", "3600") as ca:
        common = ["-server", f"127.0.0.1:{ca.port}", "-path", "pkix/", "-trusted", "ca/ca.pem"]
        ir = openssl_cmp("-cmd", "ir", *common, "-ref", ca.ref, "-secret", f"pass:{ca.secret}",
                         "-newkey", "k1.key", "-subject", "/C=CN/O=Org/CN=router1",
                         "-certout", "ir.pem", "-cacertsout", "cacerts.pem", cwd=keys)
        assert ir.returncode == 0, ir.output
        issued = x509.load_pem_x509_certificate((keys / "ir.pem").read_bytes())
        assert issued.subject.rfc4514_string() == "CN=router1,O=Org,C=CN"
        ca_cert = x509.load_pem_x509_certificate((keys / "ca" / "ca.pem").read_bytes())
        issued.verify_directly_issued_by(ca_cert)
        assert (keys / "cacerts.pem").read_bytes() == (keys / "ca" / "ca.pem").read_bytes()
        assert (issued.not_valid_after_utc - issued.not_valid_before_utc).total_seconds() == 3600

        cr = openssl_cmp("-cmd", "cr", *common, "-cert", "ir.pem", "-key", "k1.key",
                         "-newkey", "k1.key", "-subject", "/CN=router1", "-certout", "cr.pem",
                         cwd=keys)
        assert cr.returncode == 0, cr.output

        kur = openssl_cmp("-cmd", "kur", *common, "-cert", "ir.pem", "-key", "k1.key",
                          "-newkey", "k2.key", "-certout", "kur.pem", cwd=keys)
        assert kur.returncode == 0, kur.output
        renewed = x509.load_pem_x509_certificate((keys / "kur.pem").read_bytes())
        assert renewed.subject == issued.subject
        assert renewed.serial_number != issued.serial_number
        new_public = subprocess.run(["openssl", "pkey", "-in", "k2.key", "-pubout"], cwd=keys,
                                    capture_output=True, check=True).stdout
        assert renewed.public_key() == x509.load_pem_x509_certificate(
            (keys / "kur.pem").read_bytes()).public_key()
        from cryptography.hazmat.primitives import serialization
        assert renewed.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == new_public


def test_wrong_secret_is_an_error_message_with_the_reason(keys):
    with run_testca(keys / "ca") as ca:
        result = openssl_cmp("-cmd", "ir", "-server", f"127.0.0.1:{ca.port}", "-path", "pkix/",
                             "-trusted", "ca/ca.pem", "-ref", ca.ref, "-secret", "pass:wrong",
                             "-newkey", "k1.key", "-subject", "/CN=x", "-certout", "x.pem", cwd=keys)
    assert result.returncode != 0
    assert "badMessageCheck" in result.output and "MAC protection is invalid" in result.output


def test_polling_and_rejection(keys):
    with run_testca(keys / "ca", "--poll", "2") as ca:
        result = openssl_cmp("-cmd", "ir", "-server", f"127.0.0.1:{ca.port}", "-path", "pkix/",
                             "-trusted", "ca/ca.pem", "-ref", ca.ref, "-secret", f"pass:{ca.secret}",
                             "-newkey", "k1.key", "-subject", "/CN=x", "-certout", "x.pem", cwd=keys)
        assert result.returncode == 0, result.output
        assert "received POLLREP" in result.output
    with run_testca(keys / "ca", "--reject", "not today") as ca:
        result = openssl_cmp("-cmd", "ir", "-server", f"127.0.0.1:{ca.port}", "-path", "pkix/",
                             "-trusted", "ca/ca.pem", "-ref", ca.ref, "-secret", f"pass:{ca.secret}",
                             "-newkey", "k1.key", "-subject", "/CN=x", "-certout", "x.pem", cwd=keys)
    assert result.returncode != 0
    assert "rejection" in result.output and "not today" in result.output


def test_p10cr_rr_and_general_messages_with_openssl_client(keys):
    """What the mock server cannot do, held to OpenSSL's client: p10cr, rr, genm."""
    csr = subprocess.run(["openssl", "req", "-new", "-key", "k2.key", "-subj", "/O=Org/CN=p10",
                          "-addext", "subjectAltName=DNS:p10.example.net", "-out", "r.csr"],
                         cwd=keys, capture_output=True, text=True)
    assert csr.returncode == 0, csr.stderr
    with run_testca(keys / "ca") as ca:
        common = ["-server", f"127.0.0.1:{ca.port}", "-path", "pkix/", "-trusted", "ca/ca.pem",
                  "-ref", ca.ref, "-secret", f"pass:{ca.secret}"]
        p10 = openssl_cmp("-cmd", "p10cr", *common, "-csr", "r.csr", "-certout", "p10.pem", cwd=keys)
        assert p10.returncode == 0, p10.output
        issued = x509.load_pem_x509_certificate((keys / "p10.pem").read_bytes())
        assert issued.subject.rfc4514_string() == "CN=p10,O=Org"
        san = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["p10.example.net"]

        rr = openssl_cmp("-cmd", "rr", *common, "-oldcert", "p10.pem", "-revreason", "1", cwd=keys)
        assert rr.returncode == 0, rr.output
        again = openssl_cmp("-cmd", "rr", *common, "-oldcert", "p10.pem", "-revreason", "1", cwd=keys)
        assert again.returncode != 0 and "certRevoked" in again.output, again.output

        # OpenSSL 3.0's -infotype takes only the names it knows: caCerts and certReqTemplate
        # (rootCaCert and crlStatusList are checked with cmp-agent's client, tests/cmp)
        for name in ("caCerts", "certReqTemplate"):
            genm = openssl_cmp("-cmd", "genm", *common, "-infotype", name, cwd=keys)
            assert genm.returncode == 0, genm.output
            assert "received GENP" in genm.output, genm.output
