"""Clients for the end-to-end tests: ncclient, and a raw asyncssh NETCONF client."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import asyncssh
from lxml import etree
from ncclient import manager

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
PKI_NS = "urn:cmp-agent:yang:cmp-agent-pki"
EOM = b"]]>]]>"


def connect(agent, username: str = "admin", password: str | None = None) -> manager.Manager:
    """An ncclient session to *agent* (a tests.conftest.AgentProcess)."""
    return manager.connect(host="127.0.0.1", port=agent.port, username=username,
                           password=password if password is not None else agent.password,
                           hostkey_verify=False, look_for_keys=False, allow_agent=False,
                           timeout=30)


def session_config(name: str, **leaves: str) -> str:
    """An edit-config <config> with one cmp-session entry."""
    body = "".join(f"<{k.replace('_', '-')}>{v}</{k.replace('_', '-')}>" for k, v in leaves.items())
    return (f'<config xmlns="{NC_NS}"><pki xmlns="{PKI_NS}"><cmp-session>'
            f"<name>{name}</name>{body}</cmp-session></pki></config>")


def session_filter(name: str) -> tuple[str, str]:
    return ("subtree", f'<pki xmlns="{PKI_NS}"><cmp-session><name>{name}</name></cmp-session></pki>')


def session_names(reply_xml: str) -> list[str]:
    root = etree.fromstring(reply_xml.encode())
    return root.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI_NS})


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.2) -> bool:
    """Poll *predicate* until it is true or *timeout* passes (no timing asserts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class RawClient:
    """A NETCONF client over asyncssh that frames messages itself (RFC 6242)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, writer, reader):
        self.conn, self.writer, self.reader = conn, writer, reader
        self.chunked = False
        self.server_hello = b""

    @classmethod
    async def open(cls, agent, capabilities: tuple[str, ...] = ("urn:ietf:params:netconf:base:1.0",)
                   ) -> "RawClient":
        conn = await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                      password=agent.password, known_hosts=None,
                                      client_keys=None, agent_path=None)
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        client = cls(conn, writer, reader)
        client.server_hello = await client._read_eom()
        caps = "".join(f"<capability>{c}</capability>" for c in capabilities)
        writer.write(f'<hello xmlns="{NC_NS}"><capabilities>{caps}</capabilities></hello>'
                     .encode() + EOM)
        client.chunked = "urn:ietf:params:netconf:base:1.1" in capabilities
        return client

    async def _read_eom(self) -> bytes:
        data = await asyncio.wait_for(self.reader.readuntil(EOM), 30)
        return data[: -len(EOM)]

    async def _read_chunked(self) -> bytes:
        parts = []
        while True:
            header = await asyncio.wait_for(self.reader.readuntil(b"\n#"), 30)
            assert header == b"\n#", header
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), 30)
            if line == b"#\n":
                return b"".join(parts)
            parts.append(await asyncio.wait_for(self.reader.readexactly(int(line)), 30))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, xml: str | bytes) -> None:
        data = xml.encode() if isinstance(xml, str) else xml
        if self.chunked:
            self.writer.write(b"\n#%d\n%s\n##\n" % (len(data), data))
        else:
            self.writer.write(data + EOM)

    async def receive(self) -> etree._Element:
        data = await (self._read_chunked() if self.chunked else self._read_eom())
        return etree.fromstring(data)

    async def rpc(self, body: str, message_id: str = "1") -> etree._Element:
        self.send(f'<rpc xmlns="{NC_NS}" message-id="{message_id}">{body}</rpc>')
        return await self.receive()

    async def closed(self) -> bool:
        """Whether the server closed the channel (EOF)."""
        try:
            data = await asyncio.wait_for(self.reader.read(), 30)
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError):
            return True
        return data == b"" or not re.search(rb"\S", data)

    async def close(self) -> None:
        self.conn.close()
        await self.conn.wait_closed()


def error_tags(reply: etree._Element) -> list[str]:
    return reply.xpath("//nc:rpc-error/nc:error-tag/text()", namespaces={"nc": NC_NS})


def error_field(reply: etree._Element, name: str) -> str | None:
    found = reply.xpath(f"//nc:rpc-error/nc:{name}", namespaces={"nc": NC_NS})
    return (found[0].text or "").strip() if found else None
