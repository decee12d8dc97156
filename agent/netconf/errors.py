"""``rpc-error`` as defined in RFC 6241 section 4.3 and Appendix A.

Every layer below the RPC dispatcher (datastores, validation, the PKI service)
raises :class:`RpcError`; the dispatcher turns it into the ``<rpc-error>``
element of the reply. Nothing else should build error XML by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"

ErrorType = Literal["transport", "rpc", "protocol", "application"]

#: RFC 6241 Appendix A: every error-tag and the error-types it may be used with.
ERROR_TAGS: dict[str, tuple[str, ...]] = {
    "in-use": ("protocol", "application"),
    "invalid-value": ("protocol", "application"),
    "too-big": ("transport", "rpc", "protocol", "application"),
    "missing-attribute": ("rpc", "protocol", "application"),
    "bad-attribute": ("rpc", "protocol", "application"),
    "unknown-attribute": ("rpc", "protocol", "application"),
    "missing-element": ("protocol", "application"),
    "bad-element": ("protocol", "application"),
    "unknown-element": ("protocol", "application"),
    "unknown-namespace": ("protocol", "application"),
    "access-denied": ("protocol", "application"),
    "lock-denied": ("protocol",),
    "resource-denied": ("transport", "rpc", "protocol", "application"),
    "rollback-failed": ("protocol", "application"),
    "data-exists": ("application",),
    "data-missing": ("application",),
    "operation-not-supported": ("protocol", "application"),
    "operation-failed": ("rpc", "protocol", "application"),
    "partial-operation": ("application",),
    "malformed-message": ("rpc",),
}


@dataclass
class RpcError(Exception):
    """One ``<rpc-error>``; raise it, the RPC layer serialises it.

    *message* is for a person: say what is wrong and what to do about it.
    *info* becomes ``<error-info>`` children, e.g. ``{"session-id": "3"}`` for
    ``lock-denied`` or ``{"bad-element": "expire-time"}``; *info_elements*
    are more children in their own (a YANG module's) namespace.
    """

    tag: str
    message: str
    type: ErrorType = "application"
    severity: Literal["error", "warning"] = "error"
    path: str | None = None
    app_tag: str | None = None
    info: dict[str, str] = field(default_factory=dict)
    #: namespace prefixes used in *path*, declared on ``<error-path>``
    path_namespaces: dict[str, str] = field(default_factory=dict)
    info_elements: list[etree._Element] = field(default_factory=list)

    def __post_init__(self) -> None:
        allowed = ERROR_TAGS.get(self.tag)
        if allowed is None:
            raise ValueError(f"unknown error-tag {self.tag!r}")
        if self.type not in allowed:
            raise ValueError(f"error-tag {self.tag!r} is not used with error-type {self.type!r}")
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.tag}{where}: {self.message}"

    def to_xml(self, parent: etree._Element | None = None) -> etree._Element:
        """The ``<rpc-error>`` element (RFC 6241 section 4.3), made a child of
        *parent* (the ``<rpc-reply>``) if given.

        Build it in place rather than appending it later: lxml drops, from an element
        moved into a tree, each namespace declaration whose URI is declared above it,
        whatever its prefix, and the ``nc`` of an ``error-path`` such as
        ``/nc:rpc/nc:edit-config`` (RFC 8341 section 3.4.4) would be left undeclared
        under the reply's default namespace.
        """
        q = lambda name: f"{{{NC_NS}}}{name}"  # noqa: E731
        err = (etree.Element(q("rpc-error"), nsmap={None: NC_NS}) if parent is None
               else etree.SubElement(parent, q("rpc-error")))
        etree.SubElement(err, q("error-type")).text = self.type
        etree.SubElement(err, q("error-tag")).text = self.tag
        etree.SubElement(err, q("error-severity")).text = self.severity
        if self.app_tag:
            etree.SubElement(err, q("error-app-tag")).text = self.app_tag
        if self.path:
            # the default namespace listed too: the element stays unprefixed
            path_el = etree.SubElement(err, q("error-path"),
                                       nsmap={None: NC_NS, **self.path_namespaces})
            path_el.text = self.path
        msg = etree.SubElement(err, q("error-message"))
        msg.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        msg.text = self.message
        if self.info or self.info_elements:
            info = etree.SubElement(err, q("error-info"))
            for name, value in self.info.items():
                etree.SubElement(info, q(name)).text = value
            info.extend(self.info_elements)
        return err


class RpcErrors(Exception):
    """Several ``rpc-error``s for one RPC (e.g. every invalid node in a commit)."""

    def __init__(self, errors: list[RpcError]):
        if not errors:
            raise ValueError("RpcErrors needs at least one error")
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))
