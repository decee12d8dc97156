"""The session's algorithm choices through NETCONF and the shell, against tools/testca
(which verifies PBMAC1 and answers with the MAC it was asked with): PBMAC1 sent and
verified, the signature digest, and the weak-algorithm switch. What went over the wire
is read back by ``openssl asn1parse``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cmp_agent_command import agent_command
from http_proxy import CmpHttpProxy
from ncclient.operations import RPCError

from nc_helpers import connect
from pki_helpers import ENTITY, commit_pki, mac_session, out, rpc
from testca_process import run_testca

CMP_AGENT = agent_command()


@pytest.fixture
def ca(tmp_path):
    with run_testca(tmp_path / "ca") as running:
        yield running


@pytest.fixture
def recording_proxy(ca):
    answers: list[bytes] = []

    def keep(answer: bytes) -> bytes:
        answers.append(answer)
        return answer

    proxy = CmpHttpProxy(ca.port, rewrite=keep)
    proxy.answers = answers
    yield proxy
    proxy.stop()


def asn1parse(message: bytes, tmp_path: Path) -> str:
    path = tmp_path / "message.der"
    path.write_bytes(message)
    return subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", str(path)],
                          capture_output=True, text=True, check=True).stdout


def test_pbmac1_and_digest_sessions(fresh_agent, ca, recording_proxy, tmp_path):
    session = mac_session("s1", ca, extra="<integrity-algorithm>pbmac1-sha512</integrity-algorithm>"
                                          "<digest>sha384</digest>").replace(ca.url, recording_proxy.url)
    with connect(fresh_agent) as m:
        commit_pki(m, ENTITY + session)
        ir = rpc(m, "cmp-initial-request", session_name="s1")
        assert out(ir, "status") == "success", out(ir, "status-text")
        sent, answered = (asn1parse(recording_proxy.received[0], tmp_path),
                          asn1parse(recording_proxy.answers[0], tmp_path))
        for text in (sent, answered):  # RFC 9481 6.1.1: PBMAC1 = PBKDF2 + HMAC, both ways
            assert ":PBMAC1" in text and ":PBKDF2" in text and ":hmacWithSHA512" in text
        assert ":sha384WithRSAEncryption" in sent  # the POP of the agent's RSA key

        # a signed request: the digest of the protection and of the POP
        commit_pki(m, f"<cmp-session><name>s1</name><authentication-cert>{out(ir, 'certificate-file')}"
                      "</authentication-cert><origin-authentication-method>signature"
                      "</origin-authentication-method></cmp-session>")
        cr = rpc(m, "cmp-certificate-request", session_name="s1")
        assert out(cr, "status") == "success", out(cr, "status-text")
        signed = asn1parse(recording_proxy.received[-2], tmp_path)  # cr, then certConf
        assert signed.count(":sha384WithRSAEncryption") == 2 and ":PBMAC1" not in signed

        # sha1 is weak: refused at commit once weak algorithms are disabled (they are on by
        # default, as the seed's WEAKEA package is)
        m.edit_config(target="candidate", config=(
            '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
            '<pki xmlns="urn:cmp-agent:yang:cmp-agent-pki">'
            "<weak-algorithms-enabled>false</weak-algorithms-enabled><cmp-session><name>s1</name>"
            "<digest>sha1</digest></cmp-session></pki></config>"))
        with pytest.raises(RPCError) as err:
            m.commit()
        assert err.value.app_tag == "weak-algorithm-disabled" and "sha1" in err.value.message
        m.discard_changes()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CMP_AGENT, "cmp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_cli_pbmac1_and_weak_mac(ca, recording_proxy, tmp_path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                    "-out", "new.key"], cwd=tmp_path, check=True, capture_output=True)
    common = ["ir", "--server", recording_proxy.url, "--ref", ca.ref, "--secret", f"pass:{ca.secret}",
              "--newkey", "new.key", "--subject", "/CN=router1", "--certout", "cert.pem"]
    done = run_cli(*common, "--mac", "pbmac1-sha256", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sent = asn1parse(recording_proxy.received[0], tmp_path)
    assert ":PBMAC1" in sent and ":hmacWithSHA256" in sent
    assert ":ecdsa-with-SHA384" in sent  # a P-384 key's own hash for its POP
    assert ":PBMAC1" in asn1parse(recording_proxy.answers[0], tmp_path)

    done = run_cli(*common, "--mac", "hmac-sha1", cwd=tmp_path)
    assert done.returncode == 2 and "MAC hmac-sha1 is a weak algorithm" in done.stderr
    done = run_cli(*common, "--mac", "hmac-sha1", "--weak-algorithms", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
