"""Tasks whose first step runs at once, as Python 3.12's eager tasks (issue 11).

A session's RPCs are handled by a coroutine (:meth:`NetconfServer._drain`) that
usually finishes without suspending: a small ``<get-config>`` answered from the
reply cache. Started as an ordinary task it would wait for the loop's next
iteration (a task object, its scheduled step, one more ``epoll_wait``): about
5 % of the agent's CPU per small RPC (tools/bench/README.md, "Issue 11").
:func:`start` runs it at once instead, and makes a task of what is left only
if it suspends. From Python 3.12 on that is ``asyncio.Task(..., eager_start=True)``;
on 3.11 the first step runs here, in a copy of the caller's context as a task's
would, but not in a task of its own: until the coroutine first suspends,
``asyncio.current_task()`` is ``None`` or the caller's task (asyncssh's
``_start_reading`` delivers a channel's first data from one). 3.11's
``asyncio.wait_for`` needs no task; ``asyncio.timeout`` and ``TaskGroup`` do, and
are not used before a handler's first suspension.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any


_EAGER = sys.version_info >= (3, 12)


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task | None:
    """Run *coro* until it first suspends and return the task that runs the rest,
    ``None`` if it finished at once. An exception it raises before suspending goes
    to the loop's exception handler at once (a task's later, when it is freed); a
    ``CancelledError`` ends it silently, as it ends a task (cancelled), and does not
    reach the caller (a protocol's ``data_received``, whose transport it would abort)."""
    loop = asyncio.get_running_loop()
    if _EAGER:
        task = asyncio.Task(coro, loop=loop, eager_start=True)
        if not task.done():
            return task
        failure = None if task.cancelled() else task.exception()
    else:
        context = contextvars.copy_context()
        try:
            first = context.run(coro.send, None)
        except (StopIteration, asyncio.CancelledError):  # done, or ended as a cancelled task
            return None
        except Exception as exc:  # noqa: BLE001 - reported below, as a task's would be
            failure = exc
        else:
            return loop.create_task(_Rest(coro, first), context=context)
    if failure is not None:
        loop.call_exception_handler({"message": "exception in a task's first step",
                                     "exception": failure})
    return None


class _Rest(Coroutine[Any, Any, None]):
    """*coro*, which yielded *first* at the end of its first step, as a task's
    coroutine: the task's first step waits for what *coro* waits for; what the task
    sends or throws (its cancellation, also before that first step) goes to *coro*."""

    def __init__(self, coro: Coroutine[Any, Any, None], first: object):
        self._coro, self._first = coro, first
        self._resumed = False

    def send(self, value: object) -> object:
        if not self._resumed:
            self._resumed = True
            return self._first
        return self._coro.send(value)

    def throw(self, *exc: Any) -> object:
        self._resumed = True
        return self._coro.throw(*exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> "_Rest":
        return self

    def __next__(self) -> object:
        return self.send(None)
