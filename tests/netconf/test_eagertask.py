"""agent/netconf/eagertask.py: a coroutine's first step at once, the rest as a task;
on this Python and, where installed, on Python 3.12 (``eager_start``)."""

from __future__ import annotations

import asyncio
import contextvars
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.netconf import eagertask
from memory_server import MemoryClient

EAGERTASK = Path(__file__).resolve().parents[2] / "agent" / "netconf" / "eagertask.py"
VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="caller's")


def _scenarios() -> list[str]:
    """Each check, run in a fresh loop; returns what it saw."""
    seen: list[str] = []

    async def at_once() -> None:
        steps = []

        async def work() -> None:
            steps.append("ran")

        assert eagertask.start(work()) is None
        assert steps == ["ran"]  # before start returned: no loop iteration needed
        seen.append("at once")

    async def suspending() -> None:
        gate = asyncio.get_running_loop().create_future()
        steps = []

        async def work() -> str:
            VAR.set("worker's")
            steps.append("first")
            value = await gate
            steps.append(f"after {value} with {VAR.get()}")
            await asyncio.sleep(0)  # a bare yield
            steps.append("done")

        task = eagertask.start(work())
        assert steps == ["first"] and isinstance(task, asyncio.Task) and not task.done()
        assert VAR.get() == "caller's"  # the first step ran in a copy of the context
        gate.set_result("gate")
        await task
        assert steps == ["first", "after gate with worker's", "done"]
        seen.append("suspending")

    async def cancelled() -> None:
        steps = []

        async def work() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                steps.append("cancelled")
                await asyncio.sleep(0)  # cleanup that awaits
                steps.append("cleaned up")
                raise

        task = eagertask.start(work())
        task.cancel()  # before the task's first step: the coroutine still gets it
        try:
            await task
        except asyncio.CancelledError:
            steps.append("raised")
        assert task.cancelled() and steps == ["cancelled", "cleaned up", "raised"]
        seen.append("cancelled")

    async def failing() -> None:
        loop = asyncio.get_running_loop()
        reported = []
        loop.set_exception_handler(lambda _, context: reported.append(context["exception"]))

        async def work() -> None:
            raise ValueError("bug")

        assert eagertask.start(work()) is None
        assert [type(e) for e in reported] == [ValueError]
        seen.append("failing")

    async def cancelled_at_once() -> None:
        loop = asyncio.get_running_loop()
        reported = []
        loop.set_exception_handler(lambda _, context: reported.append(context))
        gone = loop.create_future()
        gone.cancel()

        async def work() -> None:
            await gone  # cancelled already: raises without suspending

        # as an eager task that ends cancelled: nothing raised into the caller (a
        # protocol's data_received), nothing reported
        assert eagertask.start(work()) is None
        assert reported == []
        seen.append("cancelled at once")

    for scenario in (at_once, suspending, cancelled, failing, cancelled_at_once):
        asyncio.run(scenario())
    return seen


def test_first_step_at_once_rest_as_a_task():
    assert _scenarios() == ["at once", "suspending", "cancelled", "failing",
                            "cancelled at once"]


def _python_3_12() -> str | None:
    """A Python 3.12 interpreter that runs (pyenv's shim may name one that does not)."""
    found = [shutil.which("python3.12"), *map(str, sorted(
        Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")))]
    for python in filter(None, found):
        if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
            return python
    return None


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="this is Python 3.12 or later already")
def test_the_same_with_python_3_12_eager_tasks():
    """eagertask on Python 3.12 (asyncio's eager_start), loaded without the agent's
    dependencies, which this interpreter may not have; pytest's decorator stood in for."""
    code = (
        "import sys, types, importlib.util\n"
        "pytest = sys.modules['pytest'] = types.ModuleType('pytest')\n"
        "pytest.mark = types.SimpleNamespace(skipif=lambda *_, **__: lambda test: test)\n"
        "sys.modules['memory_server'] = types.SimpleNamespace(MemoryClient=None)\n"
        "def load(name, path):\n"
        "    spec = importlib.util.spec_from_file_location(name, path)\n"
        "    module = importlib.util.module_from_spec(spec); sys.modules[name] = module\n"
        "    spec.loader.exec_module(module); return module\n"
        "pkg = types.ModuleType('agent.netconf'); pkg.__path__ = []\n"
        "sys.modules['agent'] = types.ModuleType('agent'); sys.modules['agent.netconf'] = pkg\n"
        f"pkg.eagertask = load('agent.netconf.eagertask', {str(EAGERTASK)!r})\n"
        f"test = load('under_test', {__file__!r})\n"
        "print(sys.version_info[:2], test._scenarios())\n")
    python = _python_3_12()
    if python is None:
        pytest.skip("no Python 3.12 here")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("(3, 12) ['at once', 'suspending', 'cancelled', 'failing',"
                                    " 'cancelled at once']")


def test_a_cached_reply_is_sent_within_data_received_and_a_suspended_rpc_keeps_the_order(
        server):
    """A small <get-config> answered from the reply cache needs no task; an RPC that
    suspends (a commit writes running.xml in a thread) gets one, and the RPCs sent
    meanwhile are answered after it, in order (RFC 6241 section 4.2)."""
    async def scenario():
        client = MemoryClient(server)
        await client.raw("<get-config><source><running/></source></get-config>")  # cached now
        before = len(client.transport.sent)
        client.server.data_received(client.record, _framed(
            1, "<get-config><source><running/></source></get-config>"))
        assert len(client.transport.sent) == before + 1  # answered at once
        assert client.record.worker is None and not client.record.draining
        client.server.data_received(client.record, _framed(2, "<commit/>") + _framed(
            3, "<get-config><source><running/></source></get-config>"))
        assert client.record.draining and client.record.worker is not None
        await client.record.worker
        ids = [m.split(b'message-id="')[1].split(b'"')[0] for m in client.transport.sent[before:]]
        assert ids == [b"1", b"2", b"3"]
        assert not client.record.draining

    asyncio.run(scenario())


def _framed(message_id: int, body: str) -> bytes:
    return (f'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="{message_id}">'
            f"{body}</rpc>]]>]]>").encode()
