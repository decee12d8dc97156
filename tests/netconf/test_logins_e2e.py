"""Issue 9, section 2: logins resist guessing and flooding (real SSH clients).

The agent of this module allows 3 authentication attempts per connection,
4 unauthenticated connections and 8 s to log in.
"""

from __future__ import annotations

import asyncio
import socket
import time

import asyncssh
import pytest

from nc_helpers import NC_NS, RawClient
from test_hardening_e2e import BASE_10, assert_other_session_answers

AGENT_ARGS = ("--max-auth-tries", "3", "--max-startups", "4", "--login-grace-time", "8")


def run(coro):
    return asyncio.run(coro)


class Guesser(asyncssh.SSHClient):
    """Offers a new wrong password whenever the server asks for one."""

    def __init__(self):
        self.tries = 0

    def password_auth_requested(self) -> str:
        self.tries += 1
        return f"wrong-{self.tries}"


def test_a_connection_is_cut_after_max_auth_tries_failures(agent):
    async def scenario():
        other = await RawClient.open(agent, (BASE_10,))
        guesser = Guesser()
        # The server sends its disconnect and closes; a client still writing its
        # next guess may see the closed socket (EPIPE/ECONNRESET) before it reads that.
        with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError,
                            ConnectionError)):
            await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                   client_factory=lambda: guesser, known_hosts=None,
                                   client_keys=None, agent_path=None,
                                   preferred_auth="password", login_timeout=60)
        assert guesser.tries <= 4  # three refused, the fourth never checked
        await assert_other_session_answers(other)
        await other.close()

    run(scenario())
    log = (agent.state_dir / "agent.log").read_text()
    assert "password authentication failed for user 'admin' from 127.0.0.1:" in log
    assert "too many authentication failures" in log


def test_keyboard_interactive_is_off_unless_configured(agent):
    async def scenario():
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                   password=agent.password, known_hosts=None, client_keys=None,
                                   agent_path=None, preferred_auth="keyboard-interactive")

    run(scenario())


def test_idle_connections_cannot_lock_users_out(agent):
    """Idle TCP connections beyond --max-startups are closed at once, the others
    after the login grace time; open sessions are served all along and new
    logins work again afterwards."""
    async def scenario():
        other = await RawClient.open(agent, (BASE_10,))
        idle = [await asyncio.open_connection("127.0.0.1", agent.port) for _ in range(40)]
        await assert_other_session_answers(other)
        closed_at_once = 0
        for reader, _ in idle[10:]:  # far beyond the cap: closed without a login window
            try:
                await asyncio.wait_for(reader.read(), 2)  # until the server closes it
            except asyncio.TimeoutError:
                continue
            closed_at_once += 1
        assert closed_at_once >= 25
        started = time.monotonic()
        for reader, _ in idle:  # the rest: closed after the grace time
            await asyncio.wait_for(reader.read(), 30)
        assert time.monotonic() - started < 30
        await assert_other_session_answers(other, "after")
        again = await RawClient.open(agent, (BASE_10,))
        reply = await again.rpc("<get-config><source><running/></source></get-config>")
        assert reply.find(f"{{{NC_NS}}}data") is not None
        for _, writer in idle:
            writer.close()
        await again.close()
        await other.close()

    run(scenario())


def test_keyboard_interactive_when_configured(start_agent):
    agent = start_agent("--keyboard-interactive")

    async def scenario():
        conn = await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                      password=agent.password, known_hosts=None,
                                      client_keys=None, agent_path=None,
                                      preferred_auth="keyboard-interactive")
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        assert b"<session-id>" in await asyncio.wait_for(reader.readuntil(b"]]>]]>"), 30)
        conn.close()

    run(scenario())


async def held_connection(host: str, port: int, source: str, greet: bool):
    """A TCP connection from *source* that sends nothing or only its SSH version line
    (RFC 4253 section 4.2) and never logs in; returned once the agent sent its own."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    if greet:
        writer.write(b"SSH-2.0-idle_client\r\n")
    line = await asyncio.wait_for(reader.readline(), 30)
    return reader, writer, line


async def closed_by_agent(reader: asyncio.StreamReader) -> bool:
    """Whether the agent closes the connection well before the login grace time (120 s):
    a refused one is closed at once."""
    try:
        while await asyncio.wait_for(reader.read(4096), 60):
            pass
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        pass  # aborted: RST
    return True


def test_one_source_cannot_hold_every_unauthenticated_slot(start_agent):
    """An address that opens connections and never logs in gets at most
    --per-source-max-startups of the --max-startups slots: its next connection is
    closed, and an operator from another address still logs in."""
    agent = start_agent("--max-startups", "4", "--per-source-max-startups", "3",
                        "--login-grace-time", "120")

    async def scenario():
        held = [await held_connection("127.0.0.1", agent.port, "127.0.0.1", greet=i % 2 == 0)
                for i in range(3)]
        assert all(line.startswith(b"SSH-2.0-") for _, _, line in held)
        flood = [await asyncio.open_connection("127.0.0.1", agent.port,
                                               local_addr=("127.0.0.1", 0))
                 for _ in range(20)]
        for reader, writer in flood:
            writer.write(b"SSH-2.0-idle_client\r\n")
        assert [await closed_by_agent(reader) for reader, _ in flood] == [True] * 20
        # the fourth slot is left for another source: 127.0.0.2 (any 127/8 is loopback)
        conn = await asyncssh.connect("127.0.0.1", agent.port, local_addr=("127.0.0.2", 0),
                                      username="admin", password=agent.password,
                                      known_hosts=None, client_keys=None, agent_path=None)
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        assert b"<session-id>" in await asyncio.wait_for(reader.readuntil(b"]]>]]>"), 30)
        conn.close()
        await conn.wait_closed()
        for _, writer, _ in held:
            writer.close()
        for _, writer in flood:
            writer.close()

    run(scenario())
    log = (agent.state_dir / "agent.log").read_text()
    refusals = [line for line in log.splitlines() if "(per-source limit)" in line]
    assert len(refusals) == 1, refusals  # one line for the flood of 20, not one each
    assert ("connection from 127.0.0.1 refused: 3 connections from 127.0.0.1 are not"
            " authenticated yet" in refusals[0])


def test_an_ipv6_source_is_capped_too(start_agent):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    agent = start_agent("--host", "::1", "--max-startups", "4",
                        "--per-source-max-startups", "2", "--login-grace-time", "120")

    async def scenario():
        held = [await held_connection("::1", agent.port, "::1", greet=True) for _ in range(2)]
        reader, writer = await asyncio.open_connection("::1", agent.port)
        assert await closed_by_agent(reader)
        for _, w, _ in [*held, (reader, writer, None)]:
            w.close()

    run(scenario())
    assert "connection from ::1 refused: 2 connections from ::/64" in (
        agent.state_dir / "agent.log").read_text()
