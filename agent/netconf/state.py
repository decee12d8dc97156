"""State data (``config false``) for ``<get>``: providers and the built-in ones.

A :data:`StateProvider` returns top-level data elements; :class:`StateRegistry`
merges them into the configuration that ``<get>`` returns (RFC 6241 section
7.7). Built in: ``netconf-state`` of ietf-netconf-monitoring (RFC 6022
section 2) and the YANG library (RFC 8525, with the legacy RFC 7895
``modules-state``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lxml import etree

from agent.clock import yang_datetime

if TYPE_CHECKING:
    from .server import NetconfServer

NCM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"

StateProvider = Callable[[], list[etree._Element]]


class StateRegistry:
    """The state providers of the agent, merged into ``<get>`` output."""

    def __init__(self) -> None:
        self._providers: list[StateProvider] = []

    def add(self, provider: StateProvider) -> None:
        self._providers.append(provider)

    def merge_into(self, data: etree._Element,
                   keys_of: Callable[[etree._Element], Sequence[str]]) -> etree._Element:
        """Add every provider's elements to *data* (a ``<data>`` element).

        Containers and list entries (same key values, per *keys_of*) that are
        already in *data* get the provider's children merged in, so that state
        such as ``/pki/cmp-session[name]/statistics`` lands in its entry.
        """
        for provider in self._providers:
            for element in provider():
                _merge(data, element, keys_of)
        return data


def _merge(target: etree._Element, element: etree._Element,
           keys_of: Callable[[etree._Element], Sequence[str]]) -> None:
    if len(element) == 0:
        target.append(element)  # a leaf or leaf-list value
        return
    candidates = list(target.iterchildren(element.tag))
    if not candidates:
        target.append(element)
        return
    # the keys are looked up where the element lands: the provider's own
    # element has no ancestry in the data tree
    keys = keys_of(candidates[0])
    wanted = tuple(element.findtext(k) for k in keys)
    for existing in candidates:
        if len(existing) and tuple(existing.findtext(k) for k in keys) == wanted:
            for sub in list(element):
                if sub.tag in keys:
                    continue
                _merge(existing, sub, keys_of)
            return
    target.append(element)


def netconf_state(server: "NetconfServer") -> StateProvider:
    """``/ncm:netconf-state`` (RFC 6022 section 2.1)."""

    def provide() -> list[etree._Element]:
        n = lambda name: f"{{{NCM_NS}}}{name}"  # noqa: E731
        # "ncm" is declared for the identityref value of <transport>
        root = etree.Element(n("netconf-state"), nsmap={None: NCM_NS, "ncm": NCM_NS})
        caps = etree.SubElement(root, n("capabilities"))
        for uri in server.capabilities:
            etree.SubElement(caps, n("capability")).text = uri
        datastores = etree.SubElement(root, n("datastores"))
        for name in ("running", "candidate", "startup"):
            ds = etree.SubElement(datastores, n("datastore"))
            etree.SubElement(ds, n("name")).text = name
            lock = server.locks.get(name)
            if lock is not None:
                locks = etree.SubElement(ds, n("locks"))
                global_lock = etree.SubElement(locks, n("global-lock"))
                etree.SubElement(global_lock, n("locked-by-session")).text = str(lock.session_id)
                etree.SubElement(global_lock, n("locked-time")).text = yang_datetime(lock.since)
        root.append(server.model.schema_list_xml())
        sessions = etree.SubElement(root, n("sessions"))
        for record in server.sessions.values():
            s = etree.SubElement(sessions, n("session"))
            etree.SubElement(s, n("session-id")).text = str(record.session_id)
            etree.SubElement(s, n("transport")).text = "ncm:netconf-ssh"
            etree.SubElement(s, n("username")).text = record.user
            etree.SubElement(s, n("source-host")).text = record.peer_host
            etree.SubElement(s, n("login-time")).text = yang_datetime(record.login_time)
            c = record.protocol.counters
            for name, value in (("in-rpcs", c.in_rpcs), ("in-bad-rpcs", c.in_bad_rpcs),
                                ("out-rpc-errors", c.out_rpc_errors),
                                ("out-notifications", c.out_notifications)):
                etree.SubElement(s, n(name)).text = str(value)
        stats = etree.SubElement(root, n("statistics"))
        st = server.statistics
        etree.SubElement(stats, n("netconf-start-time")).text = yang_datetime(st.start_time)
        for name, value in (("in-bad-hellos", st.in_bad_hellos), ("in-sessions", st.in_sessions),
                            ("dropped-sessions", st.dropped_sessions),
                            ("in-rpcs", st.in_rpcs + _sum(server, "in_rpcs")),
                            ("in-bad-rpcs", st.in_bad_rpcs + _sum(server, "in_bad_rpcs")),
                            ("out-rpc-errors", st.out_rpc_errors + _sum(server, "out_rpc_errors")),
                            ("out-notifications",
                             st.out_notifications + _sum(server, "out_notifications"))):
            etree.SubElement(stats, n(name)).text = str(value)
        return [root]

    return provide


def _sum(server: "NetconfServer", counter: str) -> int:
    """A counter summed over the open sessions (closed ones are added to the totals)."""
    return sum(getattr(r.protocol.counters, counter) for r in server.sessions.values())


def yang_library(server: "NetconfServer") -> StateProvider:
    """``/yanglib:yang-library`` (RFC 8525) and the legacy ``modules-state`` (RFC 7895)."""

    def provide() -> list[etree._Element]:
        return [server.model.yang_library_xml(server.model.content_id),
                server.model.modules_state_xml(server.model.content_id)]

    return provide
