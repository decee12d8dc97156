"""P10CR, RR and GENM (Lightweight CMP, RFC 9483 4.1.4, 4.2, 4.3) from ``cmp-agent cmp``:
against OpenSSL's mock server for what it supports (p10cr, rr, genm, which it echoes) and
against tools/testca for the rest (revocation state, every info type, a root CA key
update)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cmp_mock_pki import REFERENCE, SECRET
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cmp_agent_command import agent_command  # noqa: E402
from testca_process import run_testca  # noqa: E402

from agent.cmp import messages as m  # noqa: E402
from agent.cmp.client import EnrollmentRequest, MacCredentials, SignerCredentials, enroll  # noqa: E402
from agent.cmp.names import parse_dn  # noqa: E402
from agent.cmp.transaction import Enrolled, Failed, GeneralResponse  # noqa: E402

CMP_AGENT = agent_command()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CMP_AGENT, "cmp", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def make_csr(directory: Path, key: str, subject: str = "/CN=router1.example.net",
             san: bool = True) -> str:
    """A CSR made by OpenSSL; the mock's certificate has no subjectAltName: none for it."""
    extra = ["-addext", "subjectAltName=DNS:router1.example.net"] if san else []
    done = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", subject, *extra,
                           "-out", str(directory / "r.csr")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return str(directory / "r.csr")


# -- OpenSSL's mock server ------------------------------------------------------------------

def test_cmp_help_lists_the_lightweight_commands(tmp_path):
    done = run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "{ir,cr,kur,p10cr,rr,genm}" in done.stdout
    for option in ("--csr", "--oldcert", "--revreason", "--infotype", "--oldwithold",
                   "--newwithnew", "--template"):
        assert option in done.stdout


def test_p10cr_from_a_csr_file_with_the_mock(pki, mock_server, tmp_path):
    server = mock_server()
    done = run_cli("p10cr", "--server", server.url, "--ref", REFERENCE, "--secret", f"pass:{SECRET}",
                   "--weak-algorithms",  # the mock answers with HMAC-SHA1
                   "--csr", make_csr(tmp_path, pki.path("new.key"), san=False), "--certout", "cert.pem",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes()) == pki.issued


def test_ir_takes_subject_extensions_and_key_from_the_csr(pki, mock_server, tmp_path):
    server = mock_server()
    done = run_cli("ir", "--server", server.url, "--ref", REFERENCE, "--secret", f"pass:{SECRET}",
                   "--weak-algorithms",
                   "--csr", make_csr(tmp_path, pki.path("new.key"), san=False),
                   "--newkey", pki.path("new.key"),
                   "--certout", "cert.pem", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # a key that is not the CSR's cannot prove possession for it
    done = run_cli("ir", "--server", server.url, "--ref", REFERENCE, "--secret", f"pass:{SECRET}",
                   "--csr", str(tmp_path / "r.csr"), "--newkey", pki.path("client.key"),
                   cwd=tmp_path)
    assert done.returncode == 2 and "not the key of the CSR" in done.stderr


def test_p10cr_built_by_the_engine_with_the_mock(pki, mock_server):
    server = mock_server()
    result = enroll(EnrollmentRequest(
        kind="p10cr", server_url=server.url, new_key=pki.new_key,
        subject=parse_dn("/CN=router1.example.net"),
        mac=MacCredentials(REFERENCE.encode(), SECRET.encode()), weak_algorithms=True,
        total_timeout=20))
    assert isinstance(result, Enrolled), str(result)
    assert result.messages.sent == {"p10cr": 1, "certConf": 1}


def test_rr_with_the_mock(pki, mock_server, tmp_path):
    """The mock revokes only its -rsp_cert; the rr is signed with the certificate's own key."""
    server = mock_server()
    done = run_cli("rr", "--server", server.url, "--oldcert", pki.path("issued.pem"),
                   "--key", pki.path("new.key"), "--srvcert", pki.path("server.pem"),
                   "--revreason", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"accepted: revoked serial {pki.issued.serial_number:X} of " in done.stdout
    # another certificate is not the mock's: refused with the CA's reason
    done = run_cli("rr", "--server", server.url, "--oldcert", pki.path("client.pem"),
                   "--ref", REFERENCE, "--secret", f"pass:{SECRET}", "--weak-algorithms", cwd=tmp_path)
    assert done.returncode == 1
    assert "rejection" in done.stderr or "error" in done.stderr


def test_genm_with_the_mock_echo(pki, mock_server, tmp_path):
    """OpenSSL 3.0's mock answers a genm with the entries it received: caCerts, absent."""
    server = mock_server()
    result = enroll(EnrollmentRequest(
        kind="genm", server_url=server.url, mac=MacCredentials(REFERENCE.encode(), SECRET.encode()),
        weak_algorithms=True, general=(m.InfoTypeAndValue(m.INFO_TYPES["caCerts"][0]),), total_timeout=20))
    assert isinstance(result, GeneralResponse), str(result)
    assert [e.oid for e in result.entries] == [m.INFO_TYPES["caCerts"][0]]
    assert result.messages.sent == {"genm": 1} and result.messages.received == {"genp": 1}
    done = run_cli("genm", "--server", server.url, "--ref", REFERENCE, "--secret", f"pass:{SECRET}",
                   "--weak-algorithms", "--infotype", "caCerts", "--cacertsout", "cacerts.pem", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "caCerts: 0 certificate(s)" in done.stdout


# -- tools/testca ---------------------------------------------------------------------------

@pytest.fixture
def ca(tmp_path):
    with run_testca(tmp_path / "ca") as running:
        yield running


def mac_args(ca) -> list[str]:
    return ["--server", ca.url, "--ref", ca.ref, "--secret", f"pass:{ca.secret}"]


def test_p10cr_then_rr_signed_with_the_certificate_then_crl(ca, pki, tmp_path):
    done = run_cli("p10cr", *mac_args(ca), "--csr", make_csr(tmp_path, pki.path("new.key")),
                   "--certout", "p10.pem", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    issued = x509.load_pem_x509_certificate((tmp_path / "p10.pem").read_bytes())
    assert issued.public_key() == pki.new_key.public_key()

    done = run_cli("rr", "--server", ca.url, "--oldcert", "p10.pem", "--key", pki.path("new.key"),
                   "--trusted", str(ca.directory / "ca.pem"), "--revreason", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_cli("rr", *mac_args(ca), "--oldcert", "p10.pem", "--revreason", "1", cwd=tmp_path)
    assert done.returncode == 1 and "certRevoked" in done.stderr

    done = run_cli("genm", *mac_args(ca), "--infotype", "crlStatusList", "--crlcert", "p10.pem",
                   "--crlout", "ca.crl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    crl = x509.load_pem_x509_crl((tmp_path / "ca.crl").read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(issued.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise
    # holding that CRL: nothing newer
    done = run_cli("genm", *mac_args(ca), "--infotype", "crlStatusList", "--crlcert", "p10.pem",
                   "--oldcrl", "ca.crl", cwd=tmp_path)
    assert done.returncode == 0 and "no newer CRL" in done.stdout, done.stdout + done.stderr


def test_ca_certs_and_certificate_request_template(ca, tmp_path):
    done = run_cli("genm", *mac_args(ca), "--infotype", "caCerts", "--cacertsout", "cas.pem",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert x509.load_pem_x509_certificates((tmp_path / "cas.pem").read_bytes()) == \
        [x509.load_pem_x509_certificate(ca.certificate_pem.encode())]
    done = run_cli("genm", *mac_args(ca), "--infotype", "certReqTemplate", "--template", "t.der",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from pyasn1.codec.der import decoder
    from pyasn1_alt_modules import rfc9480
    template, rest = decoder.decode((tmp_path / "t.der").read_bytes(),
                                    asn1Spec=rfc9480.CertReqTemplateContent())
    assert not rest
    assert template["keySpec"].isValue


def test_root_ca_key_update_checked_against_the_current_root(tmp_path, pki):
    """The CA rolls its root; newWithNew is accepted only with newWithOld verified by the
    root trusted now, and the next enrolment trusts the new root."""
    state = tmp_path / "ca"
    with run_testca(state) as ca:
        old_root = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
        done = run_cli("genm", *mac_args(ca), "--infotype", "rootCaCert",
                       "--oldwithold", str(state / "ca.pem"), "--newwithnew", "new.pem",
                       cwd=tmp_path)
        assert done.returncode == 0 and "no root CA key update" in done.stdout, done.stderr
        (tmp_path / "old.pem").write_bytes((state / "ca.pem").read_bytes())
        ir = enroll(EnrollmentRequest(kind="ir", server_url=ca.url, new_key=pki.client_key,
                                      subject=parse_dn("/CN=router1"), trusted=(old_root,),
                                      mac=MacCredentials(ca.ref.encode(), ca.secret.encode())))
        assert isinstance(ir, Enrolled), str(ir)
    with run_testca(state, "--roll-root") as ca:
        # a root the new one is not chained to: refused
        done = run_cli("genm", *mac_args(ca), "--infotype", "rootCaCert",
                       "--oldwithold", pki.path("other_root.pem"), "--newwithnew", "bad.pem",
                       cwd=tmp_path)
        assert done.returncode == 1 and "newWithOld" in done.stderr, done.stdout + done.stderr
        assert not (tmp_path / "bad.pem").exists()
        done = run_cli("genm", *mac_args(ca), "--infotype", "rootCaCert", "--oldwithold", "old.pem",
                       "--newwithnew", "new.pem", "--newwithold", "nwo.pem", "--oldwithnew", "own.pem",
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        new_root = x509.load_pem_x509_certificate((tmp_path / "new.pem").read_bytes())
        assert new_root != old_root and new_root.public_key() != old_root.public_key()
        x509.load_pem_x509_certificate((tmp_path / "nwo.pem").read_bytes()).verify_directly_issued_by(
            old_root)
        # the next enrolment (a KUR signed with the old root's certificate) trusts the new root
        kur = enroll(EnrollmentRequest(
            kind="kur", server_url=ca.url, new_key=pki.new_key,
            signer=SignerCredentials(ir.certificate, pki.client_key), trusted=(new_root,)))
        assert isinstance(kur, Enrolled), str(kur)
        kur.certificate.verify_directly_issued_by(new_root)
        stale = enroll(EnrollmentRequest(
            kind="kur", server_url=ca.url, new_key=pki.new_key,
            signer=SignerCredentials(ir.certificate, pki.client_key), trusted=(old_root,)))
        assert isinstance(stale, Failed) and stale.kind.value == "protection"



@pytest.mark.parametrize("link", ["newWithOld", "oldWithNew"])
def test_root_ca_key_update_with_a_link_key_of_an_unknown_type_is_refused(pki, link):
    """A link certificate whose key type cryptography does not know, correctly signed, is
    refused by name (RFC 9483 4.3.2: its key must be compared with the roots'), not a crash."""
    import datetime

    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.cmp import genm
    from agent.cmp.protection import ProtectionError
    from cmp_mock_pki import issue, with_key_algorithm

    unknown = "1.3.6.1.4.1.99999.1"  # no key type cryptography knows
    new_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Test Root CA 2")
    new = issue(name, new_key.public_key(), name, new_key, ca=True)
    new_with_old = issue(name, new_key.public_key(), pki.root.subject, pki.root_key, ca=True)
    old_with_new = issue(pki.root.subject, pki.root.public_key(), name, new_key, ca=True)
    if link == "newWithOld":
        new_with_old = with_key_algorithm(new_with_old, pki.root_key, unknown)
    else:
        old_with_new = with_key_algorithm(old_with_new, new_key, unknown)
    now = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(ProtectionError) as raised:
        genm.verify_root_update(m.RootCaKeyUpdate(new, new_with_old, old_with_new), pki.root, now)
    assert str(raised.value).startswith(f"{link}: its public key cannot be read (")
    # the same update with readable keys is accepted
    good = m.RootCaKeyUpdate(new, issue(name, new_key.public_key(), pki.root.subject,
                                        pki.root_key, ca=True),
                             issue(pki.root.subject, pki.root.public_key(), name, new_key, ca=True))
    assert genm.verify_root_update(good, pki.root, now) == new

def test_cert_profile_and_implicit_confirm_in_general_info(pki, mock_server):
    """RFC 9480 2.17 certProfile next to implicitConfirm in generalInfo: read back by our
    decoder, accepted by OpenSSL's mock (which grants implicit confirmation when told)."""
    fields = m.HeaderFields(sender=parse_dn("/CN=a"), recipient=parse_dn("/CN=b"),
                            transaction_id=b"t" * 16, sender_nonce=b"n" * 16,
                            implicit_confirm=True, cert_profile="router")
    decoded = m.decode_message(m.encode_message(fields, m.pki_conf_body(), None))
    assert decoded.cert_profile == "router" and decoded.implicit_confirm
    server = mock_server("-grant_implicitconf")
    result = enroll(EnrollmentRequest(
        kind="ir", server_url=server.url, new_key=pki.new_key,
        subject=parse_dn("/CN=router1.example.net"), implicit_confirm=True, cert_profile="router",
        mac=MacCredentials(REFERENCE.encode(), SECRET.encode()), weak_algorithms=True,
        total_timeout=20))
    assert isinstance(result, Enrolled), str(result)
    assert result.messages.sent == {"ir": 1}


def test_a_genp_without_the_answering_entry_is_not_taken_for_no_update(pki, mock_server, tmp_path):
    """RFC 9483 4.3.2: the genp answers rootCaCert with an entry of infoType
    rootCaKeyUpdate (without a value when there is no update). OpenSSL 3.0's mock echoes
    the rootCaCert entry instead: that does not answer, and is not "no root CA key update"."""
    server = mock_server()
    done = run_cli("genm", "--server", server.url, "--ref", REFERENCE, "--secret", f"pass:{SECRET}",
                   "--weak-algorithms", "--infotype", "rootCaCert", "--oldwithold", pki.path("root.pem"),
                   "--newwithnew", "newwithnew.pem", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert done.stderr == (
        f"cmp-agent cmp genm failed: the genp does not answer rootCaCert: no entry of infoType"
        f" {m.INFO_TYPES['rootCaCert'][1]} (its entries: {m.INFO_TYPES['rootCaCert'][0]})\n")
    assert not (tmp_path / "newwithnew.pem").exists()
