"""What the commands become: NETCONF operations on the cmp-agent-pki model.

Each class renders the body of one ``<rpc>`` (RFC 6241): configuration
commands edit the candidate datastore (section 7.2, ``merge`` / ``replace`` /
``remove``), ``commit`` is section 8.3.4.1, the requests are the module's
RPCs, ``display`` is a ``<get>`` with a subtree filter (section 6).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from agent import PKI_NS
from agent.netconf.errors import NC_NS

NC_OPERATION = f"{{{NC_NS}}}operation"


def pki_node(name: str, *children: etree._Element, text: str | None = None,
             operation: str | None = None) -> etree._Element:
    """A cmp-agent-pki element; *operation* becomes ``nc:operation`` (RFC 6241 section 7.2)."""
    el = etree.Element(f"{{{PKI_NS}}}{name}", nsmap={None: PKI_NS})
    if text is not None:
        el.text = text
    if operation is not None:
        el.set(NC_OPERATION, operation)
    el.extend(children)
    return el


class Operation:
    """One RPC; :meth:`body` is the XML inside ``<rpc>`` (in the rpc's base namespace)."""

    def body(self) -> str:
        raise NotImplementedError


@dataclass
class EditCandidate(Operation):
    """``<edit-config>`` of the candidate datastore with a ``<pki>`` subtree."""

    pki: etree._Element
    #: the CMP session the edit touches, or None for the whole of /pki (entities, file format)
    session: str | None = None

    def body(self) -> str:
        pki = self.pki
        if any(el.get(NC_OPERATION) for el in pki.iter()):
            pki = _with_nc_prefix(pki)  # declare the nc prefix of nc:operation once, on <pki>
        return ("<edit-config><target><candidate/></target><config>"
                + etree.tostring(pki).decode() + "</config></edit-config>")


def _with_nc_prefix(pki: etree._Element) -> etree._Element:
    root = etree.Element(pki.tag, nsmap={None: PKI_NS, "nc": NC_NS})
    root.text = pki.text
    for name, value in pki.attrib.items():
        root.set(name, value)
    root.extend(etree.fromstring(etree.tostring(child)) for child in pki)
    return root


@dataclass
class GetConfig(Operation):
    """``<get-config>`` of *source* with a subtree filter (RFC 6241 sections 7.1 and 6)."""

    source: str
    selection: etree._Element

    def body(self) -> str:
        return (f"<get-config><source><{self.source}/></source><filter type=\"subtree\">"
                + etree.tostring(self.selection).decode() + "</filter></get-config>")


@dataclass
class Commit(Operation):
    """``<commit/>``: candidate becomes running (RFC 6241 section 8.3.4.1)."""

    def body(self) -> str:
        return "<commit/>"


@dataclass
class LockCandidate(Operation):
    """``<lock>`` of the candidate (RFC 6241 section 7.5): a replayed file edits alone.

    The agent refuses it while another session's changes are uncommitted, and
    drops the holder's uncommitted changes with the lock (section 8.3.5.2).
    """

    def body(self) -> str:
        return "<lock><target><candidate/></target></lock>"


@dataclass
class UnlockCandidate(Operation):
    """``<unlock>`` of the candidate (RFC 6241 section 7.6)."""

    def body(self) -> str:
        return "<unlock><target><candidate/></target></unlock>"


@dataclass
class DiscardChanges(Operation):
    """``<discard-changes/>``: candidate back to running (RFC 6241 section 8.3.4.2)."""

    def body(self) -> str:
        return "<discard-changes/>"


#: request command word -> (RPC name, request type for messages)
REQUESTS = {
    "initial-request": ("cmp-initial-request", "initial request (IR)"),
    "certificate-request": ("cmp-certificate-request", "certificate request (CR)"),
    "keyupdate-request": ("cmp-keyupdate-request", "key update request (KUR)"),
}


@dataclass
class CmpRequest(Operation):
    """``pki cmp initial-request|certificate-request|keyupdate-request session NAME``."""

    kind: str  # a key of REQUESTS
    session: str

    @property
    def rpc_name(self) -> str:
        return REQUESTS[self.kind][0]

    @property
    def what(self) -> str:
        """``initial request (IR)`` ..."""
        return REQUESTS[self.kind][1]

    @property
    def description(self) -> str:
        return f"CMP {self.what} of session {self.session}"

    def body(self) -> str:
        el = pki_node(self.rpc_name, pki_node("session-name", text=self.session))
        return etree.tostring(el).decode()


@dataclass
class ClearStatistics(Operation):
    """``reset pki cmp statistics [ session NAME ]`` -> the clear-statistics RPC."""

    session: str | None = None

    def body(self) -> str:
        children = [pki_node("session-name", text=self.session)] if self.session else []
        return etree.tostring(pki_node("clear-statistics", *children)).decode()


@dataclass
class GetStatistics(Operation):
    """``display pki cmp statistics [ session NAME ]`` -> ``<get>`` of the counters."""

    session: str | None = None

    def body(self) -> str:
        if self.session is not None:
            wanted = pki_node("cmp-session", pki_node("name", text=self.session),
                              pki_node("statistics"))
            pki = pki_node("pki", wanted)
        else:
            pki = pki_node("pki", pki_node("cmp-statistics"),
                           pki_node("cmp-session", pki_node("name"), pki_node("statistics")))
        return ('<get><filter type="subtree">'
                + etree.tostring(pki).decode() + "</filter></get>")
