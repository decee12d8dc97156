"""``<commit>`` and ``<cancel-commit>`` (RFC 6241 sections 8.3.4 and 8.4).

A confirmed commit (``<confirmed/>``) applies the candidate to running at
once and rolls it back unless a confirming commit arrives within
``confirm-timeout`` seconds (default 600). Without ``<persist>``, the
follow-up and confirming commits must come from the same session, and the
end of that session rolls back; with ``<persist>``, any session confirms or
cancels by giving the same value as ``<persist-id>`` (section 8.4.1).

Access control (RFC 8341 section 3.2.8): the user who commits needs write
access to each node of running that the commit creates, changes or deletes,
whoever edited it in the shared candidate (RFC 6241 section 8.3), as on a
router where one may not commit what one may not configure; a refused commit
changes neither running nor candidate. Validation errors name no node the
user may not read.
"""

from __future__ import annotations

import asyncio
import logging

from lxml import etree

from ..context import PendingConfirmView
from ..errors import NC_NS, RpcError, RpcErrors
from .base import check_still_writable
from .registry import RpcContext, check_params, child, text_param

log = logging.getLogger("agent.netconf")

DEFAULT_CONFIRM_TIMEOUT = 600
_MAX_CONFIRM_TIMEOUT = 4294967295  # uint32 (ietf-netconf)


def _nc(name: str) -> str:
    return f"{{{NC_NS}}}{name}"


def _confirm_timeout(op: etree._Element) -> int:
    text = text_param(op, NC_NS, "confirm-timeout")
    if text is None:
        return DEFAULT_CONFIRM_TIMEOUT
    if not text.isdigit() or not 1 <= int(text) <= _MAX_CONFIRM_TIMEOUT:
        raise RpcError("invalid-value",
                       f"confirm-timeout {text!r} must be a number of seconds from 1 to"
                       f" {_MAX_CONFIRM_TIMEOUT}", type="protocol",
                       info={"bad-element": "confirm-timeout"})
    return int(text)


def _check_not_rolling_back(ctx: RpcContext) -> None:
    """RFC 6241 section 8.4: a confirmed commit whose rollback began (confirm-timeout,
    cancel-commit, the end of its session) is no longer confirmed, extended or
    replaced by a commit; it stays pending until running is restored."""
    pending = ctx.server.confirm
    if pending is not None and pending.rollback is not None:
        raise RpcError("in-use", "the pending confirmed commit is being rolled back; nothing "
                       "was committed, commit again once it is", type="protocol")


def _check_pending_owner(ctx: RpcContext, persist_id: str | None, what: str) -> None:
    """RFC 6241 section 8.4.1: who may follow up, confirm or cancel a confirmed commit."""
    pending = ctx.server.confirm
    assert pending is not None
    if pending.persist is not None:
        if persist_id != pending.persist:
            raise RpcError(
                "invalid-value",
                f"a persistent confirmed commit is pending; {what} needs the <persist-id>"
                " given as <persist> in that commit" if persist_id is None else
                f"<persist-id> does not match the pending confirmed commit; {what} refused",
                type="protocol", info={"bad-element": "persist-id"})
    else:
        if persist_id is not None:
            raise RpcError("invalid-value",
                           "the pending confirmed commit was not given <persist>; omit <persist-id>",
                           type="protocol", info={"bad-element": "persist-id"})
        if pending.session_id != ctx.session_id:
            raise RpcError(
                "in-use",
                f"a confirmed commit of session {pending.session_id} is pending; only that"
                f" session can {what} it (or use <persist> for a cross-session confirm)",
                type="protocol")


async def commit(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("confirmed"), _nc("confirm-timeout"), _nc("persist"),
                      _nc("persist-id")})
    server = ctx.server
    confirmed = child(op, NC_NS, "confirmed") is not None
    timeout = _confirm_timeout(op)
    persist = text_param(op, NC_NS, "persist")
    persist_id = text_param(op, NC_NS, "persist-id")
    if not confirmed and (persist is not None or child(op, NC_NS, "confirm-timeout") is not None):
        raise RpcError("bad-element", "<persist> and <confirm-timeout> need <confirmed/>",
                       type="protocol", info={"bad-element": "persist" if persist is not None
                                              else "confirm-timeout"})

    def check() -> None:
        check_still_writable(ctx, "commit", "running", "candidate")
        _check_not_rolling_back(ctx)
        if server.confirm is not None:
            _check_pending_owner(ctx, persist_id, "confirm")
        elif persist_id is not None:
            raise RpcError("invalid-value", "no confirmed commit is pending; omit <persist-id>",
                           type="protocol", info={"bad-element": "persist-id"})

    check()
    # the write check of what the commit changes in running (none for a user whom
    # NACM does not restrict)
    authorize = None if ctx.access.bypass else ctx.access.check_commit_steps
    try:
        # validation, the copy of candidate and the write check, in slices
        # between other sessions' RPCs
        await server.datastores.prepare_commit(authorize)
    except (RpcError, RpcErrors) as exc:
        raise ctx.access.conceal_invalid(exc) from None
    try:
        check()  # again: other sessions' RPCs ran meanwhile (the locks once more below)
    except RpcError:
        server.datastores.release_prepared()
        raise
    pending = server.confirm
    #: the confirmed commit this commit starts (under the write lock, in begin), if it does
    started: PendingConfirmView | None = None

    async def begin() -> None:
        # under the write lock: running is snapshot as this commit finds it (the
        # backup file written, durable, before running.xml: other sessions go on)
        nonlocal started
        if server.confirm is not pending:  # while this commit waited for another's write
            raise RpcError("in-use", "a confirmed commit began or ended while this commit "
                           "waited for another commit's write; nothing was committed, commit "
                           "again", type="protocol")
        _check_not_rolling_back(ctx)
        if confirmed and pending is None:
            started = await server.begin_confirmed_commit(ctx.session_id, persist)

    def still_current() -> None:
        check_still_writable(ctx, "commit", "running", "candidate")
        _check_not_rolling_back(ctx)
        if server.confirm is not (pending if started is None else started):
            # RFC 6241 section 8.4: the confirmed commit this one starts, extends or
            # confirms was rolled back meanwhile (session end, timeout, cancel-commit)
            raise RpcError("in-use", "the confirmed commit was rolled back (or another began) "
                           "while this commit was being written; nothing was committed, "
                           "commit again", type="protocol")

    async def confirm() -> None:
        # RFC 6241 section 8.4: the confirming commit, running.xml durable: the backup
        # removed durably (a restart no longer rolls back) before the reply says ok
        await server.confirm_durably(still_current)

    try:
        # running.xml written in a worker thread: other sessions' RPCs run meanwhile
        summary = await server.datastores.commit_durably(
            authorize, recheck=still_current, begin=begin,
            end=confirm if pending is not None and not confirmed else None)
    except BaseException as exc:
        # the confirmed commit this one began is not made; if its session ended
        # meanwhile, its rollback, under way, ends it (candidate restored too)
        if started is not None and server.confirm is started and started.rollback is None:
            server.end_confirmed_commit()
        if isinstance(exc, (RpcError, RpcErrors)):
            raise ctx.access.conceal_invalid(exc) from None
        raise
    if not server.datastores.candidate_dirty:  # else edited meanwhile: its editors stay
        server.candidate_editors.clear()
    server.config_changed(ctx.session, "running", summary)
    if confirmed:
        if pending is not None and persist is not None:
            pending.persist = persist
        server.schedule_confirm_timeout(timeout)
        server.confirmed_commit_event(ctx.session, "start" if pending is None else "extend",
                                      timeout)
        log.info("session %d (%s) confirmed commit, timeout %d s: %s", ctx.session_id, ctx.user,
                 timeout, summary.describe())
    elif pending is not None:
        server.end_confirmed_commit(backup_removed=True)
        server.confirmed_commit_event(ctx.session, "complete")
        log.info("session %d (%s) confirmed the pending commit: %s", ctx.session_id, ctx.user,
                 summary.describe())
    else:
        log.info("session %d (%s) commit: %s", ctx.session_id, ctx.user, summary.describe())


async def cancel_commit(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_nc("persist-id")})
    if ctx.server.confirm is None:
        raise RpcError("operation-failed", "no confirmed commit is pending; nothing to cancel",
                       type="protocol")
    _check_pending_owner(ctx, text_param(op, NC_NS, "persist-id"), "cancel")
    # in slices and a worker thread, other sessions' RPCs answered meanwhile; answered
    # once running is restored (or the rollback already under way, e.g. the
    # confirm-timeout's, is over); a failed write is its rpc-error
    rollback = ctx.server.rollback_confirmed_commit(
        f"cancel-commit by session {ctx.session_id}", by=ctx.session, event="cancel")
    if rollback is not None:
        await asyncio.shield(rollback)  # this session's end must not stop the rollback


OPERATIONS = {
    (NC_NS, "commit"): commit,
    (NC_NS, "cancel-commit"): cancel_commit,
}
