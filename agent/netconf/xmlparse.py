"""Hardened XML parsing of NETCONF messages.

Everything a client sends goes through :func:`parse_message`. The parser
never loads or validates a DTD, never expands entities, never touches the
network, refuses documents with a ``<!DOCTYPE>`` at all (RFC 6241 has no use
for them; they are the vector of "billion laughs" and XXE attacks), keeps
libxml2's protection against huge text nodes, and bounds the element depth.
"""

from __future__ import annotations

from lxml import etree

#: deepest element nesting accepted; the agent's data model is far shallower
MAX_DEPTH = 64


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


_PARSER = _new_parser()


def parse_message(data: bytes, max_depth: int = MAX_DEPTH) -> etree._Element:
    """The root element of the XML document *data*.

    Raises :class:`XmlError` for malformed XML, a DOCTYPE (so no entity can
    be declared, and an undeclared one is malformed) or nesting deeper than
    *max_depth*.
    """
    if b"<!DOCTYPE" in data or b"<!doctype" in data:
        raise XmlError("DOCTYPE declarations are not allowed in NETCONF messages")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    except ValueError as exc:  # e.g. unicode strings with an encoding declaration
        raise XmlError(f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise XmlError("DOCTYPE declarations are not allowed in NETCONF messages")
    if len(data) > 6 * max_depth:  # each level takes at least 7 bytes: "<a>" "</a>"
        _check_tree(root, max_depth)
    return root


_too_deep: dict[int, etree.XPath] = {}


def _check_tree(root: etree._Element, max_depth: int) -> None:
    """Refuse nesting deeper than *max_depth* elements (evaluated in libxml2, not Python)."""
    xpath = _too_deep.get(max_depth)
    if xpath is None:
        # an element exists max_depth levels below the root: the depth is max_depth + 1
        xpath = _too_deep[max_depth] = etree.XPath("boolean(" + "/".join(["*"] * max_depth) + ")")
    if xpath(root):
        raise XmlError(f"XML nested deeper than {max_depth} elements")
