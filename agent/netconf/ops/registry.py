"""The RPC dispatch table: (namespace, operation name) -> async handler.

Handlers have the signature ``async def handler(ctx, operation) -> result``
where *operation* is the operation element (the only child of ``<rpc>``) and
*result* is an element or list of elements for ``<rpc-reply>`` (or one
already serialized, :class:`~agent.netconf.replycache.SerializedElement`),
or ``None`` for ``<ok/>`` (RFC 6241 section 4.2). Handlers raise
:class:`~agent.netconf.errors.RpcError` / ``RpcErrors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from ..errors import RpcError
from ..replycache import SerializedElement

if TYPE_CHECKING:
    from ..context import ServerView, SessionView
    from ..nacm import Access

Result = etree._Element | list[etree._Element] | SerializedElement | None


@dataclass(slots=True)  # not frozen: its __init__ would cost every RPC ~4k instructions
class RpcContext:
    """What a handler knows about the call: the session, the server, and what
    the session's user may do (NACM, RFC 8341)."""

    session: "SessionView"
    server: "ServerView"
    access: "Access"
    #: bytes of the request's XML, which bound what it holds (``None``: not known)
    message_size: int | None = None

    @property
    def session_id(self) -> int:
        return self.session.session_id

    @property
    def user(self) -> str:
        return self.session.user


Handler = Callable[[RpcContext, etree._Element], Awaitable[Result]]


class RpcRegistry:
    """Handlers by qualified operation name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, namespace: str, name: str, handler: Handler) -> None:
        """Answer ``<name xmlns=namespace>`` operations with *handler*."""
        self._handlers[f"{{{namespace}}}{name}"] = handler

    def lookup(self, operation: etree._Element) -> Handler:
        """The handler for *operation*; ``operation-not-supported`` if there is none,
        ``bad-element`` if text stands among its parameters."""
        handler = self._handlers.get(operation.tag)
        if handler is not None:
            _check_no_text(operation)
            return handler
        qname = etree.QName(operation)
        known = sorted({etree.QName(t).localname for t in self._handlers
                        if etree.QName(t).namespace == qname.namespace})
        hint = (f"; operations in that namespace: {', '.join(known)}" if known
                else "; no operation is known in that namespace")
        raise RpcError(
            "operation-not-supported",
            f"the agent does not implement the operation <{qname.localname}> in namespace "
            f"{qname.namespace or '(none)'}{hint}",
            type="protocol", info={"bad-element": qname.localname})

    def operations(self) -> list[tuple[str, str]]:
        """(namespace, name) of every registered operation."""
        return [(etree.QName(t).namespace or "", etree.QName(t).localname) for t in self._handlers]


def child(parent: etree._Element, namespace: str, name: str) -> etree._Element | None:
    """The first child ``{namespace}name`` of *parent*."""
    return next(parent.iterchildren(f"{{{namespace}}}{name}"), None)  # no ElementPath parsing


def text_param(parent: etree._Element, namespace: str, name: str) -> str | None:
    """The stripped text of child ``{namespace}name``, ``None`` if absent."""
    el = child(parent, namespace, name)
    return None if el is None else (el.text or "").strip()


def _check_no_text(operation: etree._Element) -> None:
    """Parameters are elements (RFC 6241 section 4.1, RFC 7950 section 7.14):
    text directly inside the operation element is a client error, not input."""
    text = operation.text
    if not text or text.isspace():
        for c in operation:
            text = c.tail
            if text and not text.isspace():
                break
        else:
            return  # no text but white space (the usual: no text at all)
    name = etree.QName(operation).localname
    raise RpcError("bad-element",
                   f"<{name}> takes its parameters as elements; remove the text"
                   f" {text.strip()[:40]!r}",
                   type="protocol", info={"bad-element": name})


def check_params(operation: etree._Element, allowed: Collection[str]) -> None:
    """``unknown-element`` for a child of *operation* that is not in *allowed* (Clark names)."""
    for el in operation:
        if isinstance(el.tag, str) and el.tag not in allowed:
            raise _unknown_param(operation, el)


def params(operation: etree._Element, allowed: Collection[str]) -> dict[str, etree._Element]:
    """:func:`check_params`, and the first child of each tag in one pass (what
    :func:`child` would find for it): lxml builds a new string for every ``.tag``."""
    found: dict[str, etree._Element] = {}
    for el in operation:
        tag = el.tag
        if isinstance(tag, str):
            if tag not in allowed:
                raise _unknown_param(operation, el)
            if tag not in found:
                found[tag] = el
    return found


def _unknown_param(operation: etree._Element, el: etree._Element) -> RpcError:
    name = etree.QName(el).localname
    return RpcError(
        "unknown-element",
        f"<{etree.QName(operation).localname}> has no parameter <{name}>"
        f" in namespace {etree.QName(el).namespace or '(none)'}",
        type="protocol", info={"bad-element": name})
