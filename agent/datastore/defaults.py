"""Default handling for retrieval: RFC 6243 (with-defaults).

Datastores store configuration as it was set ("explicit" form). The modes:

* ``report-all`` (the agent's basic mode): every default leaf is reported,
  including those inside non-presence containers that do not exist.
* ``trim``: leaves whose value equals the schema default are left out.
* ``explicit``: what was set, as stored.
* ``report-all-tagged``: like report-all, and every leaf whose value is the
  default carries ``wd:default="true"`` (RFC 6243 section 3.4).

Defaults come from the yangson schema (leaf ``default`` and typedef defaults).
Only the active (or default) case of a choice contributes defaults (RFC 7950
section 7.9.3).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lxml import etree
from yangson.schemanode import ContainerNode, LeafNode, ListNode

from agent.datastore.schema import NodeInfo, SchemaMap, new_child
from agent.datastore.steps import Steps, run_steps
from agent.netconf.errors import RpcError

WD_NS = "urn:ietf:params:xml:ns:netconf:default:1.0"
WD_ATTR = f"{{{WD_NS}}}default"
MODES = ("report-all", "trim", "explicit", "report-all-tagged")
#: children of one element listed between two pauses of :meth:`Defaults.report_all_steps`
#: (the parent of 1,000 list entries took 0.6 ms at once)
_LISTED_PER_PAUSE = 128


@dataclass
class _Plan:
    """Per schema node: which children can carry defaults."""

    leaves: list[tuple[NodeInfo, str]]                 # default leaf, canonical default text
    containers: list[NodeInfo]                         # non-presence containers to descend
    lists: list[NodeInfo]
    presence: list[NodeInfo]                           # presence containers (descend if present)


class Defaults:
    """Applies a with-defaults mode to copies of configuration trees."""

    def __init__(self, smap: SchemaMap):
        self.smap = smap
        self._plans: dict[int, _Plan] = {}
        self._templates: dict[tuple[int, bool], etree._Element | None] = {}

    def apply(self, root: etree._Element, mode: str) -> etree._Element:
        """Transform *root* (a copy the caller owns) in place for *mode*."""
        if mode not in MODES:
            raise RpcError("invalid-value", f"with-defaults must be one of {', '.join(MODES)}, "
                           f"not {mode!r}", type="protocol", info={"bad-element": "with-defaults"})
        if mode == "explicit":
            return root
        if mode == "trim":
            self._trim(root, self.smap.root)
        else:
            tagged = mode == "report-all-tagged"
            if tagged:
                etree.cleanup_namespaces(root, top_nsmap={"wd": WD_NS})
            run_steps(self._fill(root, self.smap.root, tagged))
        return root

    def report_all_steps(self, root: etree._Element) -> Steps[etree._Element]:
        """:meth:`apply` of report-all in steps (:mod:`agent.datastore.steps`):
        a pause after each list entry, and every :data:`_LISTED_PER_PAUSE`
        children of one element looked at."""
        yield from self._fill(root, self.smap.root, False)
        return root

    # -- plans ----------------------------------------------------------------------
    def _plan(self, info: NodeInfo) -> _Plan:
        plan = self._plans.get(id(info))
        if plan is None:
            plan = _Plan([], [], [], [])
            for child in self.smap.children(info).values():
                sn = child.node
                if not sn.config:
                    continue
                if isinstance(sn, LeafNode):
                    if sn.default is not None:
                        plan.leaves.append((child, sn.type.canonical_string(sn.default)))
                elif isinstance(sn, ContainerNode):
                    (plan.presence if sn.presence else plan.containers).append(child)
                elif isinstance(sn, ListNode):
                    plan.lists.append(child)
            self._plans[id(info)] = plan
        return plan

    @staticmethod
    def _case_allowed(el: etree._Element, present: dict[str, etree._Element], child: NodeInfo,
                      siblings: dict[str, NodeInfo]) -> bool:
        """Whether *child*'s case is the active one (or the default case)."""
        for choice, case in child.cases:
            active = None
            for tag in present:
                other = siblings.get(tag)
                if other is None:
                    continue
                for ch2, case2 in other.cases:
                    if ch2 is choice:
                        active = case2
            if active is None:
                if choice.default_case is None or case.qual_name != choice.default_case:
                    return False
            elif active is not case:
                return False
        return True

    # -- report-all ------------------------------------------------------------------
    def _fill(self, el: etree._Element, info: NodeInfo, tagged: bool) -> Steps[None]:
        plan = self._plan(info)
        present: dict[str, etree._Element] = {}
        for count, c in enumerate(el, 1):
            present.setdefault(c.tag, c)
            if not count % _LISTED_PER_PAUSE:  # the children of a long list's parent
                yield
        siblings = self.smap.children(info)
        for child, text in plan.leaves:
            leaf = present.get(child.tag)
            if leaf is not None:
                if tagged and leaf.text == text:
                    leaf.set(WD_ATTR, "true")
                continue
            if child.cases and not self._case_allowed(el, present, child, siblings):
                continue
            leaf = new_child(el, child.tag, text)
            if tagged:
                leaf.set(WD_ATTR, "true")
        for child in plan.containers:
            sub = present.get(child.tag)
            if sub is None:
                if child.cases and not self._case_allowed(el, present, child, siblings):
                    continue
                template = self._template(child, tagged)
                if template is not None:
                    el.append(copy.deepcopy(template))
            else:
                yield from self._fill(sub, child, tagged)
        for child in plan.presence:
            sub = present.get(child.tag)
            if sub is not None:
                yield from self._fill(sub, child, tagged)
        for child in plan.lists:
            if child.tag in present:
                for entry in el.iterchildren(child.tag):
                    yield from self._fill(entry, child, tagged)
                    yield

    def _template(self, info: NodeInfo, tagged: bool) -> etree._Element | None:
        """The defaults of an absent non-presence container, built once."""
        slot = (id(info), tagged)
        if slot not in self._templates:
            holder = etree.Element("holder")
            sub = new_child(holder, info.tag)
            run_steps(self._fill(sub, info, tagged))
            self._templates[slot] = sub if len(sub) else None
        return self._templates[slot]

    # -- trim --------------------------------------------------------------------------
    def _trim(self, el: etree._Element, info: NodeInfo) -> None:
        plan = self._plan(info)
        for child, text in plan.leaves:
            leaf = el.find(child.tag)
            if leaf is not None and leaf.text == text:
                el.remove(leaf)
        for child in plan.containers:
            sub = el.find(child.tag)
            if sub is not None:
                self._trim(sub, child)
                if len(sub) == 0:
                    el.remove(sub)
        for child in plan.presence:
            sub = el.find(child.tag)
            if sub is not None:
                self._trim(sub, child)
        for child in plan.lists:
            for entry in el.iterchildren(child.tag):
                self._trim(entry, child)
