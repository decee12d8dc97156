"""The fuzz harness (tools/fuzz) in smoke mode: a thousand mutated NETCONF messages
over real SSH sessions and a thousand CMP transactions with mutated CA answers.

No timing asserts: stalls and the memory peak are reported, not judged. The
long mode and its last figures are in the README ("Fuzzing").
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.cmp import messages as m

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "fuzz"))

import cmp_fuzz  # noqa: E402
import netconf_fuzz  # noqa: E402

INPUTS = 1000


def test_mutated_netconf_messages_neither_crash_nor_break_the_agent():
    summary = netconf_fuzz.run(INPUTS, seed=1)
    print(summary.report())
    assert summary.inputs == INPUTS
    assert summary.crashes == 0
    assert summary.internal_errors == []
    assert summary.probes > 0  # the second session was answered all along


def test_mutated_cmp_answers_end_in_typed_results():
    summary = cmp_fuzz.run(INPUTS, seed=1)
    print(summary.report())
    assert summary.inputs == INPUTS
    assert summary.crashes == []
    assert summary.accepted_mutated == []  # no enrolment from a forged answer
    assert summary.enrolled > 0 and summary.failed > 0  # both paths were taken


def test_an_error_message_whose_body_does_not_decode_fails_cleanly():
    """Found by the harness (seed 3, input 92): an error body that does not
    decode escaped enroll() as MessageError instead of a Failed result."""
    summary = cmp_fuzz.run(1, seed=3, start=92)
    assert summary.crashes == []
    assert summary.failed == 1


def _pki_conf(extra_certs=()) -> bytes:
    """A MAC-protected pkiConf, the same bytes each time but for *extra_certs*."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz CA")])
    fields = m.HeaderFields(sender=name, recipient=name, transaction_id=b"\x11" * 16,
                            sender_nonce=bytes(16), recip_nonce=bytes(16))
    protector = m.MacProtector(b"fuzz", b"fuzz-secret", rng=lambda n: bytes(n))
    return m.encode_message(fields, m.pki_conf_body(), protector, extra_certs)


def test_mutations_are_judged_by_what_they_touched():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "extra")])
    now = datetime.datetime.now(datetime.timezone.utc)
    extra = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(key.public_key()).serial_number(1).not_valid_before(now)
             .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    answer = _pki_conf()
    assert cmp_fuzz.classify(answer, answer) == cmp_fuzz.UNCHANGED
    assert cmp_fuzz.classify(answer, _pki_conf((extra,))) == cmp_fuzz.UNPROTECTED
    changed = answer.replace(b"\x11" * 16, b"\x12" + b"\x11" * 15)  # the transactionID
    assert m.decode_message(changed).transaction_id != m.decode_message(answer).transaction_id
    assert cmp_fuzz.classify(answer, changed) == cmp_fuzz.PROTECTED
    assert cmp_fuzz.classify(answer, answer[:-1]) == cmp_fuzz.PROTECTED  # no longer decodes


def test_the_long_runs_one_enrolment_after_a_mutation_was_a_no_op():
    """The README's long run (seed 9) enrolled once after a mutation: input 2393, whose
    mutations left the CA's answer byte for byte as it was. Not a forgery, and counted
    as such."""
    summary = cmp_fuzz.run(1, seed=9, start=2393)
    assert summary.enrolled == 1
    assert summary.accepted_unchanged == 1
    assert summary.accepted_mutated == [] and summary.accepted_unprotected == 0
