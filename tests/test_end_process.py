"""agent.cli.end_process (issue 11): a `cmp-agent cmp` process ends without the
interpreter's finalization, after what Python's exit does that a program sees: its
threads waited for, the atexit functions run, stdout and stderr flushed, the status
kept; when a stream cannot be flushed, Python's own exit takes over."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import atexit, sys, threading, time
import agent.cli
atexit.register(lambda: print("atexit ran", flush=True))
def late():
    time.sleep(0.3)
    print("thread done")
threading.Thread(target=late).start()
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("buffered ", end="")
sys.stderr.write("to stderr ")
{before}
agent.cli.end_process(3)
print("end_process returned", file=sys.stderr, flush=True)
"""


def test_it_waits_runs_atexit_flushes_and_keeps_the_status():
    done = subprocess.run([sys.executable, "-c", CHILD.format(before="")], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert done.stdout == "buffered thread done\natexit ran\n"
    assert done.stderr == "to stderr "


def test_a_stream_that_cannot_be_flushed_is_left_to_pythons_exit():
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(before="time.sleep(0.5)")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=buffered)
    child.stdout.close()  # the reader goes away before the output is flushed
    time.sleep(0.1)
    _, err = child.communicate(timeout=30)
    assert b"end_process returned" in err
    assert child.returncode == 120  # Python's exit: stdout could not be flushed


def test_only_cmp_ends_at_once():
    from agent import cli

    assert cli.END_AT_ONCE == {"cmp"}


def test_an_idle_thread_pool_does_not_keep_it_waiting():
    # an executor's idle workers wait for work until threading's exit hook tells them
    # to stop: joining them without it would wait for ever
    code = """
import concurrent.futures, agent.cli
pool = concurrent.futures.ThreadPoolExecutor(2)
print(pool.submit(sum, [1, 2]).result(), flush=True)
agent.cli.end_process(5)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert (done.returncode, done.stdout) == (5, "3\n"), done.stderr
