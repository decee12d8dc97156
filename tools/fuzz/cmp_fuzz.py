"""CMP response mutation behind a fake CA.

The agent's CMP client (:func:`agent.cmp.client.enroll`) runs IR transactions
against tools/testca, in process, through a transport that mutates the CA's
answers (one of them, or several, at random). Every transaction must end in
a typed result (``Enrolled`` or ``Failed``); an exception out of ``enroll``
is a crash, and an ``Enrolled`` result from a mutated answer whose protection
no longer holds would be a forgery (counted under ``accepted_mutated``; a
mutation of bytes the MAC does not cover, such as extraCerts, may rightly be
accepted).
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
    accepted_mutated: int = 0
    slowest: float = 0.0

    def report(self) -> str:
        return (f"cmp: {self.inputs} transactions with mutated CA answers: {self.enrolled}"
                f" enrolled ({self.accepted_mutated} after a mutation), {self.failed} failed"
                f" cleanly, {len(self.crashes)} crashes; slowest {self.slowest:.2f} s")


class MutatingTransport:
    """Hands each request to the CA; mutates the answers the plan says."""

    def __init__(self, ca: TestCa, mutator: Mutator, plan: set[int]):
        self.ca, self.mutator, self.plan = ca, mutator, plan
        self.exchanges = 0
        self.mutated = False

    def post(self, message: bytes, timeout: float) -> bytes:
        answer = self.ca.handle(message)
        if self.exchanges in self.plan:
            answer = self.mutator.mutate(answer)
            self.mutated = True
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
                    summary.accepted_mutated += transport.mutated
                else:
                    assert isinstance(result, Failed)
                    summary.failed += 1
            summary.slowest = max(summary.slowest, time.monotonic() - started)
            summary.inputs += 1
    return summary
