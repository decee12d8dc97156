"""Configuration trees as yangson's raw data (RFC 7951 JSON names and values),
read straight from the XML, without building yangson instances.

The PKI service reads running in this form. Loading a whole tree into
yangson and asking for its ``raw_value()`` costs two passes over every node
with many objects each; here every leaf is converted by its yangson type
(``from_xml`` then ``to_raw``, as yangson itself does) in one pass, and a
single list entry can be converted alone. A leaf's raw value is remembered
per type and text (where it depends on the text alone and is immutable): the
same names, algorithms and flags recur in every entry. tests/datastore/test_ds_raw.py
compares the result with yangson's ``raw_value()`` of the same tree.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from yangson.schemanode import LeafListNode, LeafNode, ListNode

from agent.datastore.schema import NodeInfo, SchemaMap, text_only

#: raw values remembered per type (cleared when this many)
_REMEMBERED_MAX = 10_000
_MEMO = "_cmp_agent_raw_memo"


def raw_value(smap: SchemaMap, info: NodeInfo, el: etree._Element,
              skip: str | None = None) -> dict[str, Any]:
    """The raw value of the container, list entry or data root *el* (of schema *info*),
    without the elements whose Clark tag is *skip*.

    Member names are qualified with their module where it differs from the
    parent's (RFC 7951 section 4); elements the schema does not know are
    skipped (the datastores only hold validated configuration).
    """
    out: dict[str, Any] = {}
    members = _members(smap, info)
    for child in el:
        tag = child.tag
        member = members.get(tag)
        if member is None or tag == skip:
            continue  # not known here, a comment or processing instruction, or skipped
        name, kind, cinfo = member
        if kind is _LEAF:
            out[name] = _leaf_raw(cinfo.node.type, child)
        elif kind is _LEAF_LIST:
            out.setdefault(name, []).append(_leaf_raw(cinfo.node.type, child))
        elif kind is _LIST:
            out.setdefault(name, []).append(raw_value(smap, cinfo, child, skip))
        else:
            out[name] = raw_value(smap, cinfo, child, skip)
    return out


_LEAF, _LEAF_LIST, _LIST, _CONTAINER = "leaf", "leaf-list", "list", "container"


def _members(smap: SchemaMap, info: NodeInfo) -> dict[str, tuple[str, str, NodeInfo]]:
    """*info*'s data children: Clark tag -> (member name, kind, schema), made once per
    schema node (the name and kind were worked out again for every element)."""
    members = info.raw_members
    if members is None:
        parent_module = getattr(info.node, "ns", None) if info.parent is not None else None
        members = {}
        for tag, cinfo in smap.children(info).items():
            sn = cinfo.node
            name = sn.name if sn.ns == parent_module else f"{sn.ns}:{sn.name}"
            kind = (_LEAF if isinstance(sn, LeafNode) else _LEAF_LIST
                    if isinstance(sn, LeafListNode) else _LIST if isinstance(sn, ListNode)
                    else _CONTAINER)
            members[tag] = (name, kind, cinfo)
        info.raw_members = members
    return members


def _leaf_raw(typ, el: etree._Element) -> Any:
    """``typ.to_raw(typ.from_xml(el))``, remembered on *typ* per text."""
    memo = typ.__dict__.get(_MEMO)
    if memo is None:
        memo = typ.__dict__[_MEMO] = {} if text_only(typ) else False
    if memo is False:
        return typ.to_raw(typ.from_xml(el))
    text = el.text
    value = memo.get(text, memo)
    if value is memo:
        value = typ.to_raw(typ.from_xml(el))
        if isinstance(value, (str, int, float, bool)) or value is None:
            if len(memo) >= _REMEMBERED_MAX:
                memo.clear()
            memo[text] = value
    return value
