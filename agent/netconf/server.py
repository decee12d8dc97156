"""The NETCONF server: sessions, dispatch, locks, confirmed commit, and its SSH transport.

:class:`NetconfServer` is transport-independent: a transport opens a session
with :meth:`NetconfServer.open_session`, feeds received bytes to
:meth:`NetconfServer.data_received`, reports the client's EOF with
:meth:`NetconfServer.eof_received` (the RPCs received before it are answered,
then the session ends) and the end of the connection with
:meth:`NetconfServer.session_closed` (at once, nothing more is sent). RPCs of
one session are answered in order (RFC 6241 section 4.2); all sessions share
one asyncio loop, so datastore operations, and commits in particular, run one
at a time.

:func:`start_ssh_server` is the thin asyncssh adapter: the SSH subsystem
``netconf`` of RFC 6242 section 3, with password and public-key
authentication under the limits of :mod:`agent.netconf.logins`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import asyncssh
from lxml import etree

from ..clock import Clock, SystemClock
from . import audit, eagertask, sshlean
from .context import DatastoreLock, Subscription
from .errors import NC_NS, RpcError, RpcErrors
from .filternames import CheckedFilters
from .filterrun import XPATH_SECONDS, FilterRunner
from .framing import DEFAULT_MAX_MESSAGE_SIZE
from .logins import LoginGuard
from .nacm import Nacm
from .ops import RETRIEVALS, register_standard_operations
from .ops.base import ConfigQuery, config_query, get_config
from .ops.registry import Handler, RpcContext, RpcRegistry
from .replycache import ConfigReplyCache, SerializedElement
from .requestmemo import MAX_ENTRIES, RequestMemo
from .session import (CloseSession, EndOfInput, Event, HelloReceived, ParseRequested,
                      RepeatedRpc, RpcReceived, SendData, Session, State,
                      parse_client_message)
from .state import StateProvider, StateRegistry, netconf_state, yang_library
from .xmlparse import parse_message

if TYPE_CHECKING:
    from ..datastore import ChangeSummary, Datastores
    from ..model import Model
    from .users import UserStore

log = logging.getLogger("agent.netconf")

NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"

#: RFC 6241 section 8 and RFC 6243 / RFC 5277 capabilities, without the YANG library one
BASE_CAPABILITIES = (
    "urn:ietf:params:netconf:base:1.0",
    "urn:ietf:params:netconf:base:1.1",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:startup:1.0",
    "urn:ietf:params:netconf:capability:xpath:1.0",
    "urn:ietf:params:netconf:capability:with-defaults:1.0"
    "?basic-mode=report-all&also-supported=trim,explicit,report-all-tagged",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
)


#: how soon a confirmed-commit rollback that failed (e.g. disk full) is retried
CONFIRM_RETRY_SECONDS = 5.0
#: events queued for one session before its input is paused (flow control)
MAX_PENDING_EVENTS = 64
#: unfinished input all sessions together may hold, in maximum message sizes
MAX_BUFFERED_MESSAGES = 8
#: why a session ends when its client sent EOF and got its replies
CLIENT_EOF = "client sent EOF"


class Transport(Protocol):
    """What the server needs from a session's transport."""

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


@dataclass
class Statistics:
    """Server-wide counters of ietf-netconf-monitoring (RFC 6022 section 2.1.5).

    Per-RPC counters of closed sessions are added here when they close.
    """

    start_time: datetime
    in_bad_hellos: int = 0
    in_sessions: int = 0
    dropped_sessions: int = 0
    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0


@dataclass
class SessionRecord:
    """Everything the server keeps about one session."""

    session_id: int
    user: str
    peer_host: str
    login_time: datetime
    protocol: Session
    transport: Transport
    subscription: Subscription | None = None
    closing: bool = False
    pending: deque = field(default_factory=deque)
    #: whether a worker (NetconfServer._drain) handles the pending events now
    draining: bool = False
    #: the task of the worker, once it suspended (see agent.netconf.eagertask)
    worker: asyncio.Task | None = None
    #: cleared while the client does not read its replies (flow control)
    writable: asyncio.Event = field(default_factory=asyncio.Event)
    reading_paused: bool = False
    #: bytes of unfinished messages, as last counted into NetconfServer.buffered
    buffered: int = 0
    #: the session that killed this one (RFC 6241 section 7.9)
    killed_by: int | None = None

    def __post_init__(self) -> None:
        self.writable.set()


@dataclass
class PendingConfirm:
    """A confirmed commit awaiting its confirming commit (RFC 6241 section 8.4)."""

    session_id: int
    persist: str | None
    snapshot: object
    timer: asyncio.TimerHandle | None = None
    #: its rollback, while it is made (:meth:`NetconfServer.rollback_confirmed_commit`)
    rollback: "asyncio.Future[None] | None" = None


class NetconfServer:
    """The transport-independent NETCONF server of the agent."""

    def __init__(self, model: "Model", datastores: "Datastores", *,
                 clock: Clock | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 extra_capabilities: tuple[str, ...] = (),
                 confirm_backup: Path | None = None,
                 hello_timeout: float = 60.0,
                 xpath_filter_seconds: float = XPATH_SECONDS,
                 max_buffered_input: int | None = None,
                 nacm: Nacm | None = None,
                 memo_entries: int = MAX_ENTRIES):
        self.model = model
        self.datastores = datastores
        self.clock = clock or SystemClock()
        self.max_message_size = max_message_size
        #: bytes of unfinished messages all sessions may hold together
        self.max_buffered_input = (max_buffered_input if max_buffered_input is not None
                                   else MAX_BUFFERED_MESSAGES * max_message_size)
        #: bytes of unfinished messages the sessions hold now
        self.buffered = 0
        self.capabilities: list[str] = [*BASE_CAPABILITIES, *extra_capabilities,
                                        *_yang_capabilities(model)]
        self.registry = RpcRegistry()
        self.state = StateRegistry()
        self.sessions: dict[int, SessionRecord] = {}
        self.locks: dict[str, DatastoreLock] = {}
        #: sessions that changed the candidate since it was last committed or discarded
        self.candidate_editors: set[int] = set()
        self.confirm: PendingConfirm | None = None
        #: where running is kept during a confirmed commit (survives a crash)
        self.confirm_backup = confirm_backup
        #: seconds a client has to send its hello before the session is closed
        self.hello_timeout = hello_timeout
        self.statistics = Statistics(start_time=self.clock.now())
        self._next_session_id = 1
        self._key_cache: dict[str, tuple[str, ...]] = {}
        #: evaluates <get> and <get-config> filters off the event loop, within budgets
        self.filters = FilterRunner(xpath_seconds=xpath_filter_seconds)
        #: serialized <get-config> answers, per datastore version
        self.config_replies = ConfigReplyCache(datastores, self.keys_of, self.filters)
        #: filters whose names were checked against the model (built on first use)
        self.checked_filters = CheckedFilters(lambda: model.name_tree)
        #: access control (RFC 8341); by default no user database and no recovery user
        self.nacm = nacm or Nacm(model, datastores)
        #: <get-config>s answered before, by their bytes but for the message-id, for
        #: every session: what they need does not depend on who sends them, and a
        #: poller that opens a session per poll sends its request once per session
        #: (``memo_entries`` 0: none)
        self.request_memo: RequestMemo[ConfigQuery] | None = (
            RequestMemo(memo_entries) if memo_entries > 0 else None)
        self.state.add(netconf_state(self))
        self.state.add(yang_library(self))
        self.state.add(self.nacm.state)
        register_standard_operations(self.registry)

    # --- extension points ---------------------------------------------------------
    def register_rpc(self, namespace: str, name: str, handler: Handler) -> None:
        """Answer ``<name xmlns=namespace>`` with ``await handler(ctx, operation_element)``."""
        self.registry.register(namespace, name, handler)
        if self.request_memo is not None:
            self.request_memo.clear()  # kept for the handlers registered before

    def add_state_provider(self, provider: StateProvider) -> None:
        """Add state data (``config false``) to ``<get>``."""
        self.state.add(provider)

    def notify(self, event: etree._Element) -> None:
        """Send *event* as a ``<notification>`` (RFC 5277 section 4) to subscribed sessions."""
        from .filters import subtree_filter

        now = self.clock.now()
        for record in list(self.sessions.values()):
            sub = record.subscription
            if sub is None or record.closing:
                continue
            shown = self.nacm.access(record.user).visible_event(event)
            if shown is None:
                continue  # RFC 8341 section 3.4.6
            if sub.filter is not None:
                wrapper = etree.Element("data")
                wrapper.append(copy.deepcopy(shown))
                try:
                    if len(subtree_filter(wrapper, sub.filter)) == 0:
                        continue
                except RpcError as exc:
                    log.warning("session %d: notification not sent: %s", record.session_id,
                                exc.message)
                    continue
            notification = etree.Element(f"{{{NOTIFICATION_NS}}}notification",
                                         nsmap={None: NOTIFICATION_NS})
            etree.SubElement(notification, f"{{{NOTIFICATION_NS}}}eventTime").text = (
                now.isoformat().replace("+00:00", "Z"))
            # *event* is shared by every receiver; a filtered one is this receiver's own copy
            notification.append(copy.deepcopy(shown) if shown is event else shown)
            if not record.writable.is_set():
                log.warning("session %d does not read: a notification was dropped",
                            record.session_id)
                continue
            record.transport.send(record.protocol.notification(notification))

    def keys_of(self, element: etree._Element) -> tuple[str, ...]:
        """Clark names of the key leaves if *element* is a list entry, else ``()``.

        Looked up once per schema path in the yangson model, then cached.
        """
        tags = []
        cur = element
        while cur.getparent() is not None:
            tags.append(cur.tag)
            cur = cur.getparent()
        path = tuple(reversed(tags))
        cached = self._key_cache.get(path)
        if cached is None:
            cached = self._key_cache[path] = self._lookup_keys(path)
        return cached

    def _lookup_keys(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        modules = {m.namespace: m.name for m in self.model.modules}
        path, previous = "", None
        for tag in tags:
            q = etree.QName(tag)
            module = modules.get(q.namespace)
            if module is None:
                return ()
            # yangson data paths name the module only where it changes
            path += f"/{module}:{q.localname}" if module != previous else f"/{q.localname}"
            previous = module
        try:
            node = self.model.datamodel.get_data_node(path)
        except Exception:  # noqa: BLE001 - not a schema path: no keys
            return ()
        namespace = etree.QName(tags[-1]).namespace
        return tuple(f"{{{namespace}}}{name}" for name, _ in getattr(node, "keys", None) or ())

    # --- sessions -----------------------------------------------------------------
    def open_session(self, user: str, peer_host: str, transport: Transport) -> SessionRecord:
        """A new session; its hello is sent at once (RFC 6241 section 8.1)."""
        session_id = self._next_session_id
        self._next_session_id += 1
        protocol = Session(session_id, self.capabilities, self.max_message_size,
                           memo=self.request_memo)
        record = SessionRecord(session_id, user, peer_host, self.clock.now(), protocol, transport)
        self.sessions[session_id] = record
        self.statistics.in_sessions += 1
        log.info("session %d opened: user %s from %s", session_id, user, peer_host)
        transport.send(protocol.hello())
        asyncio.get_running_loop().call_later(self.hello_timeout, self._hello_deadline, record)
        self.notify(audit.session_start(record))
        return record

    def _hello_deadline(self, record: SessionRecord) -> None:
        if record.session_id in self.sessions and record.protocol.state is State.AWAIT_HELLO:
            record.protocol.bad_hello = True
            log.warning("session %d: no hello within %g s", record.session_id, self.hello_timeout)
            self.end_session(record, "no hello")

    def data_received(self, record: SessionRecord, data: bytes) -> None:
        """Bytes from the client of *record*."""
        events = record.protocol.receive_data(data)
        self._count_buffered(record)
        if self.buffered > self.max_buffered_input:
            self._shed_input()
        self._queue(record, events)

    def eof_received(self, record: SessionRecord) -> None:
        """The client of *record* sent EOF (half-closed its side): the messages it
        completed are answered in order, then the session ends as if the connection
        closed (locks released, the candidate policy of :meth:`session_closed`); an
        incomplete trailing message is dropped. No new wait: each RPC still pending
        runs as it would have, and the client can send nothing more."""
        if record.session_id not in self.sessions:
            return
        events = record.protocol.receive_eof()
        self._count_buffered(record)
        self._queue(record, events)

    def _queue(self, record: SessionRecord, events: list[Event]) -> None:
        """Append *events* to the work of *record*; start its worker if it has none."""
        if not events:
            return
        if (len(events) == 1 and type(events[0]) is RepeatedRpc and not record.draining
                and not record.pending and not record.reading_paused and not record.closing
                and record.writable.is_set() and self._answer_at_once(record, events[0])):
            # a repeated request answered from the reply cache, as _drain would have
            # answered it at once: without a coroutine, a context copy, a StopIteration
            return
        record.pending.extend(events)
        if ((len(record.pending) > MAX_PENDING_EVENTS or record.protocol.parsing)
                and not record.reading_paused):
            # a client pipelining faster than we answer, or a large message to parse
            # first: stop reading until we catch up
            record.reading_paused = True
            record.transport.pause_reading()
        if not record.draining:
            # most RPCs are answered without suspending: then no task, no loop iteration
            record.worker = eagertask.start(self._drain(record))

    def _count_buffered(self, record: SessionRecord) -> None:
        held = record.protocol.buffered
        self.buffered += held - record.buffered
        record.buffered = held

    def _shed_input(self) -> None:
        """Too much unfinished input in all sessions together: close the session
        holding the most, with an rpc-error saying why (memory stays bounded
        however many sessions send large messages slowly)."""
        record = max(self.sessions.values(), key=lambda r: r.buffered)
        err = RpcError("resource-denied",
                       f"the agent holds more than {self.max_buffered_input} bytes of unfinished"
                       f" messages; this session's {record.buffered} bytes are the most;"
                       " closing it", type="rpc")
        log.warning("session %d: closed: %d bytes of unfinished messages, %d in all sessions",
                    record.session_id, record.buffered, self.buffered)
        record.transport.send(record.protocol.reply_errors(None, [err]))
        self.end_session(record, "too much unfinished input")

    async def _drain(self, record: SessionRecord) -> None:
        """Handle the events of *record* in order, one RPC after the other."""
        record.draining = True
        try:
            while record.pending and not record.closing:
                if not record.writable.is_set():
                    await record.writable.wait()  # the client reads its replies again
                    if record.closing:
                        break
                event = record.pending.popleft()
                self._resume_reading(record)
                if isinstance(event, RepeatedRpc) and not await self._repeat(record, event):
                    # an error or a denial: the full path gives it, as it would have
                    event = record.protocol.reparse(event)
                if isinstance(event, ParseRequested):
                    # lxml releases the GIL while it parses: other sessions are served meanwhile
                    parsed = await asyncio.to_thread(parse_client_message, event.data)
                    if record.closing:
                        break
                    record.pending.extend(record.protocol.message_parsed(parsed))
                    self._count_buffered(record)
                    self._resume_reading(record)
                elif isinstance(event, RpcReceived):
                    await self._dispatch(record, event)
                elif isinstance(event, SendData):
                    log.info("session %d: bad message answered with an rpc-error",
                             record.session_id)
                    record.transport.send(event.data)
                elif isinstance(event, CloseSession):
                    if event.data:
                        record.transport.send(event.data)
                    log.warning("session %d: closing: %s", record.session_id, event.reason)
                    self.end_session(record, event.reason)
                elif isinstance(event, EndOfInput):
                    if event.discarded:
                        log.info("session %d: EOF within a message: its %d bytes were dropped",
                                 record.session_id, event.discarded)
                    self.end_session(record, CLIENT_EOF)
                elif isinstance(event, HelloReceived):
                    log.debug("session %d: hello, framing %s", record.session_id,
                              record.protocol.framing.value)
                if record.pending:
                    await asyncio.sleep(0)  # a client pipelining many RPCs must not starve others
        finally:
            record.draining = False

    def _resume_reading(self, record: SessionRecord) -> None:
        if (record.reading_paused and len(record.pending) < MAX_PENDING_EVENTS // 2
                and not record.protocol.parsing):
            record.reading_paused = False
            record.transport.resume_reading()

    async def _dispatch(self, record: SessionRecord, request: RpcReceived) -> None:
        started = time.perf_counter()
        operation = request.operation
        query: ConfigQuery | None = None
        try:
            handler = self.registry.lookup(operation)
            access = self.nacm.access(record.user)
            access.authorize_rpc(operation)
            ctx = RpcContext(record, self, access, request.size)
            if handler is get_config and request.template is not None:
                # get_config, with its parameters kept for the memo
                query = config_query(ctx, operation)
                result = await query.answer(ctx)
            else:
                result = await handler(ctx, operation)
            reply = record.protocol.reply(request, result)
            outcome = "ok"
        except Exception as exc:  # noqa: BLE001 - a bug must not take the session down
            reply, outcome = self._failed(record, request, exc)
        if query is not None and outcome == "ok":
            record.protocol.remember(request, query)
        self._answered(record, operation, request.message_id, reply, outcome, started)

    def _failed(self, record: SessionRecord, request: RpcReceived, exc: Exception
                ) -> tuple[bytes, str]:
        """The reply to *request*, whose handling raised *exc*, and the outcome logged:
        its rpc-errors (RFC 6241 section 4.3), or ``operation-failed`` for a bug."""
        if isinstance(exc, RpcError):
            return record.protocol.reply_errors(request, [exc]), f"error {exc.tag}"
        if isinstance(exc, RpcErrors):
            return (record.protocol.reply_errors(request, exc.errors),
                    "errors " + ",".join(e.tag for e in exc.errors))
        name = etree.QName(request.operation).localname
        log.error("session %d: rpc %s failed", record.session_id, name, exc_info=exc)
        err = RpcError("operation-failed",
                       f"internal error while processing <{name}>; see the agent log",
                       type="application")
        return record.protocol.reply_errors(request, [err]), "error operation-failed (internal)"

    async def _repeat(self, record: SessionRecord, event: RepeatedRpc) -> bool:
        """Answer a request the memo recognized as :meth:`_dispatch` answers the one it
        repeats, without parsing it: NACM's rpc authorization, then the reply cache;
        ``False`` (nothing done) for a user who may not invoke it: the full path
        answers and counts the denial. When the answer fails (an XPath filter over
        its time, a datastore gone), the message is parsed for its reply's
        attributes and answered with that error as :meth:`_dispatch` would, without
        running the query a second time."""
        started = time.perf_counter()
        done = self._repeat_at_once(record, event, started)
        if done is not None:
            return done
        query: ConfigQuery = event.entry.value
        access = self.nacm.access(record.user)
        try:
            result = await query.answer(RpcContext(record, self, access, len(event.data)))
        except Exception as exc:  # noqa: BLE001 - answered as the full path would
            if not record.closing:  # else the session ended meanwhile: no one to answer
                self._answer_failed(record, event, exc, started)
            return True
        self._answer_repeated(record, event, result, started)
        return True

    def _answer_failed(self, record: SessionRecord, event: RepeatedRpc, exc: Exception,
                       started: float) -> None:
        """Answer *event*, whose query raised *exc*, with the reply of :meth:`_dispatch`."""
        request = record.protocol.reparse(event)
        if not isinstance(request, RpcReceived):  # its bytes parsed before: not expected
            record.pending.appendleft(request)
            return
        reply, outcome = self._failed(record, request, exc)
        self._answered(record, request.operation, request.message_id, reply, outcome, started)

    def _answer_at_once(self, record: SessionRecord, event: RepeatedRpc) -> bool:
        """:meth:`_repeat_at_once` outside a task: whether it answered *event*; an
        exception goes to the loop's handler, as one in :meth:`_drain`'s first step
        does (:func:`.eagertask.start`), not to the transport's ``data_received``."""
        try:
            return bool(self._repeat_at_once(record, event, time.perf_counter()))
        except Exception as exc:  # noqa: BLE001 - reported as eagertask reports it
            asyncio.get_running_loop().call_exception_handler(
                {"message": "exception in a task's first step", "exception": exc})
            return True

    def _repeat_at_once(self, record: SessionRecord, event: RepeatedRpc,
                        started: float) -> bool | None:
        """:meth:`_repeat` as far as it goes without suspending: ``True`` if answered
        from the reply cache, ``False`` (nothing done) if that answer would not be a
        success, ``None`` (nothing done) if the reply cache does not hold it."""
        query: ConfigQuery = event.entry.value
        access = self.nacm.access(record.user)
        if not query.may_invoke(access):
            return False
        try:
            result = query.cached(self.config_replies, access)
        except Exception:  # noqa: BLE001 - the full path answers it, as it would have
            return False
        if result is None:
            return None
        self._answer_repeated(record, event, result, started)
        return True

    def _answer_repeated(self, record: SessionRecord, event: RepeatedRpc,
                         result: SerializedElement, started: float) -> None:
        # a successful <get-config>: logged at DEBUG (see _answered)
        self._answered(record, event.entry.value.operation, event.message_id,
                       record.protocol.reply_repeated(event, result), "ok", started,
                       logging.DEBUG)

    def _answered(self, record: SessionRecord, operation: etree._Element, message_id: str,
                  reply: bytes, outcome: str, started: float, level: int | None = None
                  ) -> None:
        """Send the *reply* to *operation*, log it (at *level*, if the caller knows it);
        end the session after a close-session."""
        if record.session_id in self.sessions:
            record.transport.send(reply)
        # a device logs what changed and what failed; a poller's reads would flood the log
        if level is None:
            level = logging.DEBUG if outcome == "ok" and operation.tag in RETRIEVALS else (
                logging.INFO)
        if log.isEnabledFor(level):  # its arguments cost a small RPC more than its check
            log.log(level, "session %d rpc %s message-id %r: %s in %.2f ms", record.session_id,
                    etree.QName(operation).localname, message_id, outcome,
                    (time.perf_counter() - started) * 1000)
        if record.closing:
            self.end_session(record, "close-session")

    def end_session(self, record: SessionRecord, reason: str) -> None:
        """Close the transport of *record* and clean up after it."""
        record.closing = True
        record.transport.close()
        self.session_closed(record, reason)

    def session_closed(self, record: SessionRecord, reason: str) -> None:
        """The session is gone: release its locks, roll back its unconfirmed commit."""
        if self.sessions.pop(record.session_id, None) is None:
            return
        record.protocol.close()
        self.buffered -= record.buffered
        record.buffered = 0
        record.pending.clear()
        record.closing = True
        record.writable.set()  # a worker waiting for the client to read: let it end
        if record.protocol.bad_hello:
            self.statistics.in_bad_hellos += 1
        if reason != "close-session":  # RFC 6022: ended without <close-session>
            self.statistics.dropped_sessions += 1
        c = record.protocol.counters
        st = self.statistics
        st.in_rpcs += c.in_rpcs
        st.in_bad_rpcs += c.in_bad_rpcs
        st.out_rpc_errors += c.out_rpc_errors
        st.out_notifications += c.out_notifications
        for name, lock in list(self.locks.items()):
            if lock.session_id == record.session_id:
                del self.locks[name]
                if name == "candidate" and self.datastores.candidate_dirty:
                    # RFC 6241 section 8.3.5.2: the lock holder's uncommitted changes go away
                    self.datastores.discard_changes()
                    self.candidate_editors.clear()
                    log.info("session %d: candidate lock released, changes discarded",
                             record.session_id)
        self.candidate_editors.discard(record.session_id)
        confirm = self.confirm
        if confirm is not None and confirm.session_id == record.session_id and not confirm.persist:
            # RFC 6241 section 8.4.1: session end cancels a non-persistent confirmed commit
            self._roll_back_or_retry(f"session {record.session_id} ended", record, "cancel")
        log.info("session %d closed: user %s from %s (%s)", record.session_id, record.user,
                 record.peer_host, reason)
        self.notify(audit.session_end(record, _termination(record, reason), record.killed_by))

    def close(self) -> None:
        """End every session (agent shutdown): locks go, unconfirmed commits roll back."""
        for record in list(self.sessions.values()):
            self.end_session(record, "agent shutting down")

    def kill(self, session_id: int, by: int) -> None:
        """``<kill-session>`` (RFC 6241 section 7.9)."""
        record = self.sessions.get(session_id)
        if record is None:
            raise RpcError("invalid-value", f"there is no session {session_id}",
                           type="protocol", info={"bad-element": "session-id"})
        log.info("session %d killed by session %d", session_id, by)
        record.killed_by = by
        self.end_session(record, f"killed by session {by}")

    # --- confirmed commit (RFC 6241 section 8.4) -----------------------------------
    async def begin_confirmed_commit(self, session_id: int,
                                     persist: str | None) -> PendingConfirm:
        """Remember running before a confirmed commit, in memory and on disk; the
        confirmed commit begun.

        The on-disk copy lets :meth:`recover_unconfirmed_commit` restore it if the
        agent stops before the commit is confirmed (RFC 6241 section 8.4.1): it is
        durable before the commit's own write begins. Called under the datastores'
        write lock (:meth:`Datastores.commit_durably`'s *begin*: running does not
        change meanwhile), it lets other sessions go on: the copy is made in slices,
        then, the confirmed commit pending, the file is serialised and written in a
        worker thread (:meth:`Datastores.write_snapshot`). A session end or a
        cancel-commit meanwhile begins its rollback, made once this commit is over
        (which it refuses). A failed write is an ``operation-failed`` rpc-error,
        cancelled (agent shutdown) the write is waited for: either way the
        confirmed commit is then not begun and its file removed.
        """
        snapshot = await self.datastores.running_snapshot_cooperatively()
        confirm = self.confirm = PendingConfirm(session_id, persist, snapshot)
        if self.confirm_backup is None:
            return confirm
        try:
            await self.datastores.write_snapshot(snapshot, self.confirm_backup)
        except BaseException as exc:
            if self.confirm is confirm and confirm.rollback is None:
                self.end_confirmed_commit()  # else its rollback, under way, ends it
            if isinstance(exc, OSError):
                raise RpcError("operation-failed", f"{self.confirm_backup} (the copy of "
                               "running that rolls back the confirmed commit) could not be "
                               f"written ({exc.strerror or exc}); nothing was committed",
                               type="application") from None
            raise
        return confirm

    async def confirm_durably(self, recheck: Callable[[], None]) -> None:
        """A confirming commit's last step (RFC 6241 section 8.4): the backup
        removed and its directory fsync'ed, in a worker thread (other sessions go
        on), waited for to its end even if cancelled; then *recheck* (a rollback
        begun meanwhile wins). Called under the datastores' write lock once
        ``running.xml`` holds the commit durably (:meth:`Datastores.commit_durably`'s
        *end*), so the reply says ok only when a crash can no longer bring the
        backup back and roll back a confirmed commit at the next start.

        If the removal fails, *recheck* refuses or the caller is cancelled, the
        backup is put back if it is gone (an unlink whose directory fsync failed
        may not last) and the error raised (an :class:`OSError` as
        ``operation-failed``): the commit writes ``running.xml`` back, so that
        disk and memory agree that nothing was committed and the confirmed commit
        is still pending (its timeout, a restart, roll it back; confirming again
        tries the removal again). A plain ok would be wrong: a restart would roll
        back with the backup left; and running committed but the commit refused
        would be neither the one outcome nor the other."""
        confirm, backup = self.confirm, self.confirm_backup
        if confirm is None or backup is None:
            recheck()
            return
        try:
            await self.datastores.remove_durably(backup)
            recheck()
        except BaseException as exc:
            try:
                await self.datastores.put_back_snapshot(confirm.snapshot, backup)
            except OSError as again:
                log.error("%s could not be written back (%s): the confirmed commit is "
                          "still pending, but a restart before it ends would not roll it "
                          "back", backup, again.strerror or again)
            if isinstance(exc, OSError):
                raise RpcError("operation-failed", f"{backup} (the copy of running that "
                               "rolls back the confirmed commit) could not be removed "
                               f"durably ({exc.strerror or exc}); the commit was not "
                               "confirmed and nothing was committed: the confirmed "
                               "commit is still pending. Check the state directory's disk, "
                               "then confirm again before the timeout", type="application"
                               ) from None
            raise

    def end_confirmed_commit(self, backup_removed: bool = False) -> None:
        """The pending confirmed commit is confirmed (or never happened): forget the
        copy (*backup_removed*: :meth:`confirm_durably` removed its file).

        The other callers remove the file on the loop without an fsync of its
        directory: it then holds the running that ``running.xml`` holds durably
        (the commit that began the confirmed commit was not made and the file
        written back, or the rollback or the recovery at start is written), so
        a crash that brings it back rolls back to that same running; and every
        later change of ``running.xml`` (a commit, a rollback, another backup's
        write) fsyncs the same directory first, which makes the removal durable
        before that change is. The backup must therefore be in the state
        directory, beside ``running.xml`` (as ``serve`` puts it)."""
        confirm, self.confirm = self.confirm, None
        if confirm is not None and confirm.timer is not None:
            confirm.timer.cancel()
        if self.confirm_backup is not None and not backup_removed:
            self.confirm_backup.unlink(missing_ok=True)

    def rollback_confirmed_commit(self, reason: str, by: SessionRecord | None = None,
                                  event: audit.ConfirmEvent | None = None
                                  ) -> "asyncio.Future[None] | None":
        """Begin to restore running as it was before the confirmed commit (*by* that
        session, or by the server itself; *event*: the ``netconf-confirmed-commit``
        to send once it is done); the rollback, ``None`` if no confirmed commit is
        pending. One rollback is made: asked for again meanwhile, the one under way
        is returned. It is made as a commit is (issue 11): after the commit being
        written, if any, in slices and a worker thread while other sessions go on
        (:meth:`Datastores.restore_running_durably`). Until it is over the confirmed
        commit stays pending, but can no longer be confirmed or extended
        (:mod:`.ops.commit` refuses it); then, in one loop step, running and candidate
        are switched, the confirmed commit ends and the notifications go out. A
        failed write (an ``operation-failed`` rpc-error) leaves it pending."""
        confirm = self.confirm
        if confirm is None:
            return None
        if confirm.rollback is None:
            confirm.rollback = asyncio.ensure_future(self._roll_back(confirm, reason, by, event))
            confirm.rollback.add_done_callback(_retrieved)
        return confirm.rollback

    async def _roll_back(self, confirm: PendingConfirm, reason: str, by: SessionRecord | None,
                         event: audit.ConfirmEvent | None) -> None:
        try:
            summary = await self.datastores.restore_running_durably(
                confirm.snapshot, lambda: self.confirm is confirm)
        finally:
            confirm.rollback = None
        if summary is None:  # the confirmed commit ended meanwhile (its commit was refused)
            return
        # the loop step in which running changed: nothing was awaited since
        self.end_confirmed_commit()
        self.candidate_editors.clear()
        log.info("confirmed commit rolled back (%s): %s", reason, summary.describe())
        self.config_changed(by, "running", summary)
        if event is not None:
            self.confirmed_commit_event(by, event)

    def _roll_back_or_retry(self, reason: str, by: SessionRecord | None,
                            event: audit.ConfirmEvent) -> "asyncio.Future[None] | None":
        """:meth:`rollback_confirmed_commit` for the server's own reasons (the
        confirm-timeout, the end of the session): if the rollback fails (e.g. disk
        full), it is tried again :data:`CONFIRM_RETRY_SECONDS` later."""
        rollback = self.rollback_confirmed_commit(reason, by, event)
        if rollback is not None:
            rollback.add_done_callback(partial(self._retry_rollback, reason, by, event))
        return rollback

    def _retry_rollback(self, reason: str, by: SessionRecord | None, event: audit.ConfirmEvent,
                        rollback: "asyncio.Future[None]") -> None:
        if rollback.cancelled() or rollback.exception() is None:
            return
        log.error("confirmed commit: rollback failed (%s); retrying in %g s",
                  rollback.exception(), CONFIRM_RETRY_SECONDS)
        if self.confirm is not None:
            if self.confirm.timer is not None:
                self.confirm.timer.cancel()
            self.confirm.timer = asyncio.get_running_loop().call_later(
                CONFIRM_RETRY_SECONDS, self._roll_back_or_retry, reason, by, event)

    async def rollback_ended(self) -> None:
        """Until the confirmed-commit rollback under way, if any, is over (at agent
        shutdown: the end of the sessions rolls back)."""
        confirm = self.confirm
        if confirm is not None and confirm.rollback is not None:
            await asyncio.wait([confirm.rollback])

    # --- audit (RFC 6470) ------------------------------------------------------------
    def config_changed(self, session: SessionRecord | None, datastore: str,
                       summary: ChangeSummary) -> None:
        """``netconf-config-change``: who changed which nodes of *datastore*."""
        if not summary.empty:
            self.notify(audit.config_change(session, datastore, summary,
                                            self.datastores.smap.path_namespaces))

    def confirmed_commit_event(self, session: SessionRecord | None, event: audit.ConfirmEvent,
                               timeout: int | None = None) -> None:
        """``netconf-confirmed-commit``."""
        self.notify(audit.confirmed_commit(session, event, timeout))

    def schedule_confirm_timeout(self, seconds: int) -> None:
        assert self.confirm is not None
        if self.confirm.timer is not None:
            self.confirm.timer.cancel()
        self.confirm.timer = asyncio.get_running_loop().call_later(
            seconds, self._confirm_timeout, f"no confirming commit within {seconds} s")

    def _confirm_timeout(self, reason: str) -> "asyncio.Future[None] | None":
        """The confirm-timeout expired: roll back; if the disk refuses, try again."""
        return self._roll_back_or_retry(reason, None, "timeout")

    def recover_unconfirmed_commit(self) -> None:
        """At start: undo a confirmed commit that the previous run never confirmed."""
        if self.confirm_backup is None or not self.confirm_backup.exists():
            return
        data = parse_message(self.confirm_backup.read_bytes())
        config = etree.Element(f"{{{NC_NS}}}config", nsmap={None: NC_NS})
        config.extend(list(data))
        self.datastores.copy_config("candidate", config)
        summary = self.datastores.commit()
        self.confirm_backup.unlink()
        log.warning("a confirmed commit was not confirmed before the agent stopped;"
                    " running restored: %s", summary.describe())


def _retrieved(rollback: "asyncio.Future[None]") -> None:
    """A rollback's failure is the concern of who asked for it (cancel-commit's
    reply, a retry): not one for asyncio's "never retrieved" log."""
    if not rollback.cancelled():
        rollback.exception()


def _termination(record: SessionRecord, reason: str) -> audit.Termination:
    """RFC 6470 ``termination-reason`` of a session that ended for *reason*."""
    if record.killed_by is not None:
        return "killed"
    if reason == "close-session":
        return "closed"
    if reason == "no hello":
        return "timeout"
    if record.protocol.bad_hello:
        return "bad-hello"
    if reason in ("client closed the channel", CLIENT_EOF) or reason.startswith("connection lost"):
        return "dropped"
    return "other"


def _yang_capabilities(model: "Model") -> list[str]:
    """Module capabilities as RFC 7950 section 5.6.4 prescribes with RFC 8526.

    YANG 1.0 modules are advertised in the hello; YANG 1.1 modules only in the
    YANG library, announced by the yang-library:1.1 capability.
    """
    caps = []
    for m in model.modules:
        if m.conformance != "implement":
            continue
        text = m.path.read_text(encoding="utf-8")
        if _yang_version(text) == "1.1":
            continue
        uri = f"{m.namespace}?module={m.name}&revision={m.revision}"
        if m.features:
            uri += "&features=" + ",".join(m.features)
        caps.append(uri)
    caps.append("urn:ietf:params:netconf:capability:yang-library:1.1"
                f"?revision=2019-01-04&content-id={model.content_id}")
    return caps


def _yang_version(text: str) -> str:
    import re

    match = re.search(r"^\s*yang-version\s+\"?([0-9.]+)\"?\s*;", text, re.M)
    return match.group(1) if match else "1"


# --- the SSH transport (RFC 6242 section 3) -------------------------------------------
#: Linux's TCP_CORK: hold partial segments until uncorked
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


#: messages up to this size leave in one SSH packet (clients' maximum packet size:
#: 32 KiB in OpenSSH, paramiko and asyncssh), unless the client's window is nearly full
_ONE_PACKET = 16384


class _ChannelTransport:
    def __init__(self, chan: asyncssh.SSHServerChannel, ignore_packets: bool = True):
        self._chan = chan
        #: the TCP socket, corked while a message is written (Linux), else None
        self._corkable = chan.get_extra_info("socket") if _TCP_CORK is not None else None
        #: whether asyncssh writes an SSH_MSG_IGNORE packet before every data packet
        #: (not on a connection of sshlean's, with the ciphers the agent offers)
        self._ignore_packets = ignore_packets

    def send(self, data: bytes) -> None:
        if self._chan.is_closing():
            return
        if not self._ignore_packets and len(data) <= _ONE_PACKET:
            self._chan.write(data)  # one packet, one send(): nothing to cork
            return
        # each packet has its own send(): corked, a message leaves in full TCP
        # segments and wakes the client once, not once per packet
        corked = self._cork(1)
        try:
            self._chan.write(data)
        finally:
            if corked:
                self._cork(0)

    def _cork(self, on: int) -> bool:
        """Set TCP_CORK; ``False`` where that is not possible (not Linux, the socket gone)."""
        if self._corkable is None:
            return False
        try:
            self._corkable.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, on)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """End the channel as sshd ends a subsystem: EOF, ``exit-status`` 0 (``ssh -s``
        exits 0; errors went in-band as rpc-errors), close (RFC 4254 sections 5.3, 6.10).
        Replies still waiting for the client's window go before the close; EOF is
        left out then (asyncssh's close would take the place of a pending EOF).

        The status is 0 for every end, a kill-session, a framing error, a bad hello or
        the hello timeout too: OpenSSH with netconfd's netconf-subsystem sends 0 for
        each of them, no status has a meaning NETCONF defines, and ncclient,
        netconf-console2 and scrapli do not read it. Why a session ended is told as
        NETCONF tells it: ``netconf-session-end``'s termination-reason (RFC 6470 2.2)."""
        if self._chan.is_closing():
            return
        if not self._chan.get_write_buffer_size():
            self._chan.write_eof()
        self._chan.exit(0)

    def pause_reading(self) -> None:
        self._chan.pause_reading()

    def resume_reading(self) -> None:
        self._chan.resume_reading()


class _NetconfChannel(asyncssh.SSHServerSession):
    """One SSH channel running the ``netconf`` subsystem."""

    def __init__(self, server: NetconfServer, user: str, peer_host: str):
        self._server = server
        self._user = user
        self._peer_host = peer_host
        self._chan: asyncssh.SSHServerChannel | None = None
        self._record: SessionRecord | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        sshlean.lean_channel(chan)
        self._chan = chan

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "netconf"

    def session_started(self) -> None:
        assert self._chan is not None
        lean = isinstance(self._chan.get_connection(), sshlean.LeanServerConnection)
        self._record = self._server.open_session(
            self._user, self._peer_host, _ChannelTransport(self._chan, ignore_packets=not lean))

    def data_received(self, data: bytes, datatype: object) -> None:
        if self._record is not None:
            self._server.data_received(self._record, data)

    def eof_received(self) -> bool:
        """The client half-closed: keep the channel open for its replies (the server
        closes it once they are sent)."""
        if self._record is None:
            return False  # close the channel
        self._server.eof_received(self._record)
        return True

    def pause_writing(self) -> None:
        """The client's window is full: it does not read what we send."""
        if self._record is not None:
            self._record.writable.clear()

    def resume_writing(self) -> None:
        if self._record is not None:
            self._record.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._record is not None:
            reason = f"connection lost: {exc}" if exc else "client closed the channel"
            self._server.session_closed(self._record, reason)


class _SshServer(asyncssh.SSHServer):
    """Authentication and channel set-up for one SSH connection."""

    def __init__(self, server: NetconfServer, users: "UserStore", guard: LoginGuard):
        self._server = server
        self._users = users
        self._guard = guard
        self._conn: asyncssh.SSHServerConnection | None = None
        self._user = ""
        self._peer = "?"
        self._host = "?"
        self._counted = False  # among the guard's unauthenticated connections
        self._failures = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        sshlean.lean_connection(conn)
        self._conn = conn
        self._refuse_sha1_signatures(conn)
        peer = conn.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._host = peer[0] if peer else "?"
        self._counted = self._guard.connection_started(self._host)
        if not self._counted:
            asyncio.get_running_loop().call_soon(conn.abort)

    def _refuse_sha1_signatures(self, conn: asyncssh.SSHServerConnection) -> None:
        """A public-key login signed with SHA-1 (``ssh-rsa``, ``ssh-dss``) fails, as in
        OpenSSH's sshd since 8.8: asyncssh checks only that the key may make that kind of
        signature. The user's key is the same with rsa-sha2-256/512 (RFC 8332)."""
        validate = conn.validate_public_key

        async def checked(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
            if msg and signature_algorithm(signature) in SHA1_SIGNATURES:
                log.warning("public key login of user %r from %s refused: SHA-1 signature"
                            " (the client must sign with rsa-sha2-256 or rsa-sha2-512)",
                            username, self._peer)
                return False
            return await validate(username, key_data, msg, signature)

        conn.validate_public_key = checked  # type: ignore[method-assign]

    def _settle(self) -> None:
        if self._counted:
            self._counted = False
            self._guard.connection_settled(self._host)

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle()
        if exc is not None:
            log.debug("ssh connection from %s lost: %s", self._peer, exc)

    def begin_auth(self, username: str) -> bool:
        keys = self._users.authorized_keys(username)
        if keys is not None and self._conn is not None:
            self._conn.set_authorized_keys(keys)
        return True

    def password_auth_supported(self) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        # NotImplemented: asyncssh asks for the password through keyboard-interactive
        return NotImplemented if self._guard.limits.keyboard_interactive else False

    async def validate_password(self, username: str, password: str) -> bool:
        delay = self._guard.delay(self._host)
        if delay:
            await asyncio.sleep(delay)  # this source failed recently
        ok = await asyncio.get_running_loop().run_in_executor(
            None, self._users.check_password, username, password)
        if ok:
            self._user = username
            self._guard.succeeded(self._host)
        else:
            self._guard.failed(self._host)
            self._auth_failed("password", username)
        return ok

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Called for keys not in the user's authorized_keys: a failed attempt."""
        self._auth_failed("public key", username)
        return False

    def _auth_failed(self, method: str, username: str) -> None:
        """Log the failure; past ``max_auth_tries`` of them, cut the connection."""
        self._failures += 1
        limit = self._guard.limits.max_auth_tries
        log.warning("%s authentication failed for user %r from %s (%d of %d)",
                    method, username, self._peer, self._failures, limit)
        if self._failures >= limit and self._conn is not None:
            log.warning("ssh connection from %s closed: too many authentication failures",
                        self._peer)
            asyncio.get_running_loop().call_soon(
                self._conn.disconnect, asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                "too many authentication failures")

    def auth_completed(self) -> None:
        self._settle()
        if self._conn is not None:
            self._user = self._conn.get_extra_info("username") or self._user

    def session_requested(self) -> _NetconfChannel:
        return _NetconfChannel(self._server, self._user, self._host)


#: signature algorithms that hash with SHA-1, refused in public-key logins (RFC 8332 section
#: 3; OpenSSH's PubkeyAcceptedAlgorithms since 8.8) and not named in server-sig-algs (RFC 8308)
SHA1_SIGNATURES = frozenset({b"ssh-rsa", b"ssh-dss", b"x509v3-ssh-rsa", b"x509v3-ssh-dss"})


def signature_algorithm(signature: bytes) -> bytes:
    """The algorithm name an SSH signature blob begins with (RFC 4253 section 6.6)."""
    length = int.from_bytes(signature[:4], "big")
    return signature[4:4 + length] if len(signature) >= 4 + length else b""


def signature_algorithms() -> list[str]:
    """asyncssh's default signature algorithms without :data:`SHA1_SIGNATURES`."""
    from asyncssh.public_key import get_default_public_key_algs

    return [alg.decode() for alg in get_default_public_key_algs() if alg not in SHA1_SIGNATURES]


#: key exchanges asyncssh offers by default that OpenSSH 9's sshd does not, and we refuse:
#: diffie-hellman-group14-sha1 hashes the exchange with SHA-1 (RFC 9142 section 4 keeps it
#: only for old peers), and rsa2048-sha256 (RFC 4432) makes the server generate a new
#: 2048-bit RSA key for each connection, before any login, in the event loop
REFUSED_KEX = frozenset({"diffie-hellman-group14-sha1", "rsa2048-sha256", "rsa1024-sha1"})


def kex_algorithms() -> list[str]:
    """asyncssh's default key exchanges without :data:`REFUSED_KEX`, in its order."""
    from asyncssh.kex import get_default_kex_algs

    return [alg.decode() for alg in get_default_kex_algs() if alg.decode() not in REFUSED_KEX]


async def start_ssh_server(server: NetconfServer, users: "UserStore", host: str, port: int,
                           host_keys: list[str], guard: LoginGuard | None = None
                           ) -> asyncssh.SSHAcceptor:
    """Listen for NETCONF over SSH on *host*:*port* (RFC 6242)."""
    guard = guard or LoginGuard()
    return await asyncssh.create_server(
        lambda: _SshServer(server, users, guard), host, port,
        server_host_keys=host_keys,
        kex_algs=kex_algorithms(),
        signature_algs=signature_algorithms(),
        encoding=None,
        line_editor=False,  # only the netconf subsystem: no shell, no terminal to edit in
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        keepalive_interval=60,
        login_timeout=guard.limits.login_grace,
    )
