"""The real NetconfServer over an in-memory transport, for tests that need what
SSH makes awkward: several sessions in one process, timers, injected faults."""

from __future__ import annotations

import asyncio

from lxml import etree

from agent.netconf.framing import Framing, frame
from agent.netconf.server import NetconfServer

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
HELLO = frame(f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.0'
              "</capability></capabilities></hello>".encode(), Framing.END_OF_MESSAGE)


class MemoryTransport:
    """Keeps what the server sends; a base:1.0 session, so each message ends in ]]>]]>."""

    def __init__(self):
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class MemoryClient:
    """One session of *server*, past its hello."""

    def __init__(self, server: NetconfServer, user: str = "admin"):
        self.server = server
        self.transport = MemoryTransport()
        self.record = server.open_session(user, "127.0.0.1", self.transport)
        server.data_received(self.record, HELLO)
        self._next = 0

    async def raw(self, body: str, attrs: str = "") -> bytes:
        """Send ``<rpc>`` around *body*; the reply's bytes, framing removed."""
        self._next += 1
        before = len(self.transport.sent)
        msg = f'<rpc xmlns="{NC}" message-id="{self._next}"{attrs}>{body}</rpc>'.encode()
        self.server.data_received(self.record, frame(msg, Framing.END_OF_MESSAGE))
        # the loop runs at least once, as between a request and its reply over a socket
        # (an RPC answered at once is answered within data_received)
        await asyncio.sleep(0)
        while len(self.transport.sent) == before:
            await asyncio.sleep(0)
        return self.transport.sent[before][:-6]

    async def rpc(self, body: str) -> etree._Element:
        """The reply, whatever it says."""
        return etree.fromstring(await self.raw(body))

    def close(self) -> None:
        self.server.session_closed(self.record, "client closed the channel")
