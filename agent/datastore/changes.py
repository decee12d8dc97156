"""What a change of the running configuration did, for the log and listeners."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from yangson.schemanode import LeafListNode, ListNode

from agent.datastore.schema import NodeInfo, SchemaMap
from agent.datastore.steps import Steps, run_steps

_SHOWN = 5

#: a list entry: the Clark tags from the root down to the list, and the entry's key values
EntryId = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class ChangeSummary:
    """Instance paths (prefixed XPath) created, modified and deleted.

    Paths carry list keys but never leaf values, so secrets cannot leak.
    ``entries`` names, for listeners that keep views of running up to date,
    the outermost list entries in which (or as which) something changed;
    ``outside_entries`` is true if something changed outside every list entry.
    """

    created: list[str]
    modified: list[str]
    deleted: list[str]
    entries: frozenset[EntryId] = field(default=frozenset())
    outside_entries: bool = False

    @property
    def empty(self) -> bool:
        return not (self.created or self.modified or self.deleted)

    def keys_of(self, *tags: str) -> set[tuple[str, ...]] | None:
        """Key values of the changed entries of the list at *tags* (Clark tags
        from the root), or ``None`` if anything else changed too."""
        if self.outside_entries or any(path != tags for path, _ in self.entries):
            return None
        return {key for _, key in self.entries}

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


@dataclass
class _Collector:
    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    entries: set[EntryId] = field(default_factory=set)
    outside: bool = False

    def add(self, paths: list[str], path: str, entry: EntryId | None) -> None:
        paths.append(path)
        if entry is None:
            self.outside = True
        else:
            self.entries.add(entry)


def diff(smap: SchemaMap, old: etree._Element, new: etree._Element) -> ChangeSummary:
    """Compare two configuration trees node by node (lists by key)."""
    return run_steps(diff_steps(smap, old, new))


def diff_steps(smap: SchemaMap, old: etree._Element, new: etree._Element) -> Steps[ChangeSummary]:
    """:func:`diff` in steps (:mod:`agent.datastore.steps`): a pause after
    each list entry compared, and every :data:`_IDENTIFIED_PER_PAUSE` children
    identified."""
    out = _Collector()
    yield from _diff(smap, smap.root, old, new, "", (), None, out)
    return ChangeSummary(out.created, out.modified, out.deleted, frozenset(out.entries),
                         out.outside)


#: children identified between two pauses of :func:`diff_steps` (a long list's entries, each
#: with its key and XPath step, 5 to 10 us: 1,000 took 5 to 10 ms at once)
_IDENTIFIED_PER_PAUSE = 16


def _identities(smap: SchemaMap, info: NodeInfo,
                el: etree._Element) -> Steps[dict[tuple, tuple[etree._Element, NodeInfo, str]]]:
    """*el*'s children by identity (tag, and key or value for list entries and
    leaf-list values), each with its schema and XPath step, in steps."""
    out: dict[tuple, tuple[etree._Element, NodeInfo, str]] = {}
    for count, child in enumerate(el, 1):
        if not count % _IDENTIFIED_PER_PAUSE:
            yield
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


def _diff(smap, info, old, new, path, tags, entry, out: _Collector) -> Steps[None]:
    before = yield from _identities(smap, info, old)
    after = yield from _identities(smap, info, new)

    def entry_of(ident: tuple, cinfo: NodeInfo) -> EntryId | None:
        if entry is None and isinstance(cinfo.node, ListNode):
            return (tags + (ident[0],), ident[1])
        return entry

    for ident, (el, cinfo, step) in after.items():
        prev = before.get(ident)
        if prev is None:
            out.add(out.created, path + step, entry_of(ident, cinfo))
        elif len(el) == 0 and len(prev[0]) == 0:
            if (el.text or "") != (prev[0].text or ""):
                out.add(out.modified, path + step, entry_of(ident, cinfo))
        else:
            yield from _diff(smap, cinfo, prev[0], el, path + step, tags + (ident[0],),
                             entry_of(ident, cinfo), out)
            if isinstance(cinfo.node, ListNode):
                yield
    for ident, (_, cinfo, step) in before.items():
        if ident not in after:
            out.add(out.deleted, path + step, entry_of(ident, cinfo))
