"""Subtree filtering (RFC 6241 section 6) and XPath filtering (RFC 6241 section 8.9).

Both work on lxml trees: *data* is a ``<data>`` element whose children are
top-level data nodes; the result is a new ``<data>`` element with only the
selected parts. The input tree is never modified.

What a client's filter may cost is bounded: a subtree filter has at most
:data:`MAX_FILTER_NODES` elements and visits at most
:data:`MAX_SUBTREE_VISITS` (data node, filter node) pairs; XPath filters get
no EXSLT extension functions (a backtracking ``re:test`` stalled the agent).
:mod:`agent.netconf.filterrun` runs both off the event loop, XPath within a
time budget. Past a bound the request gets ``operation-failed``, "filter too
expensive" (``too-big`` for an oversized filter).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Union

from lxml import etree

from .errors import NC_NS, RpcError

#: returns the Clark names of the key leaves of a list entry element, () otherwise
KeysOf = Callable[[etree._Element], Sequence[str]]

#: most elements in a subtree filter (a filter with 1,000,000 siblings took 694 MB)
MAX_FILTER_NODES = 10_000
#: most (data node, filter node) comparisons of one subtree filter evaluation
MAX_SUBTREE_VISITS = 2_000_000
#: namespaces of the EXSLT extension functions, which XPath filters do not get
EXSLT_NS_PREFIX = "http://exslt.org/"

_ALL = True  # the whole subtree is selected
# a selection: the whole subtree, or the selected children by position
Selection = Union[bool, dict[int, "Selection"]]


def _no_keys(_: etree._Element) -> Sequence[str]:
    return ()


@dataclass(slots=True)  # not frozen: its __init__ would cost every RPC ~4k instructions
class FilterParam:
    """The ``<filter>`` of get or get-config, with what is worked out from it once
    per request: *select*, the expression of an XPath filter (``None`` for a
    subtree filter), and *key*, what its meaning depends on, for the reply cache
    and the name check's remembered verdicts. That is its XML as lxml serializes
    an element inside a document: with every namespace declaration in scope,
    those of its ancestors too, which the prefixes of an XPath ``select`` may use."""

    element: etree._Element
    key: bytes
    select: str | None

    @classmethod
    def of(cls, element: etree._Element, message_size: int | None = None) -> "FilterParam":
        """*element* with its key; its type is checked, and a subtree filter's size,
        before it is serialized (an oversized one is refused without that cost).
        *message_size*, the bytes of the request's XML if known, may show that no
        filter it holds can be too big (:func:`may_be_too_big`)."""
        select = xpath_select(element, message_size)
        return cls(element, etree.tostring(element, with_tail=False), select)


def apply_filter(data: etree._Element, filter_el: etree._Element | None,
                 keys_of: KeysOf = _no_keys) -> etree._Element:
    """*data* reduced by the ``<filter>`` element of get/get-config (``None``: no filter).

    Evaluated here and now; the server uses :class:`agent.netconf.filterrun.FilterRunner`.
    """
    if filter_el is None:
        return data
    select = xpath_select(filter_el)
    if select is None:
        return subtree_filter(data, filter_el)
    return xpath_filter(data, select, filter_namespaces(filter_el), keys_of)


def xpath_select(filter_el: etree._Element, message_size: int | None = None) -> str | None:
    """The expression of an XPath filter, ``None`` for a subtree filter (bounded in size;
    *message_size* as for :meth:`FilterParam.of`)."""
    kind = filter_el.get("type") or filter_el.get(f"{{{NC_NS}}}type") or "subtree"
    if kind == "subtree":
        if message_size is None or may_be_too_big(message_size):
            check_filter_size(filter_el)
        return None
    if kind == "xpath":
        select = filter_el.get("select") or filter_el.get(f"{{{NC_NS}}}select")
        if not select:
            raise RpcError("missing-attribute",
                           "an XPath filter needs a select attribute with the expression",
                           type="protocol", info={"bad-attribute": "select",
                                                  "bad-element": "filter"})
        return select
    raise RpcError("bad-attribute", f"unknown filter type {kind!r}; use 'subtree' or 'xpath'",
                   type="protocol", info={"bad-attribute": "type", "bad-element": "filter"})


def too_expensive(why: str) -> RpcError:
    """The answer to a filter that exceeded its budget."""
    return RpcError("operation-failed", f"filter too expensive: {why}; make it more specific",
                    type="application", info={"bad-element": "filter"})


_count_descendants = etree.XPath("count(descendant::*)")
#: every element takes at least 4 characters ("<a/>"), and a character at least a byte
_MIN_ELEMENT_BYTES = 4


def may_be_too_big(message_size: int) -> bool:
    """Whether a message of *message_size* bytes can hold a subtree filter of more than
    :data:`MAX_FILTER_NODES` elements below the ``<filter>``: it has at least one
    element more (the ``<filter>``) and each element has its own start or empty-element
    tag in the message's bytes (no DOCTYPE is accepted, so no entity adds one)."""
    return message_size >= _MIN_ELEMENT_BYTES * (MAX_FILTER_NODES + 2)


def check_filter_size(filter_el: etree._Element) -> None:
    """Refuse a subtree filter of more than :data:`MAX_FILTER_NODES` elements (counted in libxml2)."""
    size = int(_count_descendants(filter_el))
    if size > MAX_FILTER_NODES:
        raise RpcError("too-big", f"the subtree filter has {size} elements;"
                       f" at most {MAX_FILTER_NODES} are accepted",
                       type="application", info={"bad-element": "filter"})


# --- RFC 6241 section 6: subtree filtering -------------------------------------------
def subtree_filter(data: etree._Element, filter_el: etree._Element) -> etree._Element:
    """Apply the subtree filter whose top-level filter nodes are *filter_el*'s children.

    An empty filter selects nothing (RFC 6241 section 6.4.2).
    """
    # imported here: the XPath worker process (agent.netconf.filterrun) loads this
    # module and has no use for the datastores' package
    from agent.datastore.steps import run_steps
    return materialize(data, run_steps(subtree_selection(data, filter_el)))


def subtree_selection(data: etree._Element, filter_el: etree._Element,
                      max_visits: int = MAX_SUBTREE_VISITS
                      ) -> Generator[None, None, dict[int, Selection]]:
    """What of *data*'s children the subtree filter selects (reads the trees only),
    in steps: a generator that pauses after each data node it compares and returns
    the selection (run it with :mod:`agent.datastore.steps`: on the event loop in
    slices, or at once).

    Raises ``operation-failed`` after *max_visits* comparisons of a data
    node with a filter node.
    """
    fnodes = [_compile(f) for f in filter_el if isinstance(f.tag, str)]
    if not fnodes:
        return {}
    selection = yield from _Walk(max_visits).children(data, [], fnodes)
    return selection if isinstance(selection, dict) else {}


def materialize(data: etree._Element, selection: dict[int, Selection]) -> etree._Element:
    """A new ``<data>`` element with the *selection* of *data*'s children."""
    out = etree.Element(data.tag, nsmap=data.nsmap)
    if selection:
        _materialize_children(data, selection, out)
    return out


@dataclass
class _FilterNode:
    """One filter element, compiled once per request (RFC 6241 section 6.2)."""

    tag: str  # Clark name, or the bare local name for a namespace wildcard
    attrs: list[tuple[str, str]]
    content: str | None  # the value of a content match node (section 6.2.5)
    content_children: list["_FilterNode"] = field(default_factory=list)
    other_children: list["_FilterNode"] = field(default_factory=list)

    def matches(self, data_el: etree._Element) -> bool:
        """Namespace, name and attribute match (sections 6.2.1 and 6.2.2).

        A filter node without namespace (``xmlns=""``) matches any namespace.
        """
        dtag = data_el.tag
        if self.tag[0] == "{":
            if self.tag != dtag:
                return False
        elif dtag != self.tag and not dtag.endswith("}" + self.tag):
            return False
        return all(data_el.get(name) == value for name, value in self.attrs)


def _compile(fel: etree._Element) -> _FilterNode:
    children = [c for c in fel if isinstance(c.tag, str)]
    text = (fel.text or "").strip()
    node = _FilterNode(
        tag=fel.tag,
        attrs=[(k, v) for k, v in fel.items() if not k.startswith(_NC_ATTR)],
        content=text if not children and text else None)
    for c in children:
        compiled = _compile(c)
        (node.content_children if compiled.content is not None
         else node.other_children).append(compiled)
    return node


_NC_ATTR = f"{{{NC_NS}}}"


def _content_hits(data_el: etree._Element, fnode: _FilterNode) -> list[etree._Element]:
    """Children of *data_el* that satisfy the content match node *fnode*."""
    if fnode.tag[0] == "{":
        candidates = data_el.iterfind(fnode.tag)  # in libxml2, not Python
    else:
        candidates = (c for c in data_el if isinstance(c.tag, str) and fnode.matches(c))
    return [c for c in candidates
            if fnode.matches(c) and (c.text or "").strip() == fnode.content]


#: data nodes passed over (matching no filter node's tag) between two pauses of a walk
_PASSED_PER_PAUSE = 256


class _Walk:
    """One evaluation of a subtree filter, counting its comparisons against a budget."""

    def __init__(self, max_visits: int):
        self.left = max_visits

    def _spend(self, visits: int) -> None:
        self.left -= visits
        if self.left < 0:
            raise too_expensive("it compares too many data nodes with filter nodes")

    def select(self, data_el: etree._Element, fnode: _FilterNode
               ) -> Generator[None, None, Selection | None]:
        """What of *data_el* the filter node *fnode* (already matched by name) selects."""
        if not fnode.content_children and not fnode.other_children:
            return _ALL  # selection node (RFC 6241 section 6.2.4)
        return (yield from self.children(data_el, fnode.content_children, fnode.other_children))

    def children(self, data_el: etree._Element, content: list[_FilterNode],
                 others: list[_FilterNode]) -> Generator[None, None, Selection | None]:
        """Containment node semantics (RFC 6241 sections 6.2.3 and 6.2.5)."""
        hits: list[etree._Element] = []
        for f in content:
            self._spend(len(data_el))
            found = _content_hits(data_el, f)
            if not found:
                return None  # a content match fails: the parent is not selected
            hits += found
        if not others:
            return _ALL  # only content match nodes: all siblings are selected
        selected: dict[int, Selection] = {}
        hit_ids = {id(h) for h in hits}
        found_other = False
        # filter nodes that name a namespace match only data nodes of their tags: the
        # others (e.g. a long list beside the leaf asked for) are passed over at once
        tags = {f.tag for f in others}
        if any(t[0] != "{" for t in tags):
            tags = None
        self._spend(len(data_el) * len(others))
        for i, c in enumerate(data_el.iterchildren(etree.Element)):
            if tags is not None and c.tag not in tags and id(c) not in hit_ids:
                if not i % _PASSED_PER_PAUSE:
                    yield
                continue
            yield  # a pause per data node: a long list is walked in slices
            if id(c) in hit_ids:
                selected[i] = _ALL
            for f in others:
                if not f.matches(c):
                    continue
                sub = yield from self.select(c, f)
                if sub is None:
                    continue
                found_other = True
                selected[i] = _merge(selected.get(i), sub)
        if not found_other and not content:
            return None
        return selected


def _merge(a: Selection | None, b: Selection) -> Selection:
    if a is None:
        return b
    if a is _ALL or b is _ALL:
        return _ALL
    merged = dict(a)  # type: ignore[arg-type]
    for k, v in b.items():  # type: ignore[union-attr]
        merged[k] = _merge(merged.get(k), v)
    return merged


def _materialize_children(src: etree._Element, selection: dict[int, Selection],
                          out: etree._Element) -> None:
    children = list(src.iterchildren(etree.Element))
    for i in sorted(selection):
        sub = selection[i]
        if sub is _ALL:
            out.append(copy.deepcopy(children[i]))
        else:
            shallow = etree.SubElement(out, children[i].tag, attrib=dict(children[i].attrib),
                                       nsmap=children[i].nsmap)
            _materialize_children(children[i], sub, shallow)  # type: ignore[arg-type]


# --- RFC 6241 section 8.9: XPath filtering -------------------------------------------
def xpath_filter(data: etree._Element, select: str, namespaces: dict[str, str],
                 keys_of: KeysOf = _no_keys) -> etree._Element:
    """Nodes selected by the XPath 1.0 expression *select*, with their ancestors.

    The expression is evaluated with the top-level data nodes as children of
    the root (``/pki:pki`` selects the ``pki`` container). Ancestors of a
    selected node are copied with their list keys (RFC 6241 section 8.9.1).

    An expression without any prefixed name (``/pki/file-format``, as
    netconf-console2 ``-x`` sends it) would select nothing under XPath 1.0,
    since YANG data is always namespace-qualified; such names match by local
    name in any namespace instead, as other NETCONF servers do.
    """
    return select_paths(data, xpath_paths(data, select, namespaces), keys_of)


def xpath_paths(data: etree._Element, select: str,
                namespaces: dict[str, str]) -> list[list[int]]:
    """The positions (element children only) from *data* down to each node
    the expression selects: the expensive part of :func:`xpath_filter`."""
    exslt = sorted(p for p, ns in namespaces.items() if ns.startswith(EXSLT_NS_PREFIX))
    if exslt:
        raise RpcError("invalid-value",
                       f"EXSLT extension functions are not available in XPath filters"
                       f" (prefix {exslt[0]!r}); use XPath 1.0 functions",
                       type="protocol", info={"bad-attribute": "select", "bad-element": "filter"})
    try:
        xp = etree.XPath(select, namespaces=namespaces, regexp=False)
    except etree.XPathSyntaxError as exc:
        raise RpcError("invalid-value", f"invalid XPath expression {select!r}: {exc}",
                       type="protocol", info={"bad-attribute": "select",
                                              "bad-element": "filter"}) from None
    # XPath sees one document per top-level node, so that "/" is the datastore root
    any_namespace = not _has_prefixed_name(select)
    positions = _Positions()
    paths: list[list[int]] = []
    for top_index, top in enumerate(positions.children(data)):
        tree = etree.ElementTree(copy.deepcopy(top))
        if any_namespace:
            _strip_namespaces(tree.getroot())
        try:
            result = xp(tree)
        except etree.XPathEvalError as exc:
            raise RpcError("invalid-value", f"cannot evaluate XPath {select!r}: {exc}",
                           type="protocol", info={"bad-attribute": "select",
                                                  "bad-element": "filter"}) from None
        if not isinstance(result, list):
            raise RpcError(
                "invalid-value",
                f"the XPath filter {select!r} must select nodes, not a {type(result).__name__}",
                type="protocol", info={"bad-attribute": "select", "bad-element": "filter"})
        for item in result:
            if isinstance(item, etree._Element):
                el = item
            else:  # a text or attribute result stands for its element
                el = item.getparent() if hasattr(item, "getparent") else None
            if isinstance(el, etree._Element) and isinstance(el.tag, str):
                paths.append([top_index, *positions.path(tree.getroot(), el)])
    return paths


def select_paths(data: etree._Element, paths: list[list[int]],
                 keys_of: KeysOf = _no_keys) -> etree._Element:
    """The nodes of *data* at *paths* with their ancestors and the keys of list ancestors."""
    positions = _Positions()
    selection: dict[int, Selection] = {}
    for path in paths:
        _select_path(data, path, selection, positions, keys_of)
    return materialize(data, selection)


_STRING_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
_PREFIXED_NAME = re.compile(r"(?<![\w.-])[A-Za-z_][\w.-]*:(?!:)")


def _has_prefixed_name(select: str) -> bool:
    """Whether the expression uses ``prefix:name`` outside string literals (axes excluded)."""
    return bool(_PREFIXED_NAME.search(_STRING_LITERAL.sub("''", select)))


def _strip_namespaces(root: etree._Element) -> None:
    for el in root.iter():
        if isinstance(el.tag, str):
            el.tag = etree.QName(el).localname
    etree.cleanup_namespaces(root)


class _Positions:
    """Child positions (element children only), cached per parent."""

    def __init__(self) -> None:
        self._children: dict[etree._Element, list[etree._Element]] = {}
        self._index: dict[etree._Element, dict[etree._Element, int]] = {}

    def children(self, parent: etree._Element) -> list[etree._Element]:
        found = self._children.get(parent)
        if found is None:
            found = self._children[parent] = [c for c in parent if isinstance(c.tag, str)]
        return found

    def path(self, root: etree._Element, el: etree._Element) -> list[int]:
        """Positions from *root* down to *el*."""
        steps = []
        while el is not root:
            parent = el.getparent()
            index = self._index.get(parent)
            if index is None:
                index = self._index[parent] = {c: i for i, c in enumerate(self.children(parent))}
            steps.append(index[el])
            el = parent
        steps.reverse()
        return steps


def _select_path(data: etree._Element, path: list[int], selection: dict[int, Selection],
                 positions: _Positions, keys_of: KeysOf) -> None:
    """Mark the node at *path* and its ancestors, with the keys of list ancestors."""
    level, node = selection, data
    for depth, index in enumerate(path):
        node = positions.children(node)[index]
        if depth == len(path) - 1:
            level[index] = _ALL
            return
        entry = level.get(index)
        if entry is _ALL:
            return
        if entry is None:
            entry = level[index] = {}
            for key in keys_of(node):
                for ki, kc in enumerate(positions.children(node)):
                    if kc.tag == key:
                        entry[ki] = _ALL
        level = entry  # type: ignore[assignment]


def filter_namespaces(el: etree._Element) -> dict[str, str]:
    """Prefix -> namespace in scope at *el*, for the XPath expression."""
    return {p: ns for p, ns in el.nsmap.items() if p}
