"""NETCONF message mutation over real SSH sessions.

Starts ``cmp-agent serve`` on a new state directory (or uses a running agent
given its port and admin password), then sends mutated messages from a corpus
of valid RPCs on fuzzing sessions, each followed by a valid sentinel RPC that
tells when the agent is done with it. A second, probing session asks for
``<get-config>`` all along: an answer slower than 1 s is a stall of other
sessions. Counted: inputs, crashes (the agent process died), internal errors
(``operation-failed`` answers saying "internal error": a bug), stalls, the
slowest probe and the agent's memory peak (VmHWM).
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from mutate import Mutator

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
PKI = "urn:cmp-agent:yang:cmp-agent-pki"
BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"

#: valid operations (no kill-session or close-session: they would end the
#: probing session or the fuzzing one on purpose)
CORPUS = (
    "<get-config><source><running/></source></get-config>",
    "<get-config><source><candidate/></source><filter type='subtree'>"
    f"<pki xmlns='{PKI}'><cmp-session><name/></cmp-session></pki></filter></get-config>",
    f"<get><filter type='xpath' xmlns:p='{PKI}' select='/p:pki/p:cmp-session[p:name=\"s1\"]'/>"
    "</get>",
    "<get xmlns:wd='urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults'>"
    "<wd:with-defaults>report-all-tagged</wd:with-defaults></get>",
    f"<edit-config><target><candidate/></target><config><pki xmlns='{PKI}'>"
    "<entity><name>e1</name><common-name>router1</common-name></entity>"
    "<cmp-session><name>s1</name><entity>e1</entity><server-url><url>http://127.0.0.1:9/p</url>"
    "</server-url><local-key-pair><name>k1</name></local-key-pair></cmp-session>"
    "</pki></config></edit-config>",
    f"<edit-config><target><candidate/></target><default-operation>none</default-operation>"
    f"<config xmlns:nc='{NC}'><pki xmlns='{PKI}'><cmp-session nc:operation='delete'>"
    "<name>s1</name></cmp-session></pki></config></edit-config>",
    "<validate><source><candidate/></source></validate>",
    "<commit/>",
    "<discard-changes/>",
    "<lock><target><candidate/></target></lock>",
    "<unlock><target><candidate/></target></unlock>",
    f"<key-pair-create xmlns='{PKI}'><name>fz</name><algorithm>ec</algorithm></key-pair-create>",
    f"<key-pair-delete xmlns='{PKI}'><name>fz</name></key-pair-delete>",
    f"<clear-statistics xmlns='{PKI}'/>",
    f"<certificate-import xmlns='{PKI}'><name>x.pem</name><data>AAAA</data></certificate-import>",
    "<create-subscription xmlns='urn:ietf:params:xml:ns:netconf:notification:1.0'/>",
)
#: inputs per session; sessions alternate end-of-message and chunked framing
SESSION_INPUTS = 100
#: the cheapest answer: operation-not-supported
SENTINEL = "<sentinel xmlns='urn:fuzz'/>"
TOKENS = (b"<", b">", b"</", b"/>", b"]]>]]>", b"\n#4\n", b"\n##\n", b"&amp;", b"&#0;",
          b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?xml version='1.0'?>", b"xmlns=''",
          b"xmlns:a='urn:a'", b" message-id='1'", b"<rpc>", b"</rpc>", b"\xc3\x28", b"\x00",
          b"<filter type='xpath' select='//*'/>", b"nc:operation='replace'", b"<running/>",
          b"<!DOCTYPE a>", b"&x;")


@dataclass
class NetconfSummary:
    inputs: int = 0
    crashes: int = 0
    internal_errors: list[str] = field(default_factory=list)
    stalls: int = 0
    slowest_probe: float = 0.0
    probes: int = 0
    sessions: int = 0
    memory_peak_mb: float = 0.0

    def report(self) -> str:
        return (f"netconf: {self.inputs} mutated messages on {self.sessions} sessions:"
                f" {self.crashes} crashes, {len(self.internal_errors)} internal errors,"
                f" {self.stalls} stalls of other sessions over 1 s in {self.probes} probes"
                f" (slowest {self.slowest_probe:.2f} s), agent memory peak"
                f" {self.memory_peak_mb:.0f} MB")


class Agent:
    """``cmp-agent serve`` on a new state directory."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "serve", "--port", "0", "--state-dir", str(state_dir),
             "--log-level", "WARNING", "--xpath-filter-seconds", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            match = re.match(r"listening on \S+:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                break
        else:
            raise RuntimeError("the agent did not start")
        self.password = (state_dir / "initial-admin-password").read_text().strip()

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory_peak_mb(self) -> float:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except FileNotFoundError:
            return 0.0
        return int(status.split("VmHWM:")[1].split()[0]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _frame(data: bytes, chunked: bool) -> bytes:
    return b"\n#%d\n%s\n##\n" % (len(data), data) if chunked else data + EOM


class Session:
    """A raw NETCONF session over asyncssh."""

    def __init__(self, conn, writer, reader, chunked: bool):
        self.conn, self.writer, self.reader, self.chunked = conn, writer, reader, chunked

    @classmethod
    async def open(cls, agent: Agent, chunked: bool) -> "Session":
        conn = await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                      password=agent.password, known_hosts=None,
                                      client_keys=None, agent_path=None)
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        await asyncio.wait_for(reader.readuntil(EOM), 30)
        caps = f"<capability>{BASE_10}</capability>"
        if chunked:
            caps += f"<capability>{BASE_11}</capability>"
        writer.write(f"<hello xmlns='{NC}'><capabilities>{caps}</capabilities></hello>".encode()
                     + EOM)
        return cls(conn, writer, reader, chunked)

    def rpc(self, body: str, message_id: str) -> bytes:
        return f"<rpc xmlns='{NC}' message-id='{message_id}'>{body}</rpc>".encode()

    async def read_until(self, marker: bytes, timeout: float) -> bytes:
        """What arrives until *marker* has been seen (b"" if the channel closed)."""
        seen = bytearray()
        deadline = time.monotonic() + timeout
        while marker not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError
            data = await asyncio.wait_for(self.reader.read(65536), left)
            if not data:
                return b""
            seen += data
        return bytes(seen)

    def close(self) -> None:
        self.conn.close()


async def _probe(agent: Agent, summary: NetconfSummary, stop: asyncio.Event) -> None:
    session = await Session.open(agent, chunked=True)
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        session.writer.write(_frame(session.rpc(CORPUS[0], f"probe-{n}"), True))
        await session.read_until(f"probe-{n}".encode(), 60)
        took = time.monotonic() - started
        summary.probes += 1
        summary.slowest_probe = max(summary.slowest_probe, took)
        summary.stalls += took > 1.0
        await asyncio.sleep(0.2)
    session.close()


async def _fuzz(agent: Agent, inputs: int, seed: int, summary: NetconfSummary) -> None:
    session: Session | None = None
    for i in range(inputs):
        rng = random.Random(seed * 1_000_003 + i)
        if session is not None and i % SESSION_INPUTS == 0:
            session.close()  # the next session in the other framing
            session = None
        if session is None:
            session = await Session.open(agent, chunked=(i // SESSION_INPUTS) % 2 == 1)
            summary.sessions += 1
        mutator = Mutator(rng, TOKENS)
        message = session.rpc(rng.choice(CORPUS), str(i))
        # the framing too: end-of-message framing resynchronises at the next
        # ]]>]]>; a mangled chunk header may promise bytes that never come
        framing = rng.random() < (0.3 if not session.chunked else 0.05)
        if framing:
            data = mutator.mutate(_frame(message, session.chunked))
        else:
            data = _frame(mutator.mutate(message), session.chunked)
        # two sentinels: the first may end up inside the mutated message
        sentinels = b"".join(_frame(session.rpc(SENTINEL, f"sentinel-{i}-{n}"), session.chunked)
                             for n in (1, 2))
        session.writer.write(data + sentinels)
        summary.inputs += 1
        try:
            answer = await session.read_until(f"sentinel-{i}-2".encode(), 5 if framing else 30)
        except (asyncio.TimeoutError, asyncssh.Error, OSError):
            answer = b""  # waiting for the rest of a message it was promised: start anew
        if b"internal error" in answer:
            summary.internal_errors.append(f"seed {seed} input {i}: {data[:300]!r}")
        if not answer:
            session.close()
            session = None
            if not agent.alive():
                summary.crashes += 1
                return
    if session is not None:
        session.close()


async def _run(agent: Agent, inputs: int, seed: int) -> NetconfSummary:
    summary = NetconfSummary()
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(agent, summary, stop))
    try:
        await _fuzz(agent, inputs, seed, summary)
    finally:
        stop.set()
        await probe
    summary.memory_peak_mb = agent.memory_peak_mb()
    return summary


def run(inputs: int, seed: int = 1) -> NetconfSummary:
    """Start an agent, send it *inputs* mutated messages, stop it."""
    with tempfile.TemporaryDirectory() as directory:
        agent = Agent(Path(directory) / "state")
        try:
            summary = asyncio.run(_run(agent, inputs, seed))
            summary.crashes += not agent.alive()
        finally:
            agent.stop()
    return summary


