"""OpenSSL's CMP client reads responses built by our CA-side builders (for issue 4's test CA).

``openssl cmp -reqin REQ -rspin RSP`` sends our request and takes our response from a
file instead of a server, checking its protection, transactionID and nonces.
"""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.cmp import messages as m
from agent.cmp.names import format_dn

TID, REQ_NONCE = b"T" * 16, b"N" * 16


def mac(secret: bytes = b"pw") -> m.MacProtector:
    return m.MacProtector(b"3078", secret, "hmac-sha256", 500)


def run_openssl(pki, tmp_path, response_body: bytes, secret: str = "pw"):
    spki = pki.new_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    subject = pki.issued.subject
    request = m.encode_message(
        m.HeaderFields(subject, pki.server.subject, TID, REQ_NONCE),
        m.cert_request_body("ir", m.CertRequestSpec(spki, subject), pki.new_key),
        mac(),
    )
    response = m.encode_message(
        m.HeaderFields(pki.server.subject, subject, TID, b"S" * 16, recip_nonce=REQ_NONCE),
        response_body,
        mac(),
    )
    (tmp_path / "req.der").write_bytes(request)
    (tmp_path / "rsp.der").write_bytes(response)
    return subprocess.run(
        ["openssl", "cmp", "-cmd", "ir", "-reqin", "req.der", "-rspin", "rsp.der",
         "-ref", "3078", "-secret", f"pass:{secret}", "-newkey", pki.path("new.key"),
         "-subject", format_dn(subject), "-recipient", format_dn(pki.server.subject),
         "-disable_confirm", "-certout", "out.pem", "-cacertsout", "ca.pem"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )


def test_openssl_accepts_our_ip(pki, tmp_path):
    body = m.cert_rep_body("ip", m.CertRepContent(
        (m.CertResponse(0, m.StatusInfo(0), pki.issued),), (pki.root,)))
    done = run_openssl(pki, tmp_path, body)
    assert "received IP" in done.stderr + done.stdout
    assert x509.load_pem_x509_certificate((tmp_path / "out.pem").read_bytes()) == pki.issued
    assert x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes()) == pki.root


def test_openssl_checks_our_mac(pki, tmp_path):
    body = m.cert_rep_body("ip", m.CertRepContent((m.CertResponse(0, m.StatusInfo(0), pki.issued),)))
    done = run_openssl(pki, tmp_path, body, secret="wrong")
    assert "wrong pbm value" in done.stderr + done.stdout
    assert not (tmp_path / "out.pem").exists()


@pytest.mark.parametrize("body_kind", ["ip-rejection", "error"])
def test_openssl_reads_our_negative_answers(pki, tmp_path, body_kind):
    status = m.StatusInfo(2, ("quota exceeded",), (m.FAILURE_BIT_NAMES.index("notAuthorized"),))
    if body_kind == "error":
        body = m.error_body(m.ErrorContent(status, 7, ("see the CA log",)))
    else:
        body = m.cert_rep_body("ip", m.CertRepContent((m.CertResponse(0, status),)))
    done = run_openssl(pki, tmp_path, body)
    output = done.stderr + done.stdout
    assert "quota exceeded" in output
    assert "notAuthorized" in output or "not authorized" in output.lower()
    assert not (tmp_path / "out.pem").exists()
