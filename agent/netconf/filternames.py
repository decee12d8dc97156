"""Filters must name nodes of the model (RFC 6241 sections 6 and 8.9).

A subtree filter or an XPath filter whose path names no schema node can only
select nothing; such a filter is almost always a typo (``/pki/cmp-sesion``),
and an empty ``<data/>`` hides it. Like libyang-based servers, the agent
answers it with an ``rpc-error`` naming the step that matched nothing and the
closest valid name. A filter whose names exist but that matches no data still
gives an empty ``<data/>``.

The check reads only the names of the model (a :class:`NameTree`); an
unprefixed name matches in any namespace, as :mod:`agent.netconf.filters`
evaluates it (netconf-console2 ``-x`` sends paths without prefixes). Parts of
an XPath expression that are not plain child steps (other axes, functions,
variables) are not checked.
"""

from __future__ import annotations

import difflib
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lxml import etree

from .errors import RpcError
from .filters import _STRING_LITERAL, FilterParam, filter_namespaces


@dataclass
class NameTree:
    """The data node names of a model: children by local name, with their namespaces."""

    children: dict[str, list[tuple[str, "NameTree"]]] = field(default_factory=dict)
    #: anydata/anyxml: any content below
    opaque: bool = False

    def lookup(self, name: str, namespace: str | None) -> list["NameTree"]:
        """Children called *name* (in *namespace*; ``None``: any)."""
        return [node for ns, node in self.children.get(name, ())
                if namespace is None or ns == namespace]

    def descendants(self) -> Iterable["NameTree"]:
        for entries in self.children.values():
            for _, node in entries:
                yield node
                yield from node.descendants()


def _closest(name: str, nodes: list[NameTree]) -> str:
    """"; did you mean X?" or the valid names, for an error message."""
    names = sorted({n for node in nodes for n in node.children})
    match = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if match:
        return f"; did you mean {match[0]}?"
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"; the names here are {shown}" if names else "; nothing is below it"


def _name_error(tag: str, message: str, step: str) -> RpcError:
    info = {"bad-element": step} if tag == "unknown-element" else {
        "bad-attribute": "select", "bad-element": "filter"}
    return RpcError(tag, message, type="application" if tag == "unknown-element" else "protocol",
                    info=info)


def check_filter_names(tree: NameTree, filter_param: FilterParam) -> None:
    """Refuse a ``<filter>`` of get or get-config that names what the model does not have."""
    if filter_param.select is None:
        check_subtree_names(tree, filter_param.element)
    else:
        check_xpath_names(tree, filter_param.select, filter_namespaces(filter_param.element))


class CheckedFilters:
    """:func:`check_filter_names` that remembers the filters that passed, by
    :attr:`FilterParam.key`: a client polling with the same filter has it
    checked once (its size and names cannot have changed; the model does not).

    Bounded: the *max_entries* filters used last, each of at most
    *max_key_bytes* of XML (a larger one is checked every time).
    """

    def __init__(self, tree: Callable[[], NameTree], *, max_entries: int = 256,
                 max_key_bytes: int = 4096):
        self._tree = tree
        self._max_entries = max_entries
        self._max_key_bytes = max_key_bytes
        self._passed: OrderedDict[bytes, None] = OrderedDict()

    def check(self, filter_param: FilterParam) -> None:
        """Refuse *filter_param* if it names what the model does not have (or is too big)."""
        key = filter_param.key
        if key in self._passed:
            self._passed.move_to_end(key)
            return
        check_filter_names(self._tree(), filter_param)
        if len(key) <= self._max_key_bytes:
            self._passed[key] = None
            if len(self._passed) > self._max_entries:
                self._passed.popitem(last=False)


# --- subtree filters ---------------------------------------------------------------------
def check_subtree_names(tree: NameTree, filter_el: etree._Element) -> None:
    """Every element of the subtree filter names a schema node below its parent's."""
    _check_children([tree], filter_el, "")


def _check_children(nodes: list[NameTree], parent: etree._Element, path: str) -> None:
    if any(node.opaque for node in nodes):
        return
    for el in parent:
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        found = [match for node in nodes for match in node.lookup(q.localname, q.namespace)]
        if not found:
            where = f"below {path}" if path else "at the top level"
            raise _name_error("unknown-element",
                              f"the filter names <{q.localname}> {where}, which the data model"
                              f" does not have{_closest(q.localname, nodes)}", q.localname)
        _check_children(found, el, f"{path}/{q.localname}")


# --- XPath filters -----------------------------------------------------------------------
_NAME = r"[A-Za-z_][\w.-]*"
_STEP = re.compile(rf"^(?:child::)?(?:({_NAME}):)?({_NAME}|\*)$")
_PREDICATE_NAME = re.compile(rf"^\s*(?:({_NAME}):)?({_NAME})\s*(?:!?=|<|>|$)")


def check_xpath_names(tree: NameTree, select: str, namespaces: dict[str, str]) -> None:
    """The child steps of each absolute location path in *select* name schema nodes."""
    text = _STRING_LITERAL.sub("''", select)
    for part in _split(text, "|"):
        part = part.strip()
        if part.startswith("/"):
            _check_path(tree, part, namespaces, select)


def _split(text: str, separator: str) -> list[str]:
    """*text* split at *separator* outside brackets and parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _check_path(tree: NameTree, path: str, namespaces: dict[str, str], select: str) -> None:
    nodes, descendant = [tree], False
    for step in _split(path, "/")[1:]:
        if not step.strip():
            descendant = True  # "//"
            continue
        name_part, _, predicates = step.partition("[")
        match = _STEP.match(name_part.strip())
        if match is None:
            return  # another axis, a function, "." or "..": not checked from here on
        prefix, local = match.groups()
        if prefix is not None and prefix not in namespaces:
            return  # an unknown prefix is the XPath compiler's error
        namespace = namespaces.get(prefix) if prefix else None
        scope = [d for node in nodes for d in node.descendants()] if descendant else nodes
        if local == "*":
            nodes = [child for node in scope for entries in node.children.values()
                     for _, child in entries]
        else:
            found = [m for node in scope for m in node.lookup(local, namespace)]
            if not found and not any(node.opaque for node in scope):
                raise _name_error("invalid-value",
                                  f"the XPath filter {select!r}: step {name_part.strip()!r} names"
                                  f" no node of the data model{_closest(local, scope)}",
                                  name_part.strip())
            nodes = found
        descendant = False
        if predicates:
            _check_predicates(nodes, "[" + predicates, namespaces, select)
        if not nodes or any(node.opaque for node in nodes):
            return


def _check_predicates(nodes: list[NameTree], text: str, namespaces: dict[str, str],
                      select: str) -> None:
    """``[name = 'x']`` and ``[name]``: *name* is a child of the step's node."""
    for predicate in re.findall(r"\[([^\[\]]*)\]", text):
        for condition in re.split(r"\b(?:and|or)\b", predicate):
            match = _PREDICATE_NAME.match(condition)
            if match is None:
                continue
            prefix, local = match.groups()
            if prefix is not None and prefix not in namespaces:
                continue
            namespace = namespaces.get(prefix) if prefix else None
            if not any(node.lookup(local, namespace) for node in nodes):
                raise _name_error("invalid-value",
                                  f"the XPath filter {select!r}: a predicate names {local!r},"
                                  f" which is not below its step{_closest(local, nodes)}", local)
