"""CMP response mutation behind a fake CA.

The agent's CMP client (:func:`agent.cmp.client.enroll`) runs IR transactions
against tools/testca, in process, through a transport that mutates the CA's
answers (one of them, or several, at random). Every transaction must end in
a typed result (``Enrolled`` or ``Failed``); an exception out of ``enroll``
is a crash, and an ``Enrolled`` result from an answer whose protected part or
protection was mutated is a forgery: counted under ``accepted_mutated``, with the
seed and input that replay it.

What a mutation did is judged by :func:`classify`, not by whether the mutator ran:
a mutation may leave the bytes as they were (a byte written over an equal one, one bit
flipped twice: seed 9, input 2393 of the README's long run was such a no-op, one
"interesting" byte written over an equal one in the pkiConf), or change only what the
protection does not cover (extraCerts, RFC 4210 5.1; the MAC and signature are over header and
body only). Enrolments after such answers are rightly accepted and are counted apart.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testca"))

from ca import CaSettings, TestCa  # noqa: E402
from mutate import Mutator  # noqa: E402

from agent.cmp import messages as m  # noqa: E402
from agent.cmp.client import EnrollmentRequest, MacCredentials, enroll  # noqa: E402
from agent.cmp.transaction import Enrolled, Failed  # noqa: E402

#: DER headers and values a CMP response is made of
TOKENS = (b"\x30\x82\xff\xff", b"\x30\x80", b"\x02\x01\x00", b"\x02\x01\x03", b"\x04\x00",
          b"\xa0\x03\x02\x01\x02", b"\x06\x09\x2a\x86\x48\x86\xf6\x7d\x07\x42\x0d",
          b"\x18\x0f20991231235959Z", b"\x03\x02\x07\x80", b"\x05\x00", b"\xa1\x00")


@dataclass
class CmpSummary:
    inputs: int = 0
    enrolled: int = 0
    failed: int = 0
    crashes: list[str] = field(default_factory=list)
    #: enrolled after a mutation of a protected part or protection: "seed S input I"
    accepted_mutated: list[str] = field(default_factory=list)
    #: enrolled after mutations that left the bytes as they were, or changed only
    #: unprotected bytes (the rest of ``enrolled`` had no mutation at all)
    accepted_unchanged: int = 0
    accepted_unprotected: int = 0
    slowest: float = 0.0

    def report(self) -> str:
        return (f"cmp: {self.inputs} transactions with mutated CA answers: {self.enrolled}"
                f" enrolled ({len(self.accepted_mutated)} after a mutation of protected bytes,"
                f" {self.accepted_unprotected} of unprotected bytes only, {self.accepted_unchanged}"
                f" after mutations that left the bytes as they were), {self.failed} failed"
                f" cleanly, {len(self.crashes)} crashes; slowest {self.slowest:.2f} s")


#: what a mutation did to an answer, from harmless to suspect
UNCHANGED, UNPROTECTED, PROTECTED = "unchanged", "unprotected", "protected"
_ORDER = (None, UNCHANGED, UNPROTECTED, PROTECTED)


def classify(original: bytes, mutated: bytes) -> str:
    """What the mutation of *original* into *mutated* touched: nothing (``unchanged``),
    only bytes outside header, body and protection (``unprotected``: extraCerts, RFC
    4210 5.1), or what the protection covers or is (``protected``, also when the
    mutated answer no longer decodes)."""
    if mutated == original:
        return UNCHANGED
    before = m.decode_message(original)
    try:
        after = m.decode_message(mutated)
    except Exception:  # noqa: BLE001 - whatever the client makes of it, it is not a forgery
        return PROTECTED
    same = before.protected_part == after.protected_part and before.protection == after.protection
    return UNPROTECTED if same else PROTECTED


class MutatingTransport:
    """Hands each request to the CA; mutates the answers the plan says."""

    def __init__(self, ca: TestCa, mutator: Mutator, plan: set[int]):
        self.ca, self.mutator, self.plan = ca, mutator, plan
        self.exchanges = 0
        #: the most a mutation touched in this transaction (see :func:`classify`);
        #: None while no answer was mutated
        self.touched: str | None = None

    def post(self, message: bytes, timeout: float) -> bytes:
        answer = self.ca.handle(message)
        if self.exchanges in self.plan:
            mutated = self.mutator.mutate(answer)
            self.touched = max(self.touched, classify(answer, mutated), key=_ORDER.index)
            answer = mutated
        self.exchanges += 1
        return answer

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def run(inputs: int, seed: int = 1, start: int = 0) -> CmpSummary:
    """*inputs* IR transactions, each with its own mutations derived from *seed* and
    its number (from *start*: one input can be replayed)."""
    summary = CmpSummary()
    with tempfile.TemporaryDirectory() as directory:
        ca = TestCa(Path(directory), CaSettings(reference=b"fuzz", secret=b"fuzz-secret"))
        key = ec.generate_private_key(ec.SECP256R1())
        for i in range(start, start + inputs):
            rng = random.Random(seed * 1_000_003 + i)
            ca.settings.poll_count = rng.choice((0, 0, 0, 1, 2))
            plan = {n for n in range(4) if rng.random() < 0.5} or {0}
            transport = MutatingTransport(ca, Mutator(rng, TOKENS), plan)
            request = EnrollmentRequest(
                kind="ir", server_url="http://fake-ca.invalid/pkix/", new_key=key,
                subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"fuzz-{i}")]),
                mac=MacCredentials(b"fuzz", b"fuzz-secret", iteration_count=100),
                total_timeout=30)
            started = time.monotonic()
            try:
                result = enroll(request, transport, rng=rng.randbytes, sleep=lambda s: None)
            except Exception:  # noqa: BLE001 - that is what is counted
                summary.crashes.append(f"seed {seed} input {i}: {traceback.format_exc()}")
            else:
                if isinstance(result, Enrolled):
                    summary.enrolled += 1
                    if transport.touched == PROTECTED:
                        summary.accepted_mutated.append(f"seed {seed} input {i}")
                    elif transport.touched == UNPROTECTED:
                        summary.accepted_unprotected += 1
                    elif transport.touched == UNCHANGED:
                        summary.accepted_unchanged += 1
                else:
                    assert isinstance(result, Failed)
                    summary.failed += 1
            summary.slowest = max(summary.slowest, time.monotonic() - started)
            summary.inputs += 1
    return summary
