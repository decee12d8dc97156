"""Smoke test of tools/bench/bench_scale.py: a small run against tools/testca reports
every figure, renews every certificate of its storm and keeps the CA concurrency
within the limit (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_small_scale_run_renews_all_within_the_concurrency_limit(tmp_path):
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench" / "bench_scale.py"), "--sessions", "30",
         "--storm", "12", "--concurrency", "2", "--jitter", "1", "--idle-seconds", "2",
         "--storm-timeout", "240", "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["settle_s"] >= 0
    for name in ("edit_ms", "commit_ms", "rss_kb", "renewals_per_s", "storm_seconds",
                 "netconf_p99_ms_during_storm", "netconf_median_ms_during_storm"):
        assert result[name] > 0, name
    assert result["idle_cpu_percent"] >= 0
    assert result["storm_renewed"] == result["storm_sessions"] == 12
    assert 1 <= result["ca_max_concurrent"] <= 2
    assert result["ca_connections"] >= 12
    assert result["goals"]["all_renewed"] and result["goals"]["ca_concurrency_bounded"]
