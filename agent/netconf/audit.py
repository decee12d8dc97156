"""The NETCONF base notifications of RFC 6470, the agent's audit trail.

Built here, sent by the server to subscribers of the ``NETCONF`` stream:
``netconf-session-start`` and ``netconf-session-end`` (sections 2.4, 2.5),
``netconf-config-change`` with the user and the instance paths changed
(section 2.1), and ``netconf-confirmed-commit`` (section 2.6). Paths name
list keys, never leaf values, so no secret is ever sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from lxml import etree

if TYPE_CHECKING:
    from ..datastore import ChangeSummary
    from .context import SessionView

NCN_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"

Termination = Literal["closed", "killed", "dropped", "timeout", "bad-hello", "other"]
ConfirmEvent = Literal["start", "cancel", "timeout", "extend", "complete"]


def _n(name: str) -> str:
    return f"{{{NCN_NS}}}{name}"


def _event(name: str) -> etree._Element:
    return etree.Element(_n(name), nsmap={None: NCN_NS})


def _session_parms(parent: etree._Element, session: "SessionView") -> None:
    """``common-session-parms``: user, session-id, source-host (an IP address only)."""
    etree.SubElement(parent, _n("username")).text = session.user
    etree.SubElement(parent, _n("session-id")).text = str(session.session_id)
    try:
        etree.SubElement(parent, _n("source-host")).text = str(
            ipaddress.ip_address(session.peer_host))
    except ValueError:
        pass  # not an IP address (e.g. an in-process session): the leaf is optional


def _changed_by(parent: etree._Element, session: "SessionView | None") -> None:
    changed_by = etree.SubElement(parent, _n("changed-by"))
    if session is None:
        etree.SubElement(changed_by, _n("server"))
    else:
        _session_parms(changed_by, session)


def session_start(session: "SessionView") -> etree._Element:
    event = _event("netconf-session-start")
    _session_parms(event, session)
    return event


def session_end(session: "SessionView", reason: Termination,
                killed_by: int | None = None) -> etree._Element:
    event = _event("netconf-session-end")
    _session_parms(event, session)
    if reason == "killed" and killed_by is not None:
        etree.SubElement(event, _n("killed-by")).text = str(killed_by)
    etree.SubElement(event, _n("termination-reason")).text = reason
    return event


_OPERATIONS = (("created", "create"), ("modified", "replace"), ("deleted", "delete"))


def config_change(session: "SessionView | None", datastore: str, summary: "ChangeSummary",
                  namespaces: Callable[[str], dict[str, str]]) -> etree._Element:
    """One ``edit`` per created, modified and deleted node; *namespaces* gives the
    prefix declarations a path needs (its ``target`` is an instance-identifier)."""
    event = _event("netconf-config-change")
    _changed_by(event, session)
    etree.SubElement(event, _n("datastore")).text = datastore
    for attr, operation in _OPERATIONS:
        for path in getattr(summary, attr):
            edit = etree.SubElement(event, _n("edit"))
            etree.SubElement(edit, _n("target"), nsmap=namespaces(path)).text = path
            etree.SubElement(edit, _n("operation")).text = operation
    return event


def confirmed_commit(session: "SessionView | None", event_name: ConfirmEvent,
                     timeout: int | None = None) -> etree._Element:
    """The session's parameters are left out for ``timeout`` (RFC 6470 section 2.6)."""
    event = _event("netconf-confirmed-commit")
    if session is not None and event_name != "timeout":
        _session_parms(event, session)
    etree.SubElement(event, _n("confirm-event")).text = event_name
    if timeout is not None and event_name in ("start", "extend"):
        etree.SubElement(event, _n("timeout")).text = str(timeout)
    return event
