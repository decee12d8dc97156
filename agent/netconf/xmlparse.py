"""Hardened XML parsing of NETCONF messages.

Everything a client sends goes through :func:`parse_message`. The parser
never loads or validates a DTD, never expands entities, never touches the
network, refuses documents with a ``<!DOCTYPE>`` at all (RFC 6241 has no use
for them; they are the vector of "billion laughs" and XXE attacks), keeps
libxml2's protection against huge text nodes, and bounds the element depth
and the number of attributes of an element (lxml reads an element's
attributes in quadratic time: 100,000 attributes on an ``<rpc>``, copied to
its reply as RFC 6241 section 4.2 asks, stalled the agent for minutes).

lxml parsers and XPath evaluators are not to be shared between threads (each
holds a lock: the event loop would wait for a worker's long parse), so every
thread gets its own, made by :func:`_new_parser`, with the same settings: large
messages are parsed in worker threads (the parse releases the GIL).
"""

from __future__ import annotations

import threading

from lxml import etree

#: deepest element nesting accepted; the agent's data model is far shallower
MAX_DEPTH = 64
#: most attributes on one element; NETCONF elements carry a handful
MAX_ATTRIBUTES = 64


class XmlError(ValueError):
    """The message is not acceptable XML; the text says why, for the rpc-error."""


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=True,
        collect_ids=False,
    )


class _PerThread(threading.local):
    """This thread's parser and compiled tree checks (by depth)."""

    def __init__(self) -> None:
        self.parser = _new_parser()
        self.checks: dict[int, tuple[etree.XPath, etree.XPath]] = {}


_this_thread = _PerThread()


def parse_message(data: bytes, max_depth: int = MAX_DEPTH) -> etree._Element:
    """The root element of the XML document *data*.

    Raises :class:`XmlError` for malformed XML, a DOCTYPE (so no entity can
    be declared, and an undeclared one is malformed), nesting deeper than
    *max_depth* or an element with more than :data:`MAX_ATTRIBUTES` attributes.
    """
    if b"<!DOCTYPE" in data or b"<!doctype" in data:
        raise XmlError("DOCTYPE declarations are not allowed in NETCONF messages")
    try:
        root = etree.fromstring(data, _this_thread.parser)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    except ValueError as exc:  # e.g. unicode strings with an encoding declaration
        raise XmlError(f"not well-formed XML: {exc}") from None
    # a document that starts with "<" and then neither "?" nor a NUL byte is UTF-8
    # (XML 1.0 appendix F): the search above saw its DOCTYPE, if it has one. Other
    # bytes libxml2 may read otherwise (an XML declaration naming an encoding, a byte
    # order mark, UTF-16, UTF-32), and the tree is asked.
    utf8 = data[:1] == b"<" and data[1:2] not in (b"?", b"\0")
    if not utf8 and root.getroottree().docinfo.doctype:
        raise XmlError("DOCTYPE declarations are not allowed in NETCONF messages")
    # each level takes at least 7 bytes ("<a>" "</a>"), each attribute 5 (' a=""')
    if len(data) > min(6 * max_depth, 5 * MAX_ATTRIBUTES):
        _check_tree(root, max_depth)
    return root


_TOO_MANY_ATTRIBUTES = f"//*[count(@*) > {MAX_ATTRIBUTES}]"


def _check_tree(root: etree._Element, max_depth: int) -> None:
    """Refuse nesting deeper than *max_depth* elements and elements with too many
    attributes (one pass in libxml2, not Python, for the usual message)."""
    checks = _this_thread.checks
    found = checks.get(max_depth)
    if found is None:
        # an element exists max_depth levels below the root: the depth is max_depth + 1
        too_deep = "/".join(["*"] * max_depth)
        found = checks[max_depth] = (
            etree.XPath(f"boolean({too_deep} | {_TOO_MANY_ATTRIBUTES})"),
            etree.XPath(f"boolean({too_deep})"))
    either, too_deep_xp = found
    if not either(root):
        return
    if too_deep_xp(root):
        raise XmlError(f"XML nested deeper than {max_depth} elements")
    raise XmlError(f"an element has more than {MAX_ATTRIBUTES} attributes")
