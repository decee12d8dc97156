"""Configuration trees as yangson's raw data (RFC 7951 JSON names and values),
read straight from the XML, without building yangson instances.

The PKI service reads running in this form. Loading a whole tree into
yangson and asking for its ``raw_value()`` costs two passes over every node
with many objects each; here every leaf is converted by its yangson type
(``from_xml`` then ``to_raw``, as yangson itself does) in one pass, and a
single list entry can be converted alone. tests/datastore/test_ds_raw.py
compares the result with yangson's ``raw_value()`` of the same tree.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from yangson.schemanode import LeafListNode, LeafNode, ListNode

from agent.datastore.schema import NodeInfo, SchemaMap


def raw_value(smap: SchemaMap, info: NodeInfo, el: etree._Element,
              skip: str | None = None) -> dict[str, Any]:
    """The raw value of the container, list entry or data root *el* (of schema *info*),
    without the elements whose Clark tag is *skip*.

    Member names are qualified with their module where it differs from the
    parent's (RFC 7951 section 4); elements the schema does not know are
    skipped (the datastores only hold validated configuration).
    """
    out: dict[str, Any] = {}
    parent_module = getattr(info.node, "ns", None) if info.parent is not None else None
    for child in el:
        tag = child.tag
        if not isinstance(tag, str) or tag == skip:
            continue
        cinfo = smap.child(info, tag)
        if cinfo is None:
            continue
        sn = cinfo.node
        name = sn.name if sn.ns == parent_module else f"{sn.ns}:{sn.name}"
        if isinstance(sn, LeafNode):
            out[name] = sn.type.to_raw(sn.type.from_xml(child))
        elif isinstance(sn, LeafListNode):
            out.setdefault(name, []).append(sn.type.to_raw(sn.type.from_xml(child)))
        elif isinstance(sn, ListNode):
            out.setdefault(name, []).append(raw_value(smap, cinfo, child, skip))
        else:
            out[name] = raw_value(smap, cinfo, child, skip)
    return out
