"""What the operations (:mod:`agent.netconf.ops`) may use of the server and the session.

The operations depend on these small interfaces, never on
:mod:`agent.netconf.server`, which implements them; so the server imports the
operations and not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from lxml import etree

if TYPE_CHECKING:
    import asyncio

    from ..clock import Clock
    from ..datastore import ChangeSummary, Datastores
    from .audit import ConfirmEvent
    from ..model import Model
    from .filternames import CheckedFilters
    from .filterrun import FilterRunner
    from .replycache import ConfigReplyCache
    from .state import StateRegistry


@dataclass
class DatastoreLock:
    """A global lock (RFC 6241 section 7.5)."""

    session_id: int
    since: datetime


@dataclass
class Subscription:
    """A ``<create-subscription>`` of RFC 5277 section 2.1.1 (no replay)."""

    stream: str
    filter: etree._Element | None = None


class PendingConfirmView(Protocol):
    """A confirmed commit awaiting its confirming commit (RFC 6241 section 8.4)."""

    session_id: int
    persist: str | None
    #: its rollback, while it is made
    rollback: "asyncio.Future[None] | None"


class SessionView(Protocol):
    """One session, as an operation sees it."""

    session_id: int
    user: str
    peer_host: str
    subscription: Subscription | None
    closing: bool


class ServerView(Protocol):
    """The server, as an operation sees it."""

    model: "Model"
    datastores: "Datastores"
    clock: "Clock"
    state: "StateRegistry"
    config_replies: "ConfigReplyCache"
    checked_filters: "CheckedFilters"
    filters: "FilterRunner"
    locks: dict[str, DatastoreLock]
    candidate_editors: set[int]
    confirm: PendingConfirmView | None

    def keys_of(self, element: etree._Element) -> Sequence[str]: ...

    def kill(self, session_id: int, by: int) -> None: ...

    async def begin_confirmed_commit(self, session_id: int,
                                     persist: str | None) -> PendingConfirmView: ...

    async def confirm_durably(self, recheck: Callable[[], None]) -> None: ...

    def end_confirmed_commit(self, backup_removed: bool = False) -> None: ...

    def rollback_confirmed_commit(self, reason: str, by: SessionView | None = None,
                                  event: "ConfirmEvent | None" = None
                                  ) -> "asyncio.Future[None] | None": ...

    def schedule_confirm_timeout(self, seconds: int) -> None: ...

    def config_changed(self, session: SessionView | None, datastore: str,
                       summary: "ChangeSummary") -> None: ...

    def confirmed_commit_event(self, session: SessionView | None, event: "ConfirmEvent",
                               timeout: int | None = None) -> None: ...
