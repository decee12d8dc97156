"""Serialized ``<get-config>`` replies, kept per datastore version.

A ``<get-config>`` (RFC 6241 section 7.1) answer depends only on the
datastore's content, the with-defaults mode (RFC 6243 section 4.5.1) and the
filter (RFC 6241 section 6, section 8.9 for XPath). Clients that poll the same
view get its bytes again instead of a copy of the tree being filtered and
serialized on every request. Any change of a datastore changes its version
(:meth:`agent.datastore.Datastores.version`), so a stale entry is never
served. Users who may read different parts of it (NACM, RFC 8341 section
3.4.5) get different entries. ``<get>`` is never cached: it includes state data.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from .errors import NC_NS
from .filters import FilterParam, KeysOf

if TYPE_CHECKING:
    from ..datastore import Datastores
    from .filterrun import FilterRunner
    from .nacm import Access

_RPC_REPLY = f"{{{NC_NS}}}rpc-reply"


@dataclass(frozen=True)
class SerializedElement:
    """One reply element already serialized, as it appears inside ``<rpc-reply>``."""

    xml: bytes


def serialize_in_reply(element: etree._Element) -> SerializedElement:
    """*element* serialized exactly as :meth:`Session.reply` would write it
    inside ``<rpc-reply xmlns="...netconf:base:1.0">`` (no redundant
    declaration of the NETCONF namespace)."""
    root = etree.Element(_RPC_REPLY, nsmap={None: NC_NS})
    root.append(element)
    text = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    start = text.index(b">") + 1           # end of the <rpc-reply ...> start tag
    end = text.rindex(b"</")              # start of </rpc-reply>
    return SerializedElement(text[start:end])


class ConfigReplyCache:
    """``<get-config>`` answers by (datastore, version, with-defaults, filter)."""

    def __init__(self, datastores: "Datastores", keys_of: KeysOf, filters: "FilterRunner", *,
                 max_entries: int = 32, max_bytes: int = 32 * 1024 * 1024):
        self._datastores = datastores
        self._keys_of = keys_of
        self._filters = filters
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple, tuple[int, SerializedElement]] = OrderedDict()
        self._bytes = 0

    async def get_config(self, source: str, with_defaults: str,
                         filter_param: FilterParam | None, access: "Access"
                         ) -> SerializedElement:
        """The ``<data>`` element of the reply for a user with *access*, serialized."""
        found = self.cached(source, with_defaults, filter_param, access)
        if found is not None:
            return found
        version = self._datastores.version(source)
        key = _key(source, with_defaults, filter_param, access)
        # read-only; a change meanwhile makes a new view, this one stays as it is
        view = self._datastores.config_view(source, with_defaults)
        shared = access.bypass
        if not shared:  # the user's own copy, without what they may not read
            view = await pruned_copy(view, access)
        selected = await self._filters.apply(view, filter_param, self._keys_of)
        if selected is view and shared:  # no filter: serialize a copy, the view stays as it is
            selected = copy.deepcopy(view)
        body = serialize_in_reply(selected)
        self._store(key, version, body)
        return body

    def cached(self, source: str, with_defaults: str, filter_param: FilterParam | None,
               access: "Access") -> SerializedElement | None:
        """What :meth:`get_config` gives if it is kept for the datastore's current
        version, else ``None``; without a coroutine (a repeated request's fast path)."""
        key = _key(source, with_defaults, filter_param, access)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == self._datastores.version(source):
            self._entries.move_to_end(key)
            return hit[1]
        return None

    def _store(self, key: tuple, version: int, body: SerializedElement) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1].xml)
        if len(body.xml) > self._max_bytes // 4:
            return  # a very large view is not worth keeping
        self._entries[key] = (version, body)
        self._bytes += len(body.xml)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= len(dropped.xml)


def _key(source: str, with_defaults: str, filter_param: FilterParam | None,
         access: "Access") -> tuple:
    """Where the answer for these parameters and this user's view is kept."""
    return (source, with_defaults, None if filter_param is None else filter_param.key,
            access.view_key)


async def pruned_copy(view: etree._Element, access: "Access") -> etree._Element:
    """A copy of *view* without what the user of *access* may not read (RFC 8341
    section 3.4.5), made in slices between other sessions' RPCs: with many NACM
    rules, pruning 10,000 list entries takes seconds."""
    # imported here, as nacm does: agent.datastore loads the model
    from ..datastore.steps import Steps, run_cooperatively
    from ..datastore.store import copy_steps

    def steps() -> Steps[etree._Element]:
        return (yield from access.prune_steps((yield from copy_steps(view))))

    return await run_cooperatively(steps())
