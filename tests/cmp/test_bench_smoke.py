"""Smoke run of tools/bench/bench_cmp.py: it runs and prints the documented JSON (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench" / "bench_cmp.py"


def test_bench_prints_medians_and_ratios():
    done = subprocess.run([sys.executable, str(BENCH), "--n", "2"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n"] == 2
    assert set(report["median_ms"]) == {"ours_keep_alive", "ours_no_keep_alive",
                                        "openssl_keep_alive", "openssl_no_keep_alive",
                                        "ours_process", "openssl_process"}
    assert all(value > 0 for value in report["median_ms"].values())
    assert set(report["ratio_ours_over_openssl"]) == {"keep_alive", "no_keep_alive", "process"}
    assert set(report["process_cpu_median_ms"]) == {"ours_process", "openssl_process"}
    assert report["process_cpu_median_ms"]["ours_process"] > 0
    assert report["process_at_or_below_goal"] == (report["median_ms"]["ours_process"] <= 150)
