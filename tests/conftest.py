"""Shared fixtures: the real agent as a subprocess on a free loopback port.

``agent`` is one agent for a test module; ``fresh_agent`` gives each test its
own agent and state directory (for restart and crash tests). Both run
``cmp-agent serve --port 0 --state-dir DIR`` and wait for its
``listening on HOST:PORT`` line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cmp_agent_command import agent_command

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"^listening on (\S+):(\d+)$")
START_TIMEOUT = 30.0


@dataclass
class AgentProcess:
    """A running ``cmp-agent serve``: connection facts and process control."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen | None = None
    #: more ``cmp-agent serve`` options, e.g. ``("--cmp-reply-wait", "1")``
    extra_args: tuple[str, ...] = ()
    #: the ``cmp-agent`` to run (default :func:`agent_command`) and where
    command: list[str] = field(default_factory=agent_command)
    cwd: Path = ROOT
    output: list[str] = field(default_factory=list)

    @property
    def password(self) -> str:
        return (self.state_dir / "initial-admin-password").read_text().strip()

    def start(self) -> "AgentProcess":
        """Start the agent (on the same state directory) and wait until it listens."""
        cmd = [*self.command, "serve", "--host", "127.0.0.1", "--port", "0",
               "--state-dir", str(self.state_dir), *self.extra_args]
        self.output = []
        self.process = subprocess.Popen(
            cmd, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        found = threading.Event()

        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                match = _LISTENING.search(line.rstrip("\n"))
                if match and not found.is_set():
                    self.port = int(match.group(2))
                    found.set()
            found.set()

        threading.Thread(target=pump, daemon=True).start()
        found.wait(START_TIMEOUT)
        if not self.port or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("the agent did not start:\n" + "".join(self.output))
        return self

    def stop(self) -> None:
        """Terminate the agent (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        self.port = 0

    def kill9(self) -> None:
        """Kill the agent without warning (SIGKILL)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        self.port = 0

    def restart(self) -> "AgentProcess":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        """Everything the agent wrote to stdout and stderr up to now (read by a thread)."""
        return "".join(self.output)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first, then the others, each in collection order: with
    ``--dist loadfile --no-loadscope-reorder`` (tools/test) the two workers start on the
    longest files instead of one of them ending the suite alone with the README's."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="module")
def agent(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One agent shared by the tests of a module, with the module's ``AGENT_ARGS`` options."""
    proc = AgentProcess(tmp_path_factory.mktemp("agent-state"),
                        extra_args=tuple(getattr(request.module, "AGENT_ARGS", ()))).start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_agent(tmp_path: Path) -> Iterator[AgentProcess]:
    """An agent with its own new state directory, for one test."""
    proc = AgentProcess(tmp_path / "state").start()
    yield proc
    proc.stop()


@pytest.fixture
def agent_process() -> type[AgentProcess]:
    """The class, for a test that runs another ``cmp-agent`` (``command=``) or elsewhere
    (``cwd=``): test modules cannot import it, "conftest" may be another directory's."""
    return AgentProcess


@pytest.fixture
def start_agent(tmp_path: Path):
    """A factory: ``start_agent("--cmp-reply-wait", "1")`` starts an agent with those
    options on its own new state directory; all are stopped after the test."""
    started: list[AgentProcess] = []

    def start(*extra_args: str) -> AgentProcess:
        proc = AgentProcess(tmp_path / f"state-{len(started)}", extra_args=extra_args).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
