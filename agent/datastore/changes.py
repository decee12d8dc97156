"""What a change of the running configuration did, for the log and listeners."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from yangson.schemanode import LeafListNode, ListNode

from agent.datastore.schema import NodeInfo, SchemaMap

_SHOWN = 5


@dataclass(frozen=True)
class ChangeSummary:
    """Instance paths (prefixed XPath) created, modified and deleted.

    Paths carry list keys but never leaf values, so secrets cannot leak.
    """

    created: list[str]
    modified: list[str]
    deleted: list[str]

    @property
    def empty(self) -> bool:
        return not (self.created or self.modified or self.deleted)

    def describe(self) -> str:
        """One line for the log; never includes a value, hence never a secret."""
        if self.empty:
            return "no changes"
        parts = []
        for label, paths in (("created", self.created), ("modified", self.modified),
                             ("deleted", self.deleted)):
            if paths:
                shown = ", ".join(paths[:_SHOWN])
                more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
                parts.append(f"{label} {len(paths)}: {shown}{more}")
        return "; ".join(parts)


def diff(smap: SchemaMap, old: etree._Element, new: etree._Element) -> ChangeSummary:
    """Compare two configuration trees node by node (lists by key)."""
    created: list[str] = []
    modified: list[str] = []
    deleted: list[str] = []
    _diff(smap, smap.root, old, new, "", created, modified, deleted)
    return ChangeSummary(created, modified, deleted)


def _identities(smap: SchemaMap, info: NodeInfo, el: etree._Element):
    out: dict[tuple, tuple[etree._Element, NodeInfo, str]] = {}
    for child in el:
        if not isinstance(child.tag, str):
            continue
        cinfo = smap.child(info, child.tag)
        if cinfo is None:
            continue
        sn = cinfo.node
        if isinstance(sn, ListNode):
            key = tuple(child.findtext(k) or "" for k in cinfo.key_tags)
            out[(child.tag, key)] = (child, cinfo, smap.step(cinfo, key))
        elif isinstance(sn, LeafListNode):
            text = child.text or ""
            out[(child.tag, text)] = (child, cinfo, smap.step(cinfo) + f"[.='{text}']")
        else:
            out[(child.tag,)] = (child, cinfo, smap.step(cinfo))
    return out


def _diff(smap, info, old, new, path, created, modified, deleted) -> None:
    before = _identities(smap, info, old)
    after = _identities(smap, info, new)
    for ident, (el, cinfo, step) in after.items():
        prev = before.get(ident)
        if prev is None:
            created.append(path + step)
        elif len(el) == 0 and len(prev[0]) == 0:
            if (el.text or "") != (prev[0].text or ""):
                modified.append(path + step)
        else:
            _diff(smap, cinfo, prev[0], el, path + step, created, modified, deleted)
    for ident, (_, _, step) in before.items():
        if ident not in after:
            deleted.append(path + step)
