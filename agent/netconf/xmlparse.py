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

A small message that starts as UTF-8 or ASCII does (``<`` then not a NUL byte)
is parsed first by the thread's push parser (``feed``/``close``): libxml2's
memory input costs a fixed ~12k instructions more, a quarter of a small RPC's
parse. The push parser words some errors otherwise (an undefined entity:
"no element found"), so it only ever answers with a tree: whatever it refuses,
or accepts with anything in its error log, is parsed again as before, and
that parse's tree or error is the answer. lxml hands the two paths the same
libxml2 options and, for such a start, the same (libxml2's own) encoding
detection; ``tests/netconf/test_xmlparse.py`` compares them over a corpus and
thousands of mutated messages.
"""

from __future__ import annotations

import threading

from lxml import etree

#: deepest element nesting accepted; the agent's data model is far shallower
MAX_DEPTH = 64
#: most attributes on one element; NETCONF elements carry a handful
MAX_ATTRIBUTES = 64
#: largest message tried with the push parser first (its saving is a fixed cost)
PUSH_MAX = 16 * 1024


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
    """This thread's parsers (memory input, push) and compiled tree checks (by depth)."""

    def __init__(self) -> None:
        self.parser = _new_parser()
        self.push = _new_parser()
        self.checks: dict[int, tuple[etree.XPath, etree.XPath]] = {}


_this_thread = _PerThread()


def parse_message(data: bytes, max_depth: int = MAX_DEPTH) -> etree._Element:
    """The root element of the XML document *data*.

    Raises :class:`XmlError` for malformed XML, a DOCTYPE (so no entity can
    be declared, and an undeclared one is malformed), nesting deeper than
    *max_depth* or an element with more than :data:`MAX_ATTRIBUTES` attributes.
    """
    # find, not "in": bytes.__contains__ first tries its argument as an integer and
    # formats a TypeError (~1k instructions) before it searches; most messages
    # have no "<!" (nor comment nor CDATA) at all
    if data.find(b"<!") >= 0 and (data.find(b"<!DOCTYPE") >= 0 or data.find(b"<!doctype") >= 0):
        raise XmlError("DOCTYPE declarations are not allowed in NETCONF messages")
    this = _this_thread
    root = None
    if len(data) <= PUSH_MAX and data[:1] == b"<" and data[1:2] != b"\0":
        push = this.push
        try:
            push.feed(data)
            root = push.close()
        except etree.XMLSyntaxError:
            pass  # lxml has ended the document and reset the push context
        except Exception:  # (MemoryError) it may be left mid-document: a new one
            this.push = _new_parser()
        else:
            # lxml's push path does not count an undefined entity as an error
            # (the memory path does): with an entity reference, or an XML
            # declaration (an encoding may write "&" otherwise), a tree with
            # anything in the push parser's log is not trusted
            if (data.find(b"&") >= 0 or data[1:2] == b"?") and push.feed_error_log:
                root = None
    try:
        if root is None:
            root = etree.fromstring(data, this.parser)
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
