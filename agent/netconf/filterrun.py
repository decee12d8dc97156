"""Filters of ``<get>`` and ``<get-config>`` evaluated off the event loop, within budgets.

A client's filter must not stall the other sessions (all share one asyncio
loop). :class:`FilterRunner` evaluates

* a subtree filter (RFC 6241 section 6) on the loop in slices
  (:func:`~agent.datastore.steps.run_cooperatively`), bounded in size and in
  comparisons by :mod:`agent.netconf.filters`;
* an XPath filter (RFC 6241 section 8.9) in a worker process of its own,
  given :attr:`FilterRunner.xpath_seconds` of wall-clock time: libxml2 cannot
  be interrupted, so an expression over budget (``//*[count(//*) > 1]`` over a
  large configuration took 11 minutes) is stopped by killing its worker, and
  the request gets ``operation-failed``, "filter too expensive". Workers are
  reused; each runs under an address-space limit.

The selected nodes are copied out of the data tree on the loop (the output
is what an unfiltered reply costs). Run as ``python -m
agent.netconf.filterrun`` this module is the worker: length-prefixed pickled
requests on stdin, answers on stdout.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from .errors import RpcError
from .filters import (FilterParam, KeysOf, filter_namespaces, materialize, select_paths,
                      subtree_selection, too_expensive, xpath_paths)

#: wall-clock seconds one XPath filter may take
XPATH_SECONDS = 10.0
#: XPath worker processes at most (evaluations beyond wait for one)
MAX_WORKERS = 2
#: address space of a worker process
WORKER_MEMORY = 1024 * 1024 * 1024

#: seconds a new worker may take to start (a loaded machine is slow to start Python)
WORKER_START_SECONDS = 60.0

_LENGTH = struct.Struct(">Q")
_READY = b"ready\n"


@dataclass
class _Worker:
    process: asyncio.subprocess.Process

    async def call(self, request: tuple) -> tuple:
        assert self.process.stdin is not None and self.process.stdout is not None
        body = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.write(_LENGTH.pack(len(body)) + body)
        await self.process.stdin.drain()
        (size,) = _LENGTH.unpack(await self.process.stdout.readexactly(_LENGTH.size))
        return pickle.loads(await self.process.stdout.readexactly(size))

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


class FilterRunner:
    """Evaluates ``<filter>`` elements for the server; see the module docstring."""

    def __init__(self, *, xpath_seconds: float = XPATH_SECONDS, max_workers: int = MAX_WORKERS):
        self.xpath_seconds = xpath_seconds
        self._idle: list[_Worker] = []
        self._slots = asyncio.Semaphore(max_workers)

    async def apply(self, data: etree._Element, filter_param: FilterParam | None,
                    keys_of: KeysOf) -> etree._Element:
        """*data* reduced by *filter_param* (``None``: *data* itself); *data* is only read."""
        if filter_param is None:
            return data
        if filter_param.select is None:
            # on the loop in slices (a worker thread would compete with it for the GIL);
            # imported here: the XPath worker process loads this module without the datastores
            from agent.datastore.steps import run_cooperatively
            selection = await run_cooperatively(subtree_selection(data, filter_param.element))
            return materialize(data, selection)
        paths = await self._xpath(etree.tostring(data), filter_param.select,
                                  filter_namespaces(filter_param.element))
        return select_paths(data, paths, keys_of)

    async def _xpath(self, data: bytes, select: str, namespaces: dict[str, str]
                     ) -> list[list[int]]:
        async with self._slots:
            worker = self._idle.pop() if self._idle else await _spawn()
            try:
                status, value = await asyncio.wait_for(
                    worker.call((data, select, namespaces)), self.xpath_seconds)
            except asyncio.TimeoutError:
                await worker.kill()
                raise too_expensive(f"XPath evaluation exceeded {self.xpath_seconds:g} s"
                                    ) from None
            except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
                await worker.kill()  # out of memory, most likely
                raise too_expensive("XPath evaluation exceeded the worker's memory") from None
            except BaseException:
                await worker.kill()  # cancelled mid-call: its answer would be read by the next
                raise
            self._idle.append(worker)
        if status == "error":
            raise RpcError(**value)
        return value

    async def close(self) -> None:
        """Stop the idle workers (agent shutdown)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            await worker.kill()


#: the folder holding this ``agent`` package: the worker imports it from there
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _worker_command() -> tuple[list[str], dict[str, str]]:
    """The worker's command line and environment: this interpreter, with the ``agent``
    package the agent itself runs (first on PYTHONPATH) and not one in the working
    directory (``-P``), which ``-m`` would otherwise put first on ``sys.path``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (_PACKAGE_ROOT, env.get("PYTHONPATH"))))
    return [sys.executable, "-P", "-m", __name__], env


async def _spawn() -> _Worker:
    """A new worker, once it has started (its start-up is not counted in the budget)."""
    command, env = _worker_command()
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
    worker = _Worker(process)
    assert process.stdout is not None
    try:
        await asyncio.wait_for(process.stdout.readexactly(len(_READY)), WORKER_START_SECONDS)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError):
        await worker.kill()
        raise RpcError("operation-failed", "the XPath filter worker did not start within"
                       f" {WORKER_START_SECONDS:g} s; try again", type="application") from None
    return worker


# --- the worker process ------------------------------------------------------------
def _evaluate(request: tuple) -> tuple:
    data, select, namespaces = request
    parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
    try:
        return "ok", xpath_paths(etree.fromstring(data, parser), select, namespaces)
    except RpcError as exc:
        return "error", vars(exc)


def _serve(stdin, stdout) -> None:
    stdout.write(_READY)
    stdout.flush()
    while header := stdin.read(_LENGTH.size):
        (size,) = _LENGTH.unpack(header)
        body = pickle.dumps(_evaluate(pickle.loads(stdin.read(size))))
        stdout.write(_LENGTH.pack(len(body)) + body)
        stdout.flush()


if __name__ == "__main__":
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    _serve(sys.stdin.buffer, sys.stdout.buffer)
