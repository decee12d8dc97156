"""RFC 6241 section 7 operations, with ``<validate>`` and ``<discard-changes>`` of section 8.

Datastore work is delegated to :class:`agent.datastore.Datastores`; this
module parses parameters, enforces locks (section 7.5) and applies filters
(section 6) and with-defaults (RFC 6243 section 4.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from ..context import DatastoreLock
from ..errors import NC_NS, RpcError, RpcErrors
from ..filters import FilterParam
from ..replycache import SerializedElement
from .registry import RpcContext, check_params, child, params, text_param

if TYPE_CHECKING:
    from ..nacm import Access
    from ..replycache import ConfigReplyCache

WD_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
DATASTORES = ("running", "candidate", "startup")
WITH_DEFAULTS_MODES = ("report-all", "trim", "explicit", "report-all-tagged")


def _nc(name: str) -> str:
    return f"{{{NC_NS}}}{name}"


# --- parameters -----------------------------------------------------------------------
def datastore_param(op: etree._Element, param: str, *, inline_config: bool = False
                    ) -> str | etree._Element:
    """The datastore named in ``<param><running/></param>`` (RFC 6241 section 7).

    With *inline_config*, ``<param><config>...</config></param>`` gives the
    ``<config>`` element instead.
    """
    return _datastore(op, param, child(op, NC_NS, param), inline_config)


#: the elements naming a datastore, by Clark name
_DATASTORE_TAGS = {f"{{{NC_NS}}}{name}": name for name in DATASTORES}


def _datastore(op: etree._Element, param: str, holder: etree._Element | None,
               inline_config: bool = False) -> str | etree._Element:
    """:func:`datastore_param` with *op*'s ``<param>`` element *holder* found already."""
    if holder is None:
        raise RpcError("missing-element",
                       f"<{etree.QName(op).localname}> needs a <{param}> parameter naming a datastore"
                       f" ({', '.join(DATASTORES)})",
                       type="protocol", info={"bad-element": param})
    if len(holder) == 1:  # the usual <source><running/></source>: one .tag built, not three
        chosen = holder[0]
        name = _DATASTORE_TAGS.get(chosen.tag)  # type: ignore[arg-type]
        if name is not None:
            return name
    choices = [c for c in holder if isinstance(c.tag, str)]
    if len(choices) != 1:
        raise RpcError("bad-element",
                       f"<{param}> must contain exactly one of {', '.join(DATASTORES)}",
                       type="protocol", info={"bad-element": param})
    chosen = choices[0]
    q = etree.QName(chosen)
    if q.namespace == NC_NS and q.localname in DATASTORES:
        return q.localname
    if inline_config and q.namespace == NC_NS and q.localname == "config":
        return chosen
    if q.namespace == NC_NS and q.localname == "url":
        raise RpcError("operation-not-supported",
                       "the :url capability is not supported; name a datastore instead",
                       type="protocol", info={"bad-element": "url"})
    raise RpcError("bad-element",
                   f"<{q.localname}> is not a datastore; use one of {', '.join(DATASTORES)}",
                   type="protocol", info={"bad-element": q.localname})


def with_defaults_param(found: dict[str, etree._Element]) -> str:
    """RFC 6243 section 4.5.1, of the parameters *found* by
    :func:`~.registry.params`; the basic mode report-all when absent."""
    el = found.get(_WITH_DEFAULTS)
    if el is None:
        return "report-all"
    mode = (el.text or "").strip()
    if mode not in WITH_DEFAULTS_MODES:
        raise RpcError("invalid-value",
                       f"with-defaults {mode!r} is not one of {', '.join(WITH_DEFAULTS_MODES)}",
                       type="protocol", info={"bad-element": "with-defaults"})
    return mode


def check_not_locked_by_other(ctx: RpcContext, datastore: str) -> None:
    """Refuse to change *datastore* while another session holds its lock (RFC 6241 section 7.5)."""
    lock = ctx.server.locks.get(datastore)
    if lock is not None and lock.session_id != ctx.session_id:
        raise RpcError("in-use",
                       f"the {datastore} datastore is locked by session {lock.session_id};"
                       " wait for it to unlock or ask an administrator to kill that session",
                       type="protocol")


# --- retrieval (RFC 6241 sections 7.1 and 7.7) ----------------------------------------
_SOURCE, _FILTER, _WITH_DEFAULTS = _nc("source"), _nc("filter"), f"{{{WD_NS}}}with-defaults"
_GET_CONFIG_PARAMS = {_SOURCE, _FILTER, _WITH_DEFAULTS}
_GET_PARAMS = {_FILTER, _WITH_DEFAULTS}


def filter_param(ctx: RpcContext, found: dict[str, etree._Element]) -> FilterParam | None:
    """The ``<filter>`` of get or get-config among the parameters *found* by
    :func:`~.registry.params`, refused if it names what the model does not have."""
    filter_el = found.get(_FILTER)
    if filter_el is None:
        return None
    checked = FilterParam.of(filter_el, ctx.message_size)
    ctx.server.checked_filters.check(checked)
    return checked


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~4k instructions
class ConfigQuery:
    """A ``<get-config>`` (RFC 6241 section 7.1), its parameters read once: the
    server keeps it for requests that repeat it (:mod:`..requestmemo`)."""

    #: the operation element (which NACM's rpc authorization reads)
    operation: etree._Element
    source: str
    with_defaults: str
    filter: FilterParam | None
    #: the operation's namespace and local name, once a repeated request asked for them
    name: tuple[str | None, str] | None = None

    def may_invoke(self, access: Access) -> bool:
        """:meth:`Access.may_invoke` of the operation, decided for *access* now (RFC 8341
        section 3.4.4); the operation's name read from the element once, not per use."""
        if access.bypass:
            return True
        name = self.name
        if name is None:
            q = etree.QName(self.operation)
            name = self.name = (q.namespace, q.localname)
        return access.may_invoke_named(*name)

    async def answer(self, ctx: RpcContext) -> SerializedElement:
        """The ``<data>`` for *ctx*'s user, from the reply cache."""
        # no state providers here: get-config is configuration only (RFC 6241 section 7.1)
        return await ctx.server.config_replies.get_config(self.source, self.with_defaults,
                                                          self.filter, ctx.access)

    def cached(self, replies: ConfigReplyCache, access: Access) -> SerializedElement | None:
        """The ``<data>`` :meth:`answer` gives, if the reply cache *replies* holds it
        (``None`` else): without an :class:`RpcContext` and a coroutine."""
        return replies.cached(self.source, self.with_defaults, self.filter, access)


def config_query(ctx: RpcContext, op: etree._Element) -> ConfigQuery:
    """The parameters of the ``<get-config>`` *op*, or the rpc-error that refuses them."""
    found = params(op, _GET_CONFIG_PARAMS)  # op's children read once
    source = _datastore(op, "source", found.get(_SOURCE))
    assert isinstance(source, str)
    return ConfigQuery(op, source, with_defaults_param(found), filter_param(ctx, found))


async def get_config(ctx: RpcContext, op: etree._Element) -> SerializedElement:
    return await config_query(ctx, op).answer(ctx)


async def get(ctx: RpcContext, op: etree._Element) -> etree._Element:
    given = params(op, _GET_PARAMS)
    found = filter_param(ctx, given)
    data = ctx.server.datastores.get_config("running", with_defaults_param(given))
    ctx.server.state.merge_into(data, ctx.server.keys_of)
    # what the user may not read goes before the filter sees it (RFC 8341 section 3.4.5),
    # in slices between other sessions' RPCs
    if not ctx.access.bypass:
        from ...datastore.steps import run_cooperatively  # loaded: see nacm.check_write

        data = await run_cooperatively(ctx.access.prune_steps(data))
    return await ctx.server.filters.apply(data, found, ctx.server.keys_of)


# --- changes (RFC 6241 sections 7.2 - 7.4) --------------------------------------------
_EDIT_PARAMS = {_nc("target"), _nc("default-operation"), _nc("test-option"),
                _nc("error-option"), _nc("config"), _nc("url")}


def _choice(op: etree._Element, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = text_param(op, NC_NS, name)
    if value is None:
        return default
    if value not in allowed:
        raise RpcError("invalid-value", f"<{name}> {value!r} is not one of {', '.join(allowed)}",
                       type="protocol", info={"bad-element": name})
    return value


def check_still_writable(ctx: RpcContext, operation: str, *datastores: str) -> None:
    """Before a change that other sessions' RPCs overlapped lands: this session
    has not ended (RFC 6241 section 7.9: a killed session's operations in process
    stop; its locks and changes are gone, section 8.3.5.2), and no other session
    has locked *datastores*."""
    if ctx.session.closing:
        raise RpcError("operation-failed", f"session {ctx.session_id} ended (killed, or its"
                       f" connection lost) while its {operation} was being made; nothing was"
                       " changed", type="application")
    for datastore in datastores:
        check_not_locked_by_other(ctx, datastore)


async def edit_config(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, _EDIT_PARAMS)
    target = datastore_param(op, "target")
    assert isinstance(target, str)
    if child(op, NC_NS, "url") is not None:
        raise RpcError("operation-not-supported", "the :url capability is not supported",
                       type="protocol", info={"bad-element": "url"})
    config = child(op, NC_NS, "config")
    if config is None:
        raise RpcError("missing-element", "<edit-config> needs a <config> element with the changes",
                       type="protocol", info={"bad-element": "config"})
    default_operation = _choice(op, "default-operation", ("merge", "replace", "none"), "merge")
    test_option = _choice(op, "test-option", ("test-then-set", "set", "test-only"),
                          "test-then-set")
    error_option = _choice(op, "error-option",
                           ("stop-on-error", "continue-on-error", "rollback-on-error"),
                           "stop-on-error")
    check_not_locked_by_other(ctx, target)
    try:
        # in slices between other sessions' RPCs; the lock is checked again before the change
        changed = await ctx.server.datastores.edit_config_cooperatively(
            target, config, default_operation=default_operation, test_option=test_option,
            error_option=error_option, authorize=ctx.access.check_write,
            recheck=lambda: check_still_writable(ctx, "edit-config", target),
            invalid=ctx.access.conceal_invalid)
    except (RpcError, RpcErrors) as exc:
        raise ctx.access.conceal(exc) from None
    if target == "candidate" and test_option != "test-only" and changed:
        # an edit that changed nothing leaves candidate unmodified: it does not stand
        # in the way of another session's lock (RFC 6241 sections 7.5 and 8.3.5.1)
        ctx.server.candidate_editors.add(ctx.session_id)


async def copy_config(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("target"), _nc("source"), f"{{{WD_NS}}}with-defaults"})
    target = datastore_param(op, "target")
    source = datastore_param(op, "source", inline_config=True)
    assert isinstance(target, str)
    if target == source:
        raise RpcError("invalid-value", f"<copy-config> source and target are both {target}",
                       type="protocol", info={"bad-element": "target"})
    check_not_locked_by_other(ctx, target)
    # RFC 8341 section 3.2.6: saving running to startup needs only the right to
    # invoke <copy-config>; otherwise what the client may not read of a source
    # datastore is left out of the copy, and each node the copy changes in the
    # target needs write access; validation errors (startup) name no node the user
    # may not read
    save = source == "running" and target == "startup"
    try:
        # the copy, the prune and the write check in slices between other sessions'
        # RPCs; to startup: validated and written in worker threads, in turn with
        # other copies and deletes
        summary = await ctx.server.datastores.copy_config_durably(
            target, source, authorize=None if save else ctx.access.check_write_steps,
            readable=None if save else ctx.access.prune_steps,
            recheck=lambda: check_still_writable(ctx, "copy-config", target))
    except (RpcError, RpcErrors) as exc:
        raise ctx.access.conceal_invalid(exc) from None
    if target == "candidate":
        ctx.server.candidate_editors.add(ctx.session_id)
    elif summary is not None:
        ctx.server.config_changed(ctx.session, target, summary)


async def delete_config(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("target")})
    target = datastore_param(op, "target")
    assert isinstance(target, str)
    if target == "running":
        raise RpcError("operation-not-supported",
                       "the running datastore cannot be deleted (RFC 6241 section 7.4)",
                       type="protocol", info={"bad-element": "running"})
    check_not_locked_by_other(ctx, target)
    # startup.xml removed in a worker thread, while other sessions go on
    summary = await ctx.server.datastores.delete_config_durably(
        target, authorize=ctx.access.check_write,
        recheck=lambda: check_still_writable(ctx, "delete-config", target))
    ctx.server.config_changed(ctx.session, target, summary)


# --- :validate and :candidate (RFC 6241 sections 8.6 and 8.3) ------------------------
async def validate(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("source")})
    try:
        # in a worker thread (an inline <config> converted in slices first): other
        # sessions' RPCs are answered meanwhile
        await ctx.server.datastores.validate_cooperatively(
            datastore_param(op, "source", inline_config=True))
    except (RpcError, RpcErrors) as exc:
        # no node the user may not read is named (RFC 8341 section 3.4.5)
        raise ctx.access.conceal_invalid(exc) from None


async def discard_changes(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, set())
    check_not_locked_by_other(ctx, "candidate")
    # the copy of running in slices between other sessions' RPCs
    await ctx.server.datastores.discard_changes_cooperatively(
        recheck=lambda: check_still_writable(ctx, "discard-changes", "candidate"))
    ctx.server.candidate_editors.clear()


# --- locks (RFC 6241 sections 7.5 and 7.6) --------------------------------------------
async def lock(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("target")})
    target = datastore_param(op, "target")
    assert isinstance(target, str)
    server = ctx.server
    held = server.locks.get(target)
    if held is not None:
        who = "this session" if held.session_id == ctx.session_id else f"session {held.session_id}"
        raise RpcError("lock-denied", f"the {target} datastore is already locked by {who}",
                       type="protocol", info={"session-id": str(held.session_id)})
    if target == "candidate" and server.datastores.candidate_dirty:
        others = sorted(server.candidate_editors - {ctx.session_id})
        if others or not server.candidate_editors:
            holder = others[0] if others else 0
            raise RpcError(
                "lock-denied",
                "the candidate datastore has uncommitted changes"
                + (f" made by session {holder}" if holder else "")
                + "; they must be committed or discarded (discard-changes) first",
                type="protocol", info={"session-id": str(holder)})
    server.locks[target] = DatastoreLock(ctx.session_id, server.clock.now())


async def unlock(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("target")})
    target = datastore_param(op, "target")
    assert isinstance(target, str)
    server = ctx.server
    held = server.locks.get(target)
    if held is None:
        raise RpcError("operation-failed", f"the {target} datastore is not locked",
                       type="protocol")
    if held.session_id != ctx.session_id:
        raise RpcError("lock-denied",
                       f"the {target} datastore is locked by session {held.session_id},"
                       " not by this session", type="protocol",
                       info={"session-id": str(held.session_id)})
    del server.locks[target]
    if target == "candidate" and server.datastores.candidate_dirty:
        # the lock holder's uncommitted changes go with the lock (RFC 6241 section 8.3.5.2)
        server.datastores.discard_changes()
        server.candidate_editors.clear()


# --- sessions (RFC 6241 sections 7.8 and 7.9) -----------------------------------------
async def close_session(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, set())
    ctx.session.closing = True  # the server closes after sending <ok/>


async def kill_session(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("session-id")})
    text = text_param(op, NC_NS, "session-id")
    if text is None:
        raise RpcError("missing-element", "<kill-session> needs the <session-id> to kill",
                       type="protocol", info={"bad-element": "session-id"})
    if not (text.isascii() and text.isdigit()):  # str.isdigit() accepts "²"
        raise RpcError("invalid-value", f"session-id {text!r} is not a session number",
                       type="protocol", info={"bad-element": "session-id"})
    if int(text) == ctx.session_id:
        raise RpcError("invalid-value",
                       "a session cannot kill itself; use <close-session> (RFC 6241 section 7.9)",
                       type="protocol", info={"bad-element": "session-id"})
    ctx.server.kill(int(text), by=ctx.session_id)


OPERATIONS = {
    (NC_NS, "get-config"): get_config,
    (NC_NS, "get"): get,
    (NC_NS, "edit-config"): edit_config,
    (NC_NS, "copy-config"): copy_config,
    (NC_NS, "delete-config"): delete_config,
    (NC_NS, "validate"): validate,
    (NC_NS, "discard-changes"): discard_changes,
    (NC_NS, "lock"): lock,
    (NC_NS, "unlock"): unlock,
    (NC_NS, "close-session"): close_session,
    (NC_NS, "kill-session"): kill_session,
}

