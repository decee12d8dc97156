"""The fuzz harness (tools/fuzz) in smoke mode: a thousand mutated NETCONF messages
over real SSH sessions and a thousand CMP transactions with mutated CA answers.

No timing asserts: stalls and the memory peak are reported, not judged. The
long mode and its last figures are in the README ("Fuzzing").
"""

from __future__ import annotations

import sys
from pathlib import Path

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
    assert summary.enrolled > 0 and summary.failed > 0  # both paths were taken


def test_an_error_message_whose_body_does_not_decode_fails_cleanly():
    """Found by the harness (seed 3, input 92): an error body that does not
    decode escaped enroll() as MessageError instead of a Failed result."""
    summary = cmp_fuzz.run(1, seed=3, start=92)
    assert summary.crashes == []
    assert summary.failed == 1
