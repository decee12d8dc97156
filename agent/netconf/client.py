"""A small asyncio NETCONF client over SSH (RFC 6241, RFC 6242) on asyncssh.

It reuses the agent's sans-IO framer (:mod:`agent.netconf.framing`): the
hellos travel with end-of-message framing, then both sides switch to chunked
framing when both advertise ``base:1.1`` (RFC 6242 section 4.1). Replies are
read by the SSH channel's own callback on the caller's event loop: no reader
thread and no polling interval (stock ncclient's reader wakes every 100 ms),
and asyncssh sets TCP_NODELAY on the socket, so an RPC is answered as soon as
the server has answered it.

Usage::

    client = await NetconfClient.connect("127.0.0.1", 830, "admin", password)
    reply = await client.rpc("<get-config><source><running/></source></get-config>")
    await client.close()

:meth:`NetconfClient.rpc` returns the ``<rpc-reply>`` element, or raises
:class:`NetconfRpcError` (carrying each ``<rpc-error>``'s fields as
:class:`~agent.netconf.errors.RpcError`) when the reply holds an error.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

import asyncssh
from lxml import etree

from .errors import ERROR_TAGS, NC_NS, RpcError
from .framing import Deframer, Framing, FramingError, frame

CAP_BASE_10 = "urn:ietf:params:netconf:base:1.0"
CAP_BASE_11 = "urn:ietf:params:netconf:base:1.1"

#: XML parser for replies: no entities, no network (the server is not trusted blindly)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


class NetconfError(Exception):
    """The session failed: connection lost, framing broken, or a malformed reply."""


class NetconfRpcError(NetconfError):
    """The server answered an RPC with ``<rpc-error>`` (RFC 6241 section 4.3).

    *errors* holds every ``rpc-error`` of the reply with severity ``error``;
    *warnings* those with severity ``warning``; *reply* is the whole reply.
    """

    def __init__(self, errors: list[RpcError], warnings: list[RpcError], reply: etree._Element):
        self.errors = errors
        self.warnings = warnings
        self.reply = reply
        super().__init__("; ".join(e.message or e.tag for e in errors))


def parse_rpc_errors(reply: etree._Element) -> list[RpcError]:
    """The ``<rpc-error>`` elements of *reply* as :class:`RpcError` (RFC 6241 section 4.3)."""
    found = []
    for err in reply.iterfind(f"{{{NC_NS}}}rpc-error"):
        def text(name: str) -> str | None:
            value = err.findtext(f"{{{NC_NS}}}{name}")
            return value.strip() if value is not None else None

        tag = text("error-tag") or "operation-failed"
        etype = text("error-type") or "application"
        if tag not in ERROR_TAGS:
            tag = "operation-failed"
        if etype not in ERROR_TAGS[tag]:
            etype = ERROR_TAGS[tag][-1]
        info_el = err.find(f"{{{NC_NS}}}error-info")
        info = {}
        if info_el is not None:
            info = {etree.QName(child).localname: (child.text or "").strip()
                    for child in info_el if isinstance(child.tag, str)}
        path_el = err.find(f"{{{NC_NS}}}error-path")
        found.append(RpcError(
            tag=tag, message=text("error-message") or "", type=etype,
            severity="warning" if text("error-severity") == "warning" else "error",
            path=text("error-path"), app_tag=text("error-app-tag"), info=info,
            path_namespaces={k: v for k, v in (path_el.nsmap if path_el is not None else {}).items()
                             if k is not None}))
    return found


class _Channel(asyncssh.SSHClientSession):
    """The ``netconf`` subsystem channel: bytes in, framed messages out (RFC 6242)."""

    def __init__(self) -> None:
        self.deframer = Deframer()
        self.messages: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        #: called with the server's hello; returns the framing of the later messages
        self.on_hello: Callable[[bytes], Framing] | None = None

    def data_received(self, data: bytes, datatype) -> None:
        self.deframer.feed(data)
        while (event := self.deframer.next_event()) is not None:
            if isinstance(event, FramingError):
                self.messages.put_nowait(NetconfError(f"framing error: {event.reason}"))
                return
            self.messages.put_nowait(event.data)
            if self.deframer.framing is Framing.END_OF_MESSAGE and self.on_hello is not None:
                # the server's hello decides the framing of every later message
                self.deframer.set_framing(self.on_hello(event.data))
                self.on_hello = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.messages.put_nowait(NetconfError(f"connection lost: {exc}" if exc else "session closed"))


class NetconfClient:
    """One NETCONF session. Create with :meth:`connect`; RPCs run one at a time."""

    def __init__(self, conn: asyncssh.SSHClientConnection, chan: asyncssh.SSHClientChannel,
                 session: _Channel, capabilities: Sequence[str] = (CAP_BASE_10, CAP_BASE_11)):
        self._conn = conn
        self._chan = chan
        self._session = session
        self._framing = Framing.END_OF_MESSAGE
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._client_caps = tuple(capabilities)
        #: the server's capabilities (from its hello)
        self.server_capabilities: list[str] = []
        self.session_id: str | None = None

    @classmethod
    async def connect(cls, host: str, port: int, username: str, password: str, *,
                      known_hosts=None, timeout: float = 30.0,
                      capabilities: Sequence[str] = (CAP_BASE_10, CAP_BASE_11),
                      host_key_check: Callable[[str, str, int, asyncssh.SSHKey], bool] | None
                      = None) -> "NetconfClient":
        """Open SSH, start the ``netconf`` subsystem and exchange hellos (RFC 6242 section 3).

        *known_hosts* is passed to asyncssh (``None``: the host key is not checked), unless
        *host_key_check* (host, address, port, key) decides, before the password is sent.
        """
        options = {}
        if host_key_check is not None:
            class _Checked(asyncssh.SSHClient):
                def validate_host_public_key(self, host, addr, port, key) -> bool:
                    return host_key_check(host, addr, port, key)

            options = {"client_factory": _Checked}
            known_hosts = ([], [], [])  # no key trusted beforehand: each one is asked about
        conn = await asyncio.wait_for(asyncssh.connect(
            host, port, username=username, password=password, known_hosts=known_hosts,
            client_keys=None, agent_path=None, preferred_auth="password,keyboard-interactive",
            **options), timeout)
        try:
            chan, session = await conn.create_session(_Channel, subsystem="netconf", encoding=None)
            client = cls(conn, chan, session, capabilities)
            session.on_hello = client._hello_received
            hello = await asyncio.wait_for(client._next_message(), timeout)
            client._parse_server_hello(hello)
            caps = "".join(f"<capability>{c}</capability>" for c in client._client_caps)
            chan.write(frame(f'<hello xmlns="{NC_NS}"><capabilities>{caps}</capabilities></hello>'
                             .encode(), Framing.END_OF_MESSAGE))
            client._framing = session.deframer.framing
        except BaseException:
            conn.close()
            raise
        return client

    @property
    def framing(self) -> Framing:
        """The framing of this session after the hellos (RFC 6242 section 4.1)."""
        return self._framing

    def _hello_received(self, data: bytes) -> Framing:
        """Framing after the hellos: chunked iff both sides speak base:1.1 (RFC 6242 4.1)."""
        both = CAP_BASE_11 in self._client_caps and CAP_BASE_11.encode() in data
        return Framing.CHUNKED if both else Framing.END_OF_MESSAGE

    def _parse_server_hello(self, data: bytes) -> None:
        try:
            hello = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise NetconfError(f"the server's hello is not XML: {exc}") from None
        if etree.QName(hello).localname != "hello":
            raise NetconfError("the server did not start with a hello")
        self.server_capabilities = [(c.text or "").strip()
                                    for c in hello.iter(f"{{{NC_NS}}}capability")]
        self.session_id = hello.findtext(f"{{{NC_NS}}}session-id")

    async def _next_message(self) -> bytes:
        item = await self._session.messages.get()
        if isinstance(item, BaseException):
            self._session.messages.put_nowait(item)  # later calls fail the same way
            raise item
        return item

    async def rpc(self, operation: str | bytes | etree._Element, timeout: float | None = None
                  ) -> etree._Element:
        """Send ``<rpc>`` around *operation* and return the ``<rpc-reply>`` element.

        Raises :class:`NetconfRpcError` if the reply has an ``rpc-error`` of
        severity ``error`` (RFC 6241 section 4.3), :class:`NetconfError` if the
        session breaks. After a *timeout* the session is out of step (the late
        reply would answer the next RPC): close it.
        """
        if isinstance(operation, etree._Element):
            operation = etree.tostring(operation)
        body = operation.encode() if isinstance(operation, str) else operation
        async with self._lock:
            message_id = str(next(self._ids))
            self._chan.write(frame(
                b'<rpc xmlns="%s" message-id="%s">%s</rpc>' % (NC_NS.encode(), message_id.encode(),
                                                               body), self._framing))
            data = await asyncio.wait_for(self._next_message(), timeout)
        try:
            reply = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise NetconfError(f"the reply is not XML: {exc}") from None
        if reply.tag != f"{{{NC_NS}}}rpc-reply" or reply.get("message-id") != message_id:
            raise NetconfError(f"unexpected reply to message-id {message_id}")
        problems = parse_rpc_errors(reply)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise NetconfRpcError(errors, [p for p in problems if p.severity == "warning"], reply)
        return reply

    async def close(self) -> None:
        """``<close-session>`` (RFC 6241 section 7.8), then close the SSH connection."""
        try:
            if not self._chan.is_closing():
                await asyncio.wait_for(self.rpc("<close-session/>"), 5)
        except (NetconfError, asyncio.TimeoutError, OSError):
            pass
        finally:
            self._conn.close()
            await self._conn.wait_closed()
