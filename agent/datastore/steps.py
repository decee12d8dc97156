"""Long computations in steps, so that the event loop can serve others between them.

A computation over a large configuration (the quick check of a commit, the
report-all view of running) is a generator that pauses (yields ``None``)
after each list entry and returns its result. :func:`run_steps` runs one to
the end at once; :func:`run_cooperatively` runs it on the event loop in
slices of about :data:`SLICE_SECONDS`, giving the loop back between slices.
Unlike a worker thread, nothing then competes with the loop for the GIL: a
small RPC of another session waits for at most one slice.

A step may instead yield a function of no arguments: work that gives up the
GIL or is better done at once (a full validation, writing a file).
:func:`run_steps` calls it there, :func:`run_cooperatively` in a worker
thread; its result is sent back into the computation, its exception raised
there.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Generator, TypeVar

T = TypeVar("T")
#: a computation in steps: pauses (None) or calls to make (see above), then its result
Steps = Generator["Callable[[], Any] | None", Any, T]

#: how long a slice of a computation may hold the event loop
SLICE_SECONDS = 0.0005
#: loop iterations between two slices: an RPC that arrives meanwhile takes a few
#: (its input, the task that answers it, the write) and is answered before the next slice
YIELDS = 4


def run_steps(steps: Steps[T]) -> T:
    """The result of *steps*, without pausing; the calls it asks for made here."""
    value: Any = None
    error: Exception | None = None
    try:
        while True:
            call = steps.send(value) if error is None else steps.throw(error)
            value = error = None
            if call is not None:
                try:
                    value = call()
                except Exception as exc:  # raised where the computation asked for the call
                    error = exc
    except StopIteration as stop:
        return stop.value


async def give_way() -> None:
    """Let the event loop run :data:`YIELDS` iterations: an RPC that arrived
    meanwhile is answered before the caller goes on."""
    for _ in range(YIELDS):
        await asyncio.sleep(0)


async def run_cooperatively(steps: Steps[T], slice_seconds: float | None = None) -> T:
    """The result of *steps*, run on the event loop in slices of about
    *slice_seconds* (default :data:`SLICE_SECONDS`); the calls it asks for
    made in worker threads."""
    if slice_seconds is None:
        slice_seconds = SLICE_SECONDS
    clock = time.perf_counter
    deadline = clock() + slice_seconds
    value: Any = None
    error: Exception | None = None
    try:
        while True:
            call = steps.send(value) if error is None else steps.throw(error)
            value = error = None
            if call is not None:
                try:
                    value = await asyncio.to_thread(call)
                except Exception as exc:  # raised where the computation asked for the call
                    error = exc
                deadline = clock() + slice_seconds
            elif clock() >= deadline:
                await give_way()
                deadline = clock() + slice_seconds
    except StopIteration as stop:
        return stop.value
