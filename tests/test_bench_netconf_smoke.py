"""Smoke test of tools/bench: the benchmark runs against both servers and reports every figure.

No timing is asserted (speed is only measured by the benchmark itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "tools" / "bench"

sys.path.insert(0, str(BENCH_DIR))  # tools/bench is a scripts directory, not a package
import netconf_reference  # noqa: E402
import raw_client  # noqa: E402

FIGURES = {
    "session_setup_ms", "session_setup_server_cpu_ms", "get_config_ms", "get_config_rpcs_per_s",
    "get_config_server_cpu_ms_per_rpc", "edit_1000_commit_ms", "edit_1000_ms", "commit_1000_ms",
    "get_config_1000_ms", "concurrent_20_total_ms", "concurrent_20_rpc_ms", "peak_memory_kb",
    "memory_pss_20_sessions_kb", "get_config_during_commit_p99_ms",
    "get_config_during_commit_max_ms",
}
#: issue 11's absolute goals, reported for the agent
GOALS = {"get_config_during_commit_p99_ms", "startup_1000_sessions_to_hello_ms"}
#: CPU is read in clock ticks (10 ms): a tiny run may see none.
MAY_BE_ZERO = {"session_setup_server_cpu_ms", "get_config_server_cpu_ms_per_rpc"}


def test_chunked_decoder_reassembles_any_split():
    """RFC 6242 section 4.2: chunks and the end-of-chunks marker split at every byte."""
    stream = b"\n#5\nhello\n#3\n<a>\n##\n\n#2\nxy\n##\n"
    for cut in range(len(stream) + 1):
        decoder = raw_client.FrameDecoder()
        decoder.use_chunked()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == [b"hello<a>", b"xy"]


def test_eom_decoder_and_framing_round_trip():
    """RFC 6242 section 4.1 (end-of-message) and 4.2 (chunked) framing of our own messages."""
    for chunked in (False, True):
        decoder = raw_client.FrameDecoder()
        if chunked:
            decoder.use_chunked()
        data = raw_client.frame(b"<rpc/>", chunked) + raw_client.frame(b"<x/>", chunked)
        assert [m for b in data for m in decoder.feed(bytes([b]))] == [b"<rpc/>", b"<x/>"]


def test_bad_chunk_header_is_an_error():
    decoder = raw_client.FrameDecoder()
    decoder.use_chunked()
    with pytest.raises(raw_client.NetconfClientError, match="chunk"):
        decoder.feed(b"\n#abc\n")


def test_check_reply_raises_on_rpc_error():
    reply = (b'<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1">'
             b"<rpc-error><error-type>protocol</error-type><error-tag>lock-denied</error-tag>"
             b"</rpc-error></rpc-reply>")
    with pytest.raises(raw_client.NetconfClientError, match="lock-denied"):
        raw_client.check_reply(reply)


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="needs root to read as another user (CI runs as root)")
def test_pss_of_a_process_that_is_not_dumpable_is_unavailable_not_zero():
    """Run as a user who is not root, the benchmark may not read the agent's smaps_rollup
    (not dumpable): the PSS is None with the reason, not a sum that left the agent out.
    The reader imports as root, then becomes nobody (the checkout, a CI clone in a 0700
    directory, need not be readable by nobody)."""
    code = """if True:
        import os, sys
        sys.path.insert(0, "tools/bench")
        import bench_netconf
        from agent.serve import no_core_dumps
        ready, go = os.pipe()
        done, wait = os.pipe()
        if (child := os.fork()) == 0:  # the agent's stand-in: not dumpable, as the agent
            no_core_dumps()
            os.write(go, b"1")
            os.read(done, 1)
            os._exit(0)
        os.read(ready, 1)
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        print(repr(bench_netconf.memory_kb([os.getpid()])))
        print(repr(bench_netconf.memory_kb([os.getpid(), child])))
        os.write(wait, b"1")
        os.waitpid(child, 0)
    """
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    own, with_agent = (eval(line) for line in done.stdout.splitlines())
    assert own[0] > 0 and own[1] > 0 and own[2] is None  # its own memory map: readable
    hwm, pss, why = with_agent
    assert hwm > own[0] and pss is None and "smaps_rollup" in why and "root" in why


def test_report_of_an_unavailable_figure_is_null_without_ratio():
    import types

    import bench_netconf

    figures = {name: 2.0 for name in bench_netconf.FIGURES}
    bench = types.SimpleNamespace(
        n=1, meta={"agent": {}, "reference": {}},
        results={"agent": {**figures, "memory_pss_20_sessions_kb": None}, "reference": figures})
    pss = bench_netconf.report(bench, 0.0)["figures"]["memory_pss_20_sessions_kb"]
    assert pss["agent"] is None and pss["ratio"] is None and pss["agent_at_or_better"] is None
    assert bench_netconf.report(bench, 0.0)["figures"]["peak_memory_kb"]["ratio"] == 1.0


@pytest.mark.slow
def test_bench_reports_every_figure_for_both_servers(tmp_path):
    missing = netconf_reference.missing_tools()
    if missing:
        pytest.skip(f"reference server not installed ({', '.join(missing)}):"
                    f" {netconf_reference.INSTALL_HINT}")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "bench_netconf.py"), "--n", "20", "--json-out", str(out),
         "--rpc-timeout", "60", "--timeout", "240"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result
    assert set(result["figures"]) == FIGURES
    for name, figure in result["figures"].items():
        for side in ("agent", "reference"):
            value = figure[side]
            assert isinstance(value, (int, float)), (name, side, value)
            assert value > 0 or (name in MAY_BE_ZERO and value == 0), (name, side, value)
        if figure["reference"] > 0:
            assert figure["ratio"] == pytest.approx(figure["agent"] / figure["reference"],
                                                    rel=1e-2, abs=1e-3)
    assert set(result["goals"]) == GOALS
    for name, goal in result["goals"].items():
        assert goal["agent"] > 0 and goal["met"] == (goal["agent"] <= goal["goal"]), (name, goal)
    servers = result["meta"]["servers"]
    assert "cmp-agent-pki" in servers["reference"]["model"]
    assert servers["agent"]["host_key"] == servers["reference"]["host_key"] == "ssh-ed25519"
