"""``cmp-agent cmp ir|cr|kur`` run as a subprocess from a fresh shell against OpenSSL's mock."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from cmp_agent_command import agent_command
from cmp_mock_pki import REFERENCE, SECRET
from cryptography import x509
from testca_process import run_testca

CMP_AGENT = agent_command()


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run in a clean environment (what a fresh login shell would have)."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), **(env or {})}
    return subprocess.run([*CMP_AGENT, "cmp", *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=60)


def test_ir_by_mac_from_shell(pki, mock_server, tmp_path):
    server = mock_server()
    done = run_cli(
        "ir", "--server", server.url, "--ref", REFERENCE, "--secret", f"pass:{SECRET}",
        "--newkey", pki.path("new.key"), "--subject", "/CN=router1.example.net",
        "--recipient", "/C=DE/O=Test/CN=Test CMP Server",
        "--certout", "cert.pem", "--cacertsout", "cacerts.pem", "--extracertsout", "extra.pem",
        "--weak-algorithms",  # the mock answers with HMAC-SHA1
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes()) == pki.issued
    assert pki.root in x509.load_pem_x509_certificates((tmp_path / "cacerts.pem").read_bytes())
    assert (tmp_path / "extra.pem").exists()
    assert "accepted" in done.stdout and "CN=router1.example.net" in done.stdout
    # serial and time in the forms the agent's model shows them (certificate-file/serial,
    # yang:date-and-time)
    issued = pki.issued
    assert f", serial {issued.serial_number:X}, " in done.stdout
    assert done.stdout.rstrip().endswith(
        f", valid until {issued.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"), done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_cr_by_signature_der_output_env_secret_source(pki, mock_server, tmp_path):
    server = mock_server(mac=False)
    done = run_cli(
        "cr", "--server", server.url, "--cert", pki.path("client.pem"),
        "--key", pki.path("client.key"), "--srvcert", pki.path("server.pem"),
        "--newkey", pki.path("new.key"), "--subject", "/CN=router1.example.net",
        "--certout", "cert.der", "--certform", "der", "--implicit-confirm",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert x509.load_der_x509_certificate((tmp_path / "cert.der").read_bytes()) == pki.issued


def test_rejection_printed_with_status_bits_and_text(pki, mock_server, tmp_path):
    server = mock_server("-pkistatus", "2", "-failure", "9", "-statusstring", "key too weak")
    done = run_cli(
        "ir", "--server", server.url, "--ref", REFERENCE, "--secret", "env:CMP_SECRET",
        "--newkey", pki.path("new.key"), "--subject", "/CN=router1", "--certout", "cert.pem",
        "--weak-algorithms", cwd=tmp_path, env={"CMP_SECRET": SECRET},
    )
    assert done.returncode == 1
    assert "rejection" in done.stderr and "badPOP" in done.stderr and "key too weak" in done.stderr
    assert not (tmp_path / "cert.pem").exists()
    assert SECRET not in done.stdout + done.stderr


def test_bad_arguments_are_clear(pki, tmp_path):
    done = run_cli("ir", "--server", "http://127.0.0.1:1/pkix/", "--ref", "1", "--secret", SECRET,
                   "--newkey", pki.path("new.key"), "--subject", "/CN=x", cwd=tmp_path)
    assert done.returncode == 2
    assert "pass:TEXT" in done.stderr
    assert SECRET not in done.stderr
    done = run_cli("ir", "--server", "http://127.0.0.1:1/pkix/", "--ref", "1", "--secret", "pass:x",
                   "--newkey", pki.path("new.key"), "--subject", "CN=x", cwd=tmp_path)
    assert done.returncode == 2 and "must start with '/'" in done.stderr
    done = run_cli("kur", "--server", "http://127.0.0.1:1/pkix/", "--ref", "1", "--secret", "pass:x",
                   "--newkey", pki.path("new.key"), cwd=tmp_path)
    assert done.returncode == 2 and "--cert and --key" in done.stderr


def test_msg_timeout_and_http_status_from_shell(pki, mock_server, tmp_path):
    """--msg-timeout bounds one exchange with a CA that trickles its answer; a 500
    around the CA's error message prints the HTTP status and the CA's own text."""
    from http_proxy import CmpHttpProxy

    slow = CmpHttpProxy(None, content_length=100_000, trickle=1.0)
    failing = CmpHttpProxy(mock_server("-send_error").port, status=500)
    try:
        common = ("--ref", REFERENCE, "--secret", f"pass:{SECRET}", "--newkey", pki.path("new.key"),
                  "--subject", "/CN=router1", "--recipient", "/C=DE/O=Test/CN=Test CMP Server")
        done = run_cli("ir", "--server", slow.url, "--msg-timeout", "1", *common, cwd=tmp_path)
        assert done.returncode == 1
        assert "timeout:" in done.stderr and "timed out" in done.stderr
        done = run_cli("ir", "--server", failing.url, *common, cwd=tmp_path)
        assert done.returncode == 1
        assert "HTTP 500 Internal Server Error instead of 200" in done.stderr
        assert "PKIFailureInfo=badRequest" in done.stderr
    finally:
        slow.stop()
        failing.stop()


def test_https_options_from_shell(pki, mock_server, tmp_path):
    """--tls-trusted, --tls-cert/--tls-key (the CA requires a client certificate),
    --tls-host; a wrong host name and a wrong anchor fail with the TLS reason."""
    from cmp_mock_pki import TLS_SERVER_NAME, TlsProxy

    proxy = TlsProxy(mock_server().port, *pki.tls_server(), client_ca=pki.path("root.pem"))
    try:
        common = ("--server", f"https://127.0.0.1:{proxy.port}/pkix/", "--ref", REFERENCE,
                  "--secret", f"pass:{SECRET}", "--newkey", pki.path("new.key"),
                  "--subject", "/CN=router1.example.net", "--weak-algorithms",
                  "--tls-cert", pki.path("client.pem"), "--tls-key", pki.path("client.key"))
        done = run_cli("ir", *common, "--tls-trusted", pki.path("root.pem"),
                       "--tls-host", TLS_SERVER_NAME, "--certout", "cert.pem", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes()) == pki.issued
        done = run_cli("ir", *common, "--tls-trusted", pki.path("root.pem"),
                       "--tls-host", "other-ca.example.net", cwd=tmp_path)
        assert done.returncode == 1 and "Hostname mismatch" in done.stderr
        done = run_cli("ir", *common, "--tls-trusted", pki.path("other_root.pem"), cwd=tmp_path)
        assert done.returncode == 1 and "TLS server certificate not trusted" in done.stderr
        done = run_cli("ir", *common[:-2], "--tls-key", pki.path("new.key"),
                       "--tls-trusted", pki.path("root.pem"), cwd=tmp_path)
        assert done.returncode == 2 and "--tls-cert/--tls-key" in done.stderr
    finally:
        proxy.stop()


def test_a_wrong_mac_secret_is_named_as_the_cause(pki, tmp_path):
    """tools/testca answers badMessageCheck in a signed error message (RFC 4210 5.2.3):
    the cause is our secret, not a missing --srvcert to verify that answer with."""
    with run_testca(tmp_path / "ca") as ca:
        done = run_cli(
            "ir", "--server", ca.url, "--ref", ca.ref, "--secret", "pass:not-the-secret",
            "--newkey", pki.path("new.key"), "--subject", "/CN=router1.example.net",
            "--certout", "cert.pem", cwd=tmp_path)
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first == ("cmp-agent cmp ir failed: the CA could not verify the request:"
                     " the MAC secret (--secret) or reference (--ref) is wrong"), done.stderr
    assert "PKIFailureInfo=badMessageCheck" in done.stderr
    assert "not-the-secret" not in done.stderr
    assert not (tmp_path / "cert.pem").exists()


def test_an_rsa_pss_newkey_is_refused_before_anything_is_sent(tmp_path):
    """Its certTemplate would need an id-RSASSA-PSS public key; as rsaEncryption the
    certificate would lift the key's PSS-only restriction (key-pair-import refuses it too)."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(tmp_path / "pss.key")], check=True, capture_output=True)
    done = run_cli("ir", "--server", "http://127.0.0.1:1/pkix/", "--ref", "1", "--secret", "pass:x",
                   "--newkey", "pss.key", "--subject", "/CN=x", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--newkey: pss.key is an RSA-PSS key (id-RSASSA-PSS, RFC 4055)" in done.stderr
    assert "openssl genpkey -algorithm RSA" in done.stderr
    assert "connection refused" not in done.stderr  # refused before connecting


def test_each_poll_is_a_line_with_what_the_ca_says(pki, mock_server, tmp_path):
    """RFC 4210 5.3.22: a line on stderr per poll, with the reason of the pollRep (and the
    statusString of the first "waiting") that tools/testca writes, escaped as the CA's
    texts are in a failure (a terminal escape sequence is shown, not acted on); OpenSSL's
    mock writes none, and its lines say only when the next pollReq goes out."""
    with run_testca(tmp_path / "ca", "--poll", "2", "--poll-reason",
                    "awaiting approval \x1b[2J by RA") as ca:
        done = run_cli("ir", "--server", ca.url, "--ref", ca.ref, "--secret", f"pass:{ca.secret}",
                       "--newkey", pki.path("new.key"), "--subject", "/CN=router1.example.net",
                       "--certout", "cert.pem", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # the ip "waiting", then one pollRep
    for line in lines:
        assert re.fullmatch(r"cmp-agent cmp ir: the CA answered waiting: next pollReq in 1s, at"
                            r" \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; the CA says"
                            r" 'awaiting approval \\x1b\[2J by RA'", line), line
    assert "\x1b" not in done.stderr
    assert "accepted" in done.stdout
    with run_testca(tmp_path / "ca", "--poll", "2", "--poll-reason", "busy") as ca:
        done = run_cli("genm", "--server", ca.url, "--ref", ca.ref, "--secret", f"pass:{ca.secret}",
                       "--infotype", "caCerts", cwd=tmp_path)  # "waiting" in an error message
    assert done.returncode == 0, done.stderr
    assert [line.rsplit("; ", 1)[1] for line in done.stderr.splitlines()] == \
        ["the CA says 'busy'"] * 2, done.stderr

    server = mock_server("-poll_count", "1", "-check_after", "0")
    done = run_cli("ir", "--server", server.url, "--ref", REFERENCE, "--secret", f"pass:{SECRET}",
                   "--newkey", pki.path("new.key"), "--subject", "/CN=router1.example.net",
                   "--weak-algorithms", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"cmp-agent cmp ir: the CA answered waiting: next pollReq in 1s, at"
                        r" \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", done.stderr), done.stderr
