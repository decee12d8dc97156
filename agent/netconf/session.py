"""One NETCONF session, sans-IO: hello exchange, framing switch, rpc in, rpc-reply out.

Implements the message layer of RFC 6241: capabilities exchange (section 8.1),
``<rpc>`` and ``<rpc-reply>`` (sections 4.1 and 4.2, including the copy of all
``<rpc>`` attributes onto the reply and the ``missing-attribute`` error when
``message-id`` is missing), and the framing switch of RFC 6242 section 4.1.
The transport feeds bytes with :meth:`Session.receive_data` and sends what
the returned events and the ``reply*`` methods give it.

A message longer than :attr:`Session.inline_parse_limit` is not parsed here:
the session returns :class:`ParseRequested` with its bytes and reads no further
message until the caller hands the result of :func:`parse_client_message`
(computed off the event loop) to :meth:`Session.message_parsed`, which returns
the very events the inline path would have (the order of messages, the
framing switch after a hello and the rpc-errors stay the same).

When the client sends EOF (:meth:`Session.receive_eof`), the messages it
completed before are still answered, in order (RFC 6242 section 4 frames each
message on its own: a complete one stands); :class:`EndOfInput` follows the
last of them, and the bytes of an incomplete trailing message are dropped.

With a :class:`~.requestmemo.RequestMemo`, a small message equal but for its
message-id to a request the server answered before and kept there
(:meth:`Session.remember`) is not parsed: it is a :class:`RepeatedRpc`,
answered with :meth:`Session.reply_repeated`, or, if the server cannot answer
it so, parsed by :meth:`Session.reparse` into the event it would have been.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lxml import etree

from .errors import NC_NS, RpcError
from .framing import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Framing, FramingError, frame
from .replycache import SerializedElement
from .requestmemo import MemoEntry, RequestMemo, Template
from .xmlparse import XmlError, parse_message

BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"

_HELLO = f"{{{NC_NS}}}hello"
_RPC = f"{{{NC_NS}}}rpc"
_RPC_REPLY = f"{{{NC_NS}}}rpc-reply"
_OK = f"{{{NC_NS}}}ok"
#: what lxml writes before the attributes of an ``<rpc-reply>`` (see :meth:`Session.reply`)
_REPLY_START = f"<?xml version='1.0' encoding='UTF-8'?>\n<rpc-reply xmlns=\"{NC_NS}\"".encode()
#: messages longer than this are parsed off the event loop (about 3 ms of parsing)
INLINE_PARSE_LIMIT = 64 * 1024
#: the characters libxml2 escapes in an attribute value
_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                    "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


class State(Enum):
    AWAIT_HELLO = "await-hello"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class HelloReceived:
    """The client's hello arrived; *capabilities* are the URIs it advertised."""

    capabilities: tuple[str, ...]


@dataclass(slots=True)  # not frozen: its __init__ would cost every RPC ~4k instructions
class RpcReceived:
    """An ``<rpc>`` with exactly one operation element; answer with :meth:`Session.reply`."""

    rpc: etree._Element
    operation: etree._Element
    #: bytes of the message's XML, which bound what it holds (``None``: not known)
    size: int | None = None
    #: its template, if the session has a memo that may keep it (:meth:`Session.remember`)
    template: Template | None = None

    @property
    def message_id(self) -> str:
        return self.rpc.get("message-id", "")


@dataclass(slots=True)
class RepeatedRpc:
    """A message equal but for its ``<rpc>``'s message-id to a request kept in the
    memo (:meth:`Session.remember`), not parsed; answer with
    :meth:`Session.reply_repeated`, or make it the event the full path makes with
    :meth:`Session.reparse`. Its in-rpcs is counted."""

    entry: MemoEntry[Any]
    message_id: str
    data: bytes


@dataclass(frozen=True)
class SendData:
    """Bytes the session produced by itself (e.g. a ``malformed-message`` reply)."""

    data: bytes


@dataclass(frozen=True)
class CloseSession:
    """The session cannot go on; send *data* (may be empty), then close the channel."""

    reason: str
    data: bytes = b""


@dataclass(frozen=True)
class ParseRequested:
    """A large message arrived: run :func:`parse_client_message` on *data* in a
    worker thread and give the result to :meth:`Session.message_parsed`."""

    data: bytes


@dataclass(frozen=True)
class EndOfInput:
    """The client sent EOF and every message it completed before has had its event:
    end the session once those are answered. *discarded* bytes of an incomplete
    trailing message were dropped."""

    discarded: int


Event = (HelloReceived | RpcReceived | RepeatedRpc | SendData | CloseSession | ParseRequested
         | EndOfInput)


def parse_client_message(data: bytes) -> etree._Element | XmlError:
    """The root of one message from the client, or why it is not acceptable XML
    (thread-safe: each thread parses with its own parser)."""
    try:
        # white space between messages (a newline typed after ]]>]]>) is not
        # part of the next one: it would put its XML declaration out of place
        return parse_message(data.lstrip())
    except XmlError as exc:
        return exc


@dataclass
class Counters:
    """Per-session counters of ietf-netconf-monitoring (RFC 6022 section 2.1.3)."""

    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0


@dataclass
class Session:
    """The protocol state of one NETCONF session (server side)."""

    session_id: int
    capabilities: list[str]
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    state: State = State.AWAIT_HELLO
    client_capabilities: tuple[str, ...] = ()
    counters: Counters = field(default_factory=Counters)
    bad_hello: bool = False
    inline_parse_limit: int = INLINE_PARSE_LIMIT
    #: requests answered before, shared by the server's sessions (``None``: no memo)
    memo: RequestMemo[Any] | None = None

    def __post_init__(self) -> None:
        self._deframer = Deframer(self.max_message_size)
        #: length of the message handed out with ParseRequested, 0 if none
        self._parsing = 0
        #: the client sent EOF: no more bytes will come
        self._eof = False

    @property
    def framing(self) -> Framing:
        return self._deframer.framing

    @property
    def buffered(self) -> int:
        """Bytes received and held for messages not yet complete or being parsed."""
        return self._deframer.buffered + self._parsing

    @property
    def parsing(self) -> bool:
        """A :class:`ParseRequested` awaits :meth:`message_parsed`; no message is read meanwhile."""
        return bool(self._parsing)

    # --- outgoing -----------------------------------------------------------------
    def hello(self) -> bytes:
        """The server's ``<hello>`` (RFC 6241 section 8.1), end-of-message framed."""
        root = etree.Element(_HELLO, nsmap={None: NC_NS})
        caps = etree.SubElement(root, f"{{{NC_NS}}}capabilities")
        for uri in self.capabilities:
            etree.SubElement(caps, f"{{{NC_NS}}}capability").text = uri
        etree.SubElement(root, f"{{{NC_NS}}}session-id").text = str(self.session_id)
        return frame(_serialize(root), Framing.END_OF_MESSAGE)

    def reply(self, request: RpcReceived,
              result: etree._Element | list[etree._Element] | SerializedElement | None
              ) -> bytes:
        """The framed ``<rpc-reply>`` for *request* carrying *result* (``None`` is ``<ok/>``)."""
        if isinstance(result, SerializedElement):
            head = _reply_head(request.rpc.items())
            if head is not None:
                return self._serialized_reply(result, head.encode())
            # an attribute in a namespace: serialize the reply around a placeholder and
            # put the element's XML in its place (lxml may pick other prefixes when an
            # rpc attribute declares the element's namespace)
            root = self._reply_root(request.rpc)
            etree.SubElement(root, _OK)
            head, _, tail = _serialize(root).rpartition(b"<ok/>")
            return frame(head + result.xml + tail, self._deframer.framing)
        root = self._reply_root(request.rpc)
        if result is None:
            etree.SubElement(root, _OK)
        elif isinstance(result, list):
            root.extend(result)
        else:
            root.append(result)
        return self._frame(root)

    def reply_repeated(self, event: RepeatedRpc, result: SerializedElement) -> bytes:
        """The framed ``<rpc-reply>`` for *event* carrying *result*: what :meth:`reply`
        gives for the request it repeats, with its own message-id."""
        entry = event.entry
        return self._serialized_reply(result, entry.before, event.message_id.encode(),
                                      entry.after)

    def _serialized_reply(self, result: SerializedElement, head: bytes,
                          message_id: bytes = b"", tail: bytes = b"") -> bytes:
        """The framed ``<rpc-reply>`` with the attributes *head*, *message_id*, *tail*
        (joined) carrying *result*: what lxml writes (a test compares), without
        building and serializing an element for the answers the reply cache gives."""
        framing = self._deframer.framing
        if framing is Framing.CHUNKED:  # frame()'s, without a copy of the reply first
            return b"\n#%d\n%s%s%s%s>%s</rpc-reply>\n##\n" % (
                len(_REPLY_START) + len(head) + len(message_id) + len(tail)
                + len(result.xml) + 13, _REPLY_START, head, message_id, tail, result.xml)
        return frame(b"%s%s%s%s>%s</rpc-reply>" % (_REPLY_START, head, message_id, tail,
                                                   result.xml), framing)

    def reply_errors(self, request: RpcReceived | None, errors: list[RpcError]) -> bytes:
        """The framed ``<rpc-reply>`` with one ``<rpc-error>`` per error (RFC 6241 section 4.3)."""
        root = self._reply_root(request.rpc if request else None)
        for error in errors:
            error.to_xml(root)
        if any(e.severity == "error" for e in errors):
            self.counters.out_rpc_errors += 1
        return self._frame(root)

    def notification(self, notification: etree._Element) -> bytes:
        """A framed ``<notification>`` (RFC 5277 section 4)."""
        self.counters.out_notifications += 1
        return self._frame(notification)

    # --- incoming -----------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the client; the events to act on, in order."""
        if self.state is State.CLOSED:
            return []
        self._deframer.feed(data)
        return self._next_events()

    def receive_eof(self) -> list[Event]:
        """The client sent EOF: the events of the messages still buffered, then
        :class:`EndOfInput` (later, from :meth:`message_parsed`, if a message is being parsed)."""
        if self.state is State.CLOSED or self._eof:
            return []
        self._eof = True
        return self._next_events()

    def message_parsed(self, parsed: etree._Element | XmlError) -> list[Event]:
        """The result of :func:`parse_client_message` for the last :class:`ParseRequested`:
        its events and those of the messages received after it, in order."""
        if not self._parsing:
            raise RuntimeError("message_parsed() without a ParseRequested")
        size, self._parsing = self._parsing, 0
        if self.state is State.CLOSED:
            return []
        return [self._parsed(parsed, size), *self._next_events()]

    def _next_events(self) -> list[Event]:
        events: list[Event] = []
        while self.state is not State.CLOSED and not self._parsing:
            item = self._deframer.next_event()
            if item is None:
                break
            if isinstance(item, FramingError):
                events.append(self._framing_error(item))
            elif len(item.data) > self.inline_parse_limit:
                self._parsing = len(item.data)
                events.append(ParseRequested(item.data))
            else:
                events.append(self._message(item.data))
        if self._eof and self.state is not State.CLOSED and not self._parsing:
            discarded = self._deframer.buffered
            self.state = State.CLOSED
            self._deframer.close()
            events.append(EndOfInput(discarded))
        return events

    def _message(self, data: bytes) -> Event:
        """The event of one message parsed here, or recognized by the memo."""
        memo = self.memo
        if memo is not None and self.state is State.OPEN:
            found = memo.find(data)
            if found is not None:
                entry = memo.get(found.key)
                if entry is not None:
                    self.counters.in_rpcs += 1
                    return RepeatedRpc(entry, found.message_id, data)
                event = self._parsed(parse_client_message(data), len(data))
                if type(event) is RpcReceived:
                    event.template = found
                return event
        return self._parsed(parse_client_message(data), len(data))

    def remember(self, request: RpcReceived, value: object) -> None:
        """Keep *value*, what answering *request* again takes (the server answered it
        successfully), for the messages equal to it but for their message-id. Not if
        the memo may not keep it (yet: :meth:`~.requestmemo.RequestMemo.admits`), or an
        attribute of its ``<rpc>`` is in a namespace (lxml writes that reply: see
        :meth:`reply`)."""
        if request.template is None or self.memo is None or not self.memo.admits(
                request.template):
            return
        items = request.rpc.items()
        index = next(i for i, (name, _) in enumerate(items) if name == "message-id")
        before, after = _reply_head(items[:index]), _reply_head(items[index + 1:])
        if before is not None and after is not None:
            self.memo.put(request.template, MemoEntry(f'{before} message-id="'.encode(),
                                                      f'"{after}'.encode(), value))

    def reparse(self, event: RepeatedRpc) -> Event:
        """The event the full path makes of the message of *event*, which the server
        could not answer from the memo (an error, an access denial, ...): the message
        parsed, as if the memo had not known it (its in-rpcs counted once)."""
        self.counters.in_rpcs -= 1  # _parsed counts it again
        return self._parsed(parse_client_message(event.data), len(event.data))

    def _framing_error(self, error: FramingError) -> Event:
        self.counters.in_bad_rpcs += 1
        if self.state is State.AWAIT_HELLO:
            self.bad_hello = True
            return self._close(f"bad hello: {error.reason}")
        if error.too_big:
            err = RpcError("too-big", f"{error.reason}; the message was dropped", type="rpc")
            return SendData(self.reply_errors(None, [err]))
        err = self._malformed(f"{error.reason}; closing the session")
        return self._close(error.reason, self.reply_errors(None, [err]))

    def _malformed(self, message: str) -> RpcError:
        """RFC 6241 Appendix A: ``malformed-message`` is new in base:1.1 and MUST
        NOT be sent to base:1.0 peers; they get ``operation-failed``."""
        if BASE_1_1 in self.client_capabilities and BASE_1_1 in self.capabilities:
            return RpcError("malformed-message", message, type="rpc")
        return RpcError("operation-failed", message, type="rpc")

    def _parsed(self, root: etree._Element | XmlError, size: int) -> Event:
        """The event of one message of *size* bytes, parsed here or in a worker thread."""
        if isinstance(root, XmlError):
            if self.state is State.AWAIT_HELLO:
                self.bad_hello = True
                return self._close(f"bad hello: {root}")
            self.counters.in_bad_rpcs += 1
            err = self._malformed(f"{root}; the message was ignored")
            return SendData(self.reply_errors(None, [err]))
        if self.state is State.AWAIT_HELLO:
            return self._hello(root)
        if root.tag == _RPC:
            return self._rpc(root, size)
        self.counters.in_bad_rpcs += 1
        if root.tag == _HELLO:
            return self._close("a second <hello> in an open session (RFC 6241 section 8.1)")
        err = self._malformed(
            f"expected an <rpc> element in namespace {NC_NS}, got <{_local(root.tag)}>")
        return SendData(self.reply_errors(None, [err]))

    def _hello(self, root: etree._Element) -> Event:
        """RFC 6241 section 8.1 and RFC 6242 section 4.1."""
        if root.tag != _HELLO:
            self.bad_hello = True
            return self._close(f"expected <hello> first, got <{_local(root.tag)}>")
        if root.find(f"{{{NC_NS}}}session-id") is not None:
            self.bad_hello = True
            return self._close("the client's hello carries a session-id (RFC 6241 section 8.1)")
        caps = tuple((c.text or "").strip()
                     for c in root.iterfind(f"{{{NC_NS}}}capabilities/{{{NC_NS}}}capability"))
        if BASE_1_1 in caps and BASE_1_1 in self.capabilities:
            self._deframer.set_framing(Framing.CHUNKED)
        elif BASE_1_0 not in caps:
            self.bad_hello = True
            return self._close("the client's hello advertises neither base:1.0 nor base:1.1")
        self.client_capabilities = caps
        self.state = State.OPEN
        return HelloReceived(caps)

    def _rpc(self, rpc: etree._Element, size: int) -> Event:
        """RFC 6241 section 4.1: one operation per ``<rpc>``, message-id required."""
        self.counters.in_rpcs += 1
        if rpc.get("message-id") is None:
            self.counters.in_bad_rpcs += 1
            err = RpcError("missing-attribute", "the <rpc> element has no message-id attribute",
                           type="rpc", info={"bad-attribute": "message-id", "bad-element": "rpc"})
            return SendData(self.reply_errors(RpcReceived(rpc, rpc), [err]))
        if len(rpc) == 1 and isinstance(rpc[0].tag, str):  # the usual: one operation, alone
            return RpcReceived(rpc, rpc[0], size)
        operations = [c for c in rpc if isinstance(c.tag, str)]
        if len(operations) != 1:
            self.counters.in_bad_rpcs += 1
            request = RpcReceived(rpc, rpc)
            if not operations:
                err = RpcError("missing-element", "the <rpc> element contains no operation",
                               type="protocol", info={"bad-element": "rpc"})
            else:
                err = RpcError("bad-element",
                               "an <rpc> element must contain exactly one operation",
                               type="protocol", info={"bad-element": _local(operations[1].tag)})
            return SendData(self.reply_errors(request, [err]))
        return RpcReceived(rpc, operations[0], size)

    def _close(self, reason: str, data: bytes = b"") -> CloseSession:
        self.state = State.CLOSED
        return CloseSession(reason, data)

    def close(self) -> None:
        """The transport is gone (or close-session / kill-session ended the session)."""
        self.state = State.CLOSED
        self._parsing = 0
        self._deframer.close()

    # --- helpers ------------------------------------------------------------------
    def _reply_root(self, rpc: etree._Element | None) -> etree._Element:
        root = etree.Element(_RPC_REPLY, nsmap={None: NC_NS})
        if rpc is not None:
            for name, value in rpc.attrib.items():
                root.set(name, value)
        return root

    def _frame(self, root: etree._Element) -> bytes:
        return frame(_serialize(root), self._deframer.framing)


def _reply_head(attributes: list[tuple[str, str]]) -> str | None:
    """*attributes* of an ``<rpc>`` as lxml writes them on the ``<rpc-reply>``;
    ``None`` if one is in a namespace (lxml may declare it there)."""
    head = ""
    for name, value in attributes:
        if name[0] == "{":
            return None
        head += f' {name}="{value.translate(_ATTRIBUTE_ESCAPES)}"'
    return head


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _local(tag: str) -> str:
    return etree.QName(tag).localname
