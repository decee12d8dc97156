"""agent.mallocarenas: the agent's threads share glibc's main malloc arena."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from agent import mallocarenas

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or mallocarenas.operator_limit(),
    reason="glibc's malloc on Linux, with no arena limit set in the environment")

#: threads that allocate malloc blocks (bytes over 512), then
#: glibc's malloc_stats() on stderr: one "Arena N:" line per arena
_ARENAS = textwrap.dedent("""
    import ctypes, sys, threading
    from agent.mallocarenas import limit_arenas
    print(limit_arenas(int(sys.argv[1])) if sys.argv[1] != "-" else None, flush=True)
    start = threading.Barrier(6)
    def churn():
        start.wait()
        kept = []
        for i in range(20_000):
            kept.append(bytes(4096 + i % 64))
            if len(kept) > 64:
                del kept[:32]
    threads = [threading.Thread(target=churn) for _ in range(6)]
    for t in threads: t.start()
    for t in threads: t.join()
    ctypes.CDLL(None).malloc_stats()
""")


def _arenas(limit: str) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", _ARENAS, limit], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip(), done.stderr.count("Arena ")


def test_with_the_limit_every_thread_allocates_in_the_main_arena():
    said, arenas = _arenas("1")
    assert said == "True"
    assert arenas == 1


def test_without_it_threads_get_arenas_of_their_own():
    """What the limit prevents (glibc gives a new thread that allocates an arena)."""
    said, arenas = _arenas("-")
    assert said == "None"
    assert arenas > 1


def test_an_operators_malloc_arena_max_is_left_to_glibc(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert mallocarenas.limit_arenas() is False


def test_an_operators_glibc_tunable_is_left_to_glibc(monkeypatch):
    """glibc.malloc.arena_max in GLIBC_TUNABLES (the tunables' way to set the same)."""
    monkeypatch.setenv("GLIBC_TUNABLES",
                       "glibc.malloc.trim_threshold=65536:glibc.malloc.arena_max=2")
    assert mallocarenas.limit_arenas() is False
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=65536")
    assert mallocarenas.operator_limit() is False
