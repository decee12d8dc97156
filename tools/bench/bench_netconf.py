"""Benchmark the cmp-agent NETCONF server against a reference, side by side.

    .venv/bin/python tools/bench/bench_netconf.py [--n N] [--json-out FILE]

Starts the agent (``cmp-agent serve --port 0`` on a temporary state
directory) and the reference (yuma123 netconfd behind OpenSSH's sshd, see
netconf_reference.py), both on loopback, drives both with the same client
(raw_client.py) and prints one JSON document: for each figure the agent's
value, the reference's, and the ratio agent/reference. Phases alternate
between the two servers round by round so that load from elsewhere on the
machine falls on both alike. Every wait is bounded; both servers are
stopped at the end, also on errors and Ctrl-C.

Figures (N is ``--n``, default 1000):

* session_setup_ms: SSH connect + hello + close-session + SSH close (median
  of N/20), and session_setup_server_cpu_ms per set-up.
* get_config_ms: round trip of a small ``<get-config>`` on one open session
  (median of N), get_config_rpcs_per_s, and get_config_server_cpu_ms_per_rpc
  (utime+stime from /proc/PID/stat of all server processes, children
  included: the agent; netconfd, sshd and its per-session processes).
* edit_1000_commit_ms: one ``<edit-config>`` creating 1,000 cmp-session
  entries in candidate plus ``<commit>`` (median of N/200; parts in
  edit_1000_ms and commit_1000_ms).
* get_config_1000_ms: ``<get-config>`` of those 1,000 entries (median of N/50).
* get_config_during_commit_p99_ms and _max_ms: a second session's small
  get-config round trips while the first commits 1,000 entries (issue 11
  goal: p99 under 5 ms).
* concurrent_20_total_ms and concurrent_20_rpc_ms: 20 sessions at once,
  each doing N/20 small get-configs back to back: wall time of the whole
  batch and the median round trip.
* peak_memory_kb: VmHWM summed over the server processes, read while the
  20 sessions are open (the long-lived processes' VmHWM also covers the
  1,000-entry phases); memory_pss_20_sessions_kb: their proportional set
  size then (shared pages counted once, fairer to multi-process servers);
  null, with the reason on stderr and in meta.servers.NAME.unavailable, when
  not run as root (the agent is not dumpable: its smaps_rollup is root's).

Absolute goals (``goals`` in the JSON, agent only): the p99 above, and
startup_1000_sessions_to_hello_ms: process start to ``<hello>`` with 1,000
sessions in the stored running configuration (goal 500 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from netconf_reference import (INSTALL_HINT, MissingTool, ReferenceServer, die_with_parent,
                               missing_tools)
from raw_client import CIPHER, KEX_ALG, Credentials, NetconfSession, check_reply

ROOT = Path(__file__).resolve().parents[2]
PKI_NS = "urn:cmp-agent:yang:cmp-agent-pki"
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
ENTRIES = 1000
CONCURRENT_SESSIONS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

GET_CONFIG_PKI = (f'<get-config><source><running/></source><filter type="subtree">'
                    f'<pki xmlns="{PKI_NS}"/></filter></get-config>')
#: a small get-config that stays small while running holds 1,000 sessions
GET_CONFIG_SMALL = (f'<get-config><source><running/></source><filter type="subtree">'
                    f'<pki xmlns="{PKI_NS}"><file-format/></pki></filter></get-config>')
COMMIT = "<commit/>"
CLEAR_PKI = (f'<edit-config><target><candidate/></target><config>'
             f'<pki xmlns="{PKI_NS}" xmlns:nc="{NC_NS}" nc:operation="remove"/>'
             f'</config></edit-config>')


def create_sessions_edit(count: int = ENTRIES) -> str:
    """One ``<edit-config>`` creating *count* cmp-session entries (and their entity)."""
    sessions = "".join(
        f'<cmp-session nc:operation="create"><name>bench-{i:04d}</name>'
        f"<entity>bench-entity</entity>"
        f"<ca-name>/C=DE/O=Bench/CN=Bench CA {i}</ca-name>"
        f"<server-url><url>http://192.0.2.10:8080/pkix/</url></server-url>"
        f"<local-key-pair><name>bench-key-{i:04d}</name><regenerate>true</regenerate>"
        f"<key-bits>3072</key-bits>"
        f"</local-key-pair>"
        f"<source-address>192.0.2.1</source-address>"
        f"<integrity-algorithm>hmac-sha256</integrity-algorithm>"
        f"<message-authentication-code><reference-value>ref-{i:04d}</reference-value>"
        f"</message-authentication-code>"
        f"<auto-update><enabled>true</enabled><expire-time>60</expire-time></auto-update>"
        f"</cmp-session>"
        for i in range(count))
    return (f'<edit-config><target><candidate/></target><config>'
            f'<pki xmlns="{PKI_NS}" xmlns:nc="{NC_NS}">'
            f"<entity><name>bench-entity</name><common-name>bench.example</common-name>"
            f"<country>DE</country></entity>{sessions}</pki></config></edit-config>")


# --- /proc ---------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()  # fields from 3 (state) on


def process_tree(roots: Iterable[int]) -> list[int]:
    """*roots* and all their live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_ticks(pids: Iterable[int]) -> dict[int, int]:
    """utime+stime+cutime+cstime per process (clock ticks, /proc/PID/stat fields 14-17).

    The children's part counts per-session processes that ended and were
    reaped (sshd's session processes, netconf-subsystem).
    """
    ticks = {}
    for pid in pids:
        if (fields := _stat_fields(pid)) is not None:
            ticks[pid] = sum(int(f) for f in fields[11:15])
    return ticks


class CpuMeter:
    """Server CPU time spent between :meth:`start` and :meth:`stop`, over many blocks."""

    def __init__(self, roots: list[int]):
        self._roots = roots
        self._before: dict[int, int] = {}
        self.seconds = 0.0

    def start(self) -> None:
        self._before = cpu_ticks(process_tree(self._roots))

    def stop(self) -> None:
        after = cpu_ticks(process_tree(self._roots))
        self.seconds += sum(t - self._before.get(p, 0) for p, t in after.items()) / CLK_TCK


def memory_kb(pids: Iterable[int]) -> tuple[int, int | None, str | None]:
    """Sum of VmHWM (/proc/PID/status) and of Pss (/proc/PID/smaps_rollup).

    The Pss sum is ``None`` when a process's smaps_rollup may not be read (third: why):
    the agent is not dumpable (no core dumps, as ssh-agent), so only root reads it, and a
    sum without it would be a figure, wrong, not a missing one. A process that exited
    meanwhile is left out of both sums.
    """
    hwm = pss = 0
    unreadable = None
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            status = Path(f"/proc/{pid}/status").read_text()
            hwm += int(re.search(r"^VmHWM:\s+(\d+)", status, re.M).group(1))
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except PermissionError as exc:
                unreadable = (f"{exc.filename}: {exc.strerror} (the agent is not dumpable:"
                              " only root may read its memory map; run the benchmark as root)")
                continue
            pss += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))
    return hwm, (None if unreadable else pss), unreadable


# --- the agent -----------------------------------------------------------------------------

class AgentServer:
    """``cmp-agent serve --port 0`` on a temporary state directory, public-key login as admin."""

    name = "agent"

    def __init__(self, start_timeout: float = 60.0, extra_args: tuple[str, ...] = ()):
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-agent-")
        self.workdir = Path(self._tmp.name)
        self.host, self.port = "127.0.0.1", 0
        self._proc: subprocess.Popen | None = None
        self._start_timeout = start_timeout
        self._extra_args = extra_args
        self.model = "the agent's built-in cmp-agent-pki"
        key = asyncssh.generate_private_key("ssh-ed25519")
        key_path = self.workdir / "client_key"
        key_path.write_bytes(key.export_private_key())
        key_path.chmod(0o600)
        self.credentials = Credentials("admin", client_key=str(key_path))
        self.state_dir = self.workdir / "state"
        keys_dir = self.state_dir / "authorized_keys"
        keys_dir.mkdir(parents=True, mode=0o700)
        (keys_dir / "admin").write_bytes(key.export_public_key())
        #: seconds from starting the process to its "listening on" line
        self.listening_seconds = 0.0

    def start(self) -> None:
        started = time.perf_counter()
        self._log = open(self.workdir / "agent.stderr", "ab")
        # as installed: the package's bytecode cached (the environment may say otherwise)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "serve", "--host", self.host, "--port", "0",
             "--state-dir", str(self.state_dir), *self._extra_args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True, preexec_fn=die_with_parent, env=env)
        deadline = time.monotonic() + self._start_timeout
        os.set_blocking(self._proc.stdout.fileno(), False)
        output = b""
        while (match := re.search(rb"listening on (\S+):(\d+)", output)) is None:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start:\n{self.logs()}")
            time.sleep(0.002)
            output += self._proc.stdout.read() or b""
        self.listening_seconds = time.perf_counter() - started
        self.port = int(match.group(2))

    def root_pids(self) -> list[int]:
        return [self._proc.pid] if self._proc is not None else []

    def logs(self) -> str:
        text = (self.workdir / "agent.stderr").read_text(errors="replace")
        return "--- agent stderr\n" + "\n".join(text.splitlines()[-25:])

    def stop(self) -> None:
        self.stop_process()
        self._tmp.cleanup()

    def stop_process(self) -> None:
        """Stop the agent; its state directory stays (:meth:`start` starts it again)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
        if hasattr(self, "_log"):
            self._log.close()


class Reference:
    """Adapter giving :class:`ReferenceServer` the same face as :class:`AgentServer`."""

    name = "reference"

    def __init__(self, model: str = "auto") -> None:
        module = ROOT / "yang" / "cmp-agent-pki.yang" if model == "auto" else None
        self._server = ReferenceServer(module=module)

    def start(self) -> None:
        self._server.start()
        self.host, self.port = self._server.host, self._server.port
        self.credentials = self._server.credentials
        self.model = self._server.model

    def root_pids(self) -> list[int]:
        return self._server.root_pids()

    def logs(self) -> str:
        return self._server.logs()

    def stop(self) -> None:
        self._server.stop()


# --- measurements --------------------------------------------------------------------------

@dataclass
class Target:
    """A started server and what the phases gather about it."""

    server: AgentServer | Reference
    timeout: float

    async def session(self) -> NetconfSession:
        s = self.server
        return await NetconfSession.connect(s.host, s.port, s.credentials, timeout=self.timeout)


async def rpc_ok(session: NetconfSession, operation: str) -> float:
    """Round trip of one RPC in seconds; the reply is checked after the clock stops."""
    t0 = time.perf_counter()
    reply = await session.rpc(operation)
    elapsed = time.perf_counter() - t0
    check_reply(reply)
    return elapsed


async def alternate(targets: list[Target], rounds: int,
                    block: Callable[[Target, int], Awaitable[None]]) -> None:
    """Run *block* on each target in turn, *rounds* times, reversing the order every round."""
    for r in range(rounds):
        for target in (targets if r % 2 == 0 else targets[::-1]):
            await block(target, r)


def median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 3)


class Bench:
    """The phases; each fills ``self.results[target name][figure]``."""

    def __init__(self, targets: list[Target], n: int):
        self.targets = targets
        self.n = n
        self.results: dict[str, dict[str, float]] = {t.server.name: {} for t in targets}
        self.meta: dict[str, dict[str, object]] = {t.server.name: {} for t in targets}

    def put(self, target: Target, **figures: float | None) -> None:
        self.results[target.server.name].update(figures)

    def unavailable(self, target: Target, figure: str, why: str) -> None:
        """*figure* could not be measured on *target*: null in the JSON, *why* in its
        meta (``unavailable``) and, once, on stderr."""
        name = target.server.name
        seen = self.meta[name].setdefault("unavailable", {})
        if figure not in seen:
            print(f"bench_netconf: {figure} unavailable for {name}: {why}", file=sys.stderr)
        seen[figure] = why

    async def run(self) -> None:
        for target in self.targets:  # a first login (warms caches), and what the server is
            session = await target.session()
            self.meta[target.server.name].update(
                session.ssh_parameters(), chunked_framing=session.chunked,
                model=target.server.model)
            check_reply(await session.rpc(CLEAR_PKI))
            check_reply(await session.rpc(COMMIT))
            await session.close()
        await self.session_setup()
        await self.get_config_small()
        await self.edit_and_get_1000()
        await self.get_config_during_commit()
        await self.concurrent()

    async def get_config_during_commit(self) -> None:
        """Small get-configs on one session while another commits 1,000 entries:
        round trips that overlap the commit (p99, max); nothing heavy may hold
        up other sessions."""
        rounds = max(2, self.n // 500)
        edit = create_sessions_edit()
        pairs = {t.server.name: (await t.session(), await t.session()) for t in self.targets}
        overlapping: dict[str, list[float]] = {t.server.name: [] for t in self.targets}

        async def block(target: Target, _: int) -> None:
            committer, reader = pairs[target.server.name]
            await rpc_ok(committer, CLEAR_PKI)  # untimed: an empty running, then the edit
            await rpc_ok(committer, COMMIT)
            await rpc_ok(committer, edit)
            window = [float("inf"), float("inf")]
            reads: list[tuple[float, float]] = []

            async def read_until_done() -> None:
                while True:
                    t0 = time.perf_counter()
                    await rpc_ok(reader, GET_CONFIG_SMALL)
                    reads.append((t0, time.perf_counter()))
                    if reads[-1][0] > window[1]:
                        return

            task = asyncio.ensure_future(read_until_done())
            await asyncio.sleep(0.05)  # the reader is going
            window[0] = time.perf_counter()
            await rpc_ok(committer, COMMIT)
            window[1] = time.perf_counter()
            await task
            overlapping[target.server.name].extend(
                end - start for start, end in reads if start < window[1] and end > window[0])

        await alternate(self.targets, rounds, block)
        for t in self.targets:
            name = t.server.name
            times = sorted(overlapping[name])
            self.put(t, get_config_during_commit_p99_ms=round(
                         times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 3),
                     get_config_during_commit_max_ms=round(times[-1] * 1000, 3))
            self.meta[name]["get_config_during_commit_samples"] = len(times)
            committer, reader = pairs[name]
            await rpc_ok(committer, CLEAR_PKI)
            await rpc_ok(committer, COMMIT)
            await committer.close()
            await reader.close()

    async def session_setup(self) -> None:
        count = max(3, self.n // 20)
        times: dict[str, list[float]] = {t.server.name: [] for t in self.targets}
        meters = {t.server.name: CpuMeter(t.server.root_pids()) for t in self.targets}

        async def once(target: Target, _: int) -> None:
            meter = meters[target.server.name]
            meter.start()
            session = await target.session()
            t0 = time.perf_counter()
            await session.close()
            elapsed = session.connect_seconds + time.perf_counter() - t0
            times[target.server.name].append(elapsed)
            await asyncio.sleep(0.05)  # let sshd reap its session processes
            meter.stop()

        await alternate(self.targets, count, once)
        for t in self.targets:
            name = t.server.name
            self.put(t, session_setup_ms=median_ms(times[name]),
                     session_setup_server_cpu_ms=round(meters[name].seconds * 1000 / count, 3))

    async def get_config_small(self) -> None:
        rounds = 10
        per_round = max(1, self.n // rounds)
        sessions = {t.server.name: await t.session() for t in self.targets}
        times: dict[str, list[float]] = {t.server.name: [] for t in self.targets}
        meters = {t.server.name: CpuMeter(t.server.root_pids()) for t in self.targets}
        for session in sessions.values():  # warm-up
            for _ in range(min(20, per_round)):
                await rpc_ok(session, GET_CONFIG_PKI)

        async def block(target: Target, _: int) -> None:
            name = target.server.name
            meters[name].start()
            for _ in range(per_round):
                times[name].append(await rpc_ok(sessions[name], GET_CONFIG_PKI))
            meters[name].stop()

        await alternate(self.targets, rounds, block)
        for t in self.targets:
            name = t.server.name
            total = sum(times[name])
            self.put(t, get_config_ms=median_ms(times[name]),
                     get_config_rpcs_per_s=round(len(times[name]) / total, 1),
                     get_config_server_cpu_ms_per_rpc=round(
                         meters[name].seconds * 1000 / len(times[name]), 4))
            await sessions[name].close()

    async def edit_and_get_1000(self) -> None:
        edit = create_sessions_edit()
        reps = max(2, self.n // 200)
        gets = max(3, self.n // 50)
        sessions = {t.server.name: await t.session() for t in self.targets}
        edits = {t.server.name: [] for t in self.targets}
        commits = {t.server.name: [] for t in self.targets}
        reads = {t.server.name: [] for t in self.targets}

        async def edit_commit(target: Target, rep: int) -> None:
            session = sessions[target.server.name]
            if rep > 0:  # clear the previous round's entries, untimed
                await rpc_ok(session, CLEAR_PKI)
                await rpc_ok(session, COMMIT)
            edits[target.server.name].append(await rpc_ok(session, edit))
            commits[target.server.name].append(await rpc_ok(session, COMMIT))

        async def get_all(target: Target, _: int) -> None:
            session = sessions[target.server.name]
            t0 = time.perf_counter()
            reply = await session.rpc(GET_CONFIG_PKI)
            reads[target.server.name].append(time.perf_counter() - t0)
            found = check_reply(reply).findall(f".//{{{PKI_NS}}}cmp-session")
            if len(found) != ENTRIES:
                raise RuntimeError(f"{target.server.name}: get-config returned {len(found)}"
                                   f" cmp-session entries, expected {ENTRIES}")

        await alternate(self.targets, reps, edit_commit)
        await alternate(self.targets, gets, get_all)
        for t in self.targets:
            name = t.server.name
            both = [e + c for e, c in zip(edits[name], commits[name])]
            self.put(t, edit_1000_commit_ms=median_ms(both), edit_1000_ms=median_ms(edits[name]),
                     commit_1000_ms=median_ms(commits[name]),
                     get_config_1000_ms=median_ms(reads[name]))
            await rpc_ok(sessions[name], CLEAR_PKI)
            await rpc_ok(sessions[name], COMMIT)
            await sessions[name].close()

    async def concurrent(self) -> None:
        per_session = max(2, self.n // CONCURRENT_SESSIONS)
        rounds = 2
        totals: dict[str, list[float]] = {t.server.name: [] for t in self.targets}
        times: dict[str, list[float]] = {t.server.name: [] for t in self.targets}

        async def batch(target: Target, _: int) -> None:
            name = target.server.name
            sessions = await asyncio.gather(
                *(target.session() for _ in range(CONCURRENT_SESSIONS)))

            async def worker(session: NetconfSession) -> None:
                for _ in range(per_session):
                    times[name].append(await rpc_ok(session, GET_CONFIG_PKI))

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(s) for s in sessions))
            totals[name].append(time.perf_counter() - t0)
            hwm, pss, unreadable = memory_kb(process_tree(target.server.root_pids()))
            await asyncio.gather(*(s.close() for s in sessions))
            self.put(target, peak_memory_kb=hwm, memory_pss_20_sessions_kb=pss)
            if unreadable:
                self.unavailable(target, "memory_pss_20_sessions_kb", unreadable)

        await alternate(self.targets, rounds, batch)
        for t in self.targets:
            name = t.server.name
            self.put(t, concurrent_20_total_ms=median_ms(totals[name]),
                     concurrent_20_rpc_ms=median_ms(times[name]))


#: figure -> (unit, which direction is better)
FIGURES = {
    "session_setup_ms": ("ms", "lower"),
    "session_setup_server_cpu_ms": ("ms", "lower"),
    "get_config_ms": ("ms", "lower"),
    "get_config_rpcs_per_s": ("1/s", "higher"),
    "get_config_server_cpu_ms_per_rpc": ("ms", "lower"),
    "edit_1000_commit_ms": ("ms", "lower"),
    "edit_1000_ms": ("ms", "lower"),
    "commit_1000_ms": ("ms", "lower"),
    "get_config_1000_ms": ("ms", "lower"),
    "get_config_during_commit_p99_ms": ("ms", "lower"),
    "get_config_during_commit_max_ms": ("ms", "lower"),
    "concurrent_20_total_ms": ("ms", "lower"),
    "concurrent_20_rpc_ms": ("ms", "lower"),
    "peak_memory_kb": ("kB", "lower"),
    "memory_pss_20_sessions_kb": ("kB", "lower"),
}


#: issue 11's absolute goals: figure -> (goal, unit); agent-only figures are measured
#: on the agent alone (the reference's start-up is sshd plus netconfd, not comparable)
GOALS = {
    "get_config_during_commit_p99_ms": (5.0, "ms"),
    "startup_1000_sessions_to_hello_ms": (500.0, "ms"),
}


async def startup_to_hello(rounds: int, rpc_timeout: float) -> tuple[float, float]:
    """Median ms from starting the agent, with 1,000 sessions in its running
    configuration (committed over NETCONF by an earlier run, as on a device
    that restarts), to a client holding its ``<hello>``; and the median CPU
    ms the agent used until then (on a loaded machine, wall time is mostly
    waiting for a CPU)."""
    server = AgentServer()
    times, cpu = [], []
    try:
        server.start()
        session = await Target(server, rpc_timeout).session()
        await rpc_ok(session, create_sessions_edit())
        await rpc_ok(session, COMMIT)
        await session.close()
        for _ in range(rounds):
            server.stop_process()
            server.start()
            session = await NetconfSession.connect(server.host, server.port, server.credentials,
                                                   timeout=rpc_timeout)
            times.append(server.listening_seconds + session.connect_seconds)
            cpu.append(sum(cpu_ticks(server.root_pids()).values()) / CLK_TCK)
            await session.close()
    finally:
        server.stop()
    return median_ms(times), median_ms(cpu)


def report(bench: Bench, started: float) -> dict:
    """The JSON document: figures side by side with ratio agent/reference."""
    agent, ref = bench.results["agent"], bench.results["reference"]
    figures = {}
    for name, (unit, better) in FIGURES.items():
        a, r = agent.get(name), ref.get(name)
        # a figure unavailable on either side (null) has no ratio and no verdict
        ratio = round(a / r, 3) if a is not None and r else None
        ok = None if ratio is None else (ratio <= 1 if better == "lower" else ratio >= 1)
        figures[name] = {"agent": a, "reference": r, "ratio": ratio, "unit": unit,
                         "better": better, "agent_at_or_better": ok}
    goals = {}
    for name, (goal, unit) in GOALS.items():
        value = agent.get(name)
        goals[name] = {"agent": value, "goal": goal, "unit": unit,
                       "met": None if value is None else value <= goal}
    return {
        "figures": figures,
        "goals": goals,
        "meta": {
            "n": bench.n,
            "entries": ENTRIES,
            "concurrent_sessions": CONCURRENT_SESSIONS,
            "ssh": {"kex": KEX_ALG, "cipher": CIPHER},
            "servers": bench.meta,
            "python": platform.python_version(),
            "asyncssh": asyncssh.__version__,
            "cpus": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
            "duration_s": round(time.monotonic() - started, 1),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }


async def run_bench(n: int, rpc_timeout: float, reference_model: str = "auto") -> dict:
    started = time.monotonic()
    servers = [AgentServer(), Reference(reference_model)]
    try:
        for server in servers:
            server.start()
        bench = Bench([Target(s, rpc_timeout) for s in servers], n)
        try:
            await bench.run()
            wall, cpu = await startup_to_hello(max(1, min(3, n // 200)), rpc_timeout)
            bench.put(bench.targets[0], startup_1000_sessions_to_hello_ms=wall)
            bench.meta["agent"]["startup_1000_sessions_to_hello_cpu_ms"] = cpu
        except Exception as exc:
            logs = "\n".join(s.logs() for s in servers)
            raise RuntimeError(f"benchmark failed: {exc!r}\n{logs}") from exc
        return report(bench, started)
    finally:
        for server in servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000,
                        help="small get-config RPCs per server; other counts scale from it"
                             " (default 1000)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    parser.add_argument("--rpc-timeout", type=float, default=120.0,
                        help="seconds to wait for any one reply or login (default 120)")
    parser.add_argument("--reference-model", choices=("auto", "generated"), default="auto",
                        help="auto: load yang/cmp-agent-pki.yang into netconfd, or the generated"
                             " same-shape YANG 1.0 module if netconfd cannot parse it;"
                             " generated: always the generated one")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds for the whole run (default 1800)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if missing := missing_tools():
        print(f"bench_netconf: the reference needs {', '.join(missing)}: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    try:
        result = asyncio.run(asyncio.wait_for(run_bench(args.n, args.rpc_timeout,
                                                        args.reference_model),
                                              args.timeout))
    except MissingTool as exc:
        print(f"bench_netconf: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, TimeoutError, OSError, asyncssh.Error) as exc:
        print(f"bench_netconf: {exc}", file=sys.stderr)
        return 1
    print_json(result, args.json_out)
    return 0


def print_json(result: dict, json_out: Path | None) -> None:
    """Print *result* as JSON, and write it to *json_out* too if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if json_out:
        json_out.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
