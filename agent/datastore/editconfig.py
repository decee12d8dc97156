"""The ``<edit-config>`` engine: RFC 6241 section 7.2 on lxml trees.

:func:`apply_edit` merges a ``<config>`` element into a configuration tree
(modified in place: callers pass a copy). It is schema-aware through
:class:`SchemaMap`: list entries are matched by their keys (indexed, so an edit
of N entries costs O(N)), leaf-list entries by value, and setting a node of
one case of a ``choice`` removes the nodes of the choice's other cases (RFC
7950 section 7.9.2). Leaf values are checked against their YANG types as they
are applied; whole-tree constraints are left to validation at commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lxml import etree
from yangson.schemanode import ContainerNode, LeafListNode, LeafNode, ListNode

from agent.datastore.schema import NodeInfo, SchemaMap, index_steps, new_child, qname
from agent.datastore.steps import Steps, run_steps
from agent.datastore.validation import leaf_value, prefix_declarations
from agent.netconf.errors import NC_NS, RpcError

OPERATION_ATTR = f"{{{NC_NS}}}operation"
#: RFC 6243 section 4.5.2: wd:default="true" in a <config> means "set to the default"
WD_DEFAULT_ATTR = "{urn:ietf:params:xml:ns:netconf:default:1.0}default"
OPERATIONS = ("merge", "replace", "create", "delete", "remove")
DEFAULT_OPERATIONS = ("merge", "replace", "none")
ERROR_OPTIONS = ("stop-on-error", "continue-on-error", "rollback-on-error")

#: leaves and leaf-list entries applied between two pauses of :func:`apply_edit_steps`
_LEAVES_STEP = 64
#: maps a leaf's checked clear value to the value stored (secret sealing)
SecretHook = Callable[[NodeInfo, str, str, "str | None"], str]


@dataclass
class EditResult:
    """Errors recorded under ``continue-on-error`` (empty otherwise), and whether
    the edit changed the target: ``False`` when it leaves the tree equal to what
    it was (a merge of the values already there, a ``remove`` of absent nodes, a
    ``replace`` by the same content), so that an edit that changes nothing does
    not count as a modification of the candidate (RFC 6241 sections 7.5 and
    8.3.5.1). ``True`` whenever the engine cannot tell."""

    errors: list[RpcError] = field(default_factory=list)
    changed: bool = True


def apply_edit(smap: SchemaMap, target: etree._Element, config: etree._Element, *,
               default_operation: str = "merge", error_option: str = "stop-on-error",
               seal_secret: SecretHook | None = None) -> EditResult:
    """Apply *config*'s children to *target* (a ``<data>`` root), in place.

    With ``stop-on-error`` and ``rollback-on-error`` the first error is raised
    (the caller discards *target*); with ``continue-on-error`` failed nodes are
    skipped and their errors returned.
    """
    return run_steps(apply_edit_steps(smap, target, config, default_operation=default_operation,
                                      error_option=error_option, seal_secret=seal_secret))


def apply_edit_steps(smap: SchemaMap, target: etree._Element, config: etree._Element, *,
                     default_operation: str = "merge", error_option: str = "stop-on-error",
                     seal_secret: SecretHook | None = None) -> Steps[EditResult]:
    """:func:`apply_edit` in steps (:mod:`agent.datastore.steps`): it pauses
    after each list entry and container of *config* it applied, every
    :data:`_LEAVES_STEP` leaves, and while it indexes a long list."""
    if default_operation not in DEFAULT_OPERATIONS:
        raise RpcError("invalid-value", f"default-operation must be one of "
                       f"{', '.join(DEFAULT_OPERATIONS)}, not {default_operation!r}",
                       type="protocol", info={"bad-element": "default-operation"})
    if error_option not in ERROR_OPTIONS:
        raise RpcError("invalid-value", f"error-option must be one of "
                       f"{', '.join(ERROR_OPTIONS)}, not {error_option!r}",
                       type="protocol", info={"bad-element": "error-option"})
    engine = _Engine(smap, error_option == "continue-on-error", seal_secret)
    yield from engine.children(target, smap.root, config, default_operation, "")
    return EditResult(engine.errors, engine.changed)


def same_steps(old: etree._Element, new: etree._Element) -> Steps[bool]:
    """Whether the trees *old* and *new* are equal (tags, texts, attributes, the
    order of children; the namespace declarations of an element whose text may
    use a prefix), in steps: a pause every :data:`_LEAVES_STEP` elements. It
    stops at the first difference, so that a subtree replaced by other content
    costs about as much as the edit that replaced it."""
    pairs = [(old, new)]
    count = 0
    while pairs:
        a, b = pairs.pop()
        if a.tag != b.tag or (a.text or "") != (b.text or "") or len(a) != len(b) \
                or a.attrib != b.attrib:
            return False
        if a.text and ":" in a.text and a.nsmap != b.nsmap:
            return False  # an identityref or a path: its prefixes may mean otherwise
        pairs.extend(zip(reversed(a), reversed(b)))
        count += 1
        if count % _LEAVES_STEP == 0:
            yield
    return True


class _Engine:
    def __init__(self, smap: SchemaMap, keep_going: bool, seal_secret: SecretHook | None):
        self.smap = smap
        self.keep_going = keep_going
        self.seal_secret = seal_secret
        self.errors: list[RpcError] = []
        #: whether the edit changed the tree so far
        self.changed = False
        #: (parent element, list tag) -> {key tuple: entry element}
        self._index: dict[tuple[etree._Element, str], dict[tuple[str, ...], etree._Element]] = {}
        #: id of a node in a choice -> the tags of its siblings in the choice's other cases
        self._other_cases: dict[int, tuple[str, ...]] = {}

    # -- walking --------------------------------------------------------------------
    def children(self, data: etree._Element, info: NodeInfo, edit: etree._Element,
                 op: str, path: str, skip: frozenset[str] = frozenset()) -> Steps[None]:
        """Apply each child of *edit* under *data*; a pause after each list entry
        and container, and every :data:`_LEAVES_STEP` leaves."""
        leaves = 0
        for child in edit:
            tag = child.tag
            if not isinstance(tag, str) or tag in skip:
                continue  # comments, processing instructions, list keys
            nested = False
            try:
                cinfo, cop = self.resolve(info, child, tag, op, path)
                sn = cinfo.node
                if isinstance(sn, LeafNode):
                    self.leaf(data, cinfo, child, cop, path)
                elif isinstance(sn, ListNode):
                    nested = True
                    yield from self.list_entry(data, cinfo, child, cop, path)
                elif isinstance(sn, ContainerNode):
                    nested = True
                    yield from self.container(data, cinfo, child, cop, path)
                elif isinstance(sn, LeafListNode):
                    self.leaf_list_entry(data, cinfo, child, cop, path)
                else:  # pragma: no cover - the model has no anydata/anyxml config
                    raise RpcError("operation-not-supported", f"{sn.name!r} cannot be edited",
                                   info={"bad-element": sn.name})
            except RpcError as err:
                if not self.keep_going:
                    raise
                self.errors.append(err)
            leaves += 1
            if nested or leaves >= _LEAVES_STEP:
                leaves = 0
                yield

    def resolve(self, parent: NodeInfo, edit: etree._Element, tag: str, inherited: str,
                path: str) -> tuple[NodeInfo, str]:
        """The schema node of the element *edit* (Clark *tag*) under *parent*
        and the operation that applies to it."""
        info = self.smap.child(parent, tag)
        if info is None:
            ns, local = qname(tag)
            if ns is not None and not self.smap.knows_namespace(ns):
                raise RpcError("unknown-namespace",
                               f"namespace {ns!r} of element {local!r} is not one of the "
                               "agent's YANG modules", type="application",
                               path=path or "/", path_namespaces=self.smap.path_namespaces(path),
                               info={"bad-element": local, "bad-namespace": ns})
            where = path or "the top level"
            raise RpcError("unknown-element", f"{local!r} is not a node of the model under {where}",
                           type="application", path=path or "/",
                           path_namespaces=self.smap.path_namespaces(path),
                           info={"bad-element": local})
        op = edit.get(OPERATION_ATTR, inherited)
        if op != inherited and op not in OPERATIONS:
            local = info.node.name
            raise RpcError("bad-attribute", f"operation {op!r} on {local!r} is not one of "
                           f"{', '.join(OPERATIONS)}", type="application",
                           info={"bad-attribute": "operation", "bad-element": local})
        if not info.config:
            here = path + info.step
            raise RpcError("invalid-value", f"{info.node.name!r} is state data (config false) "
                           "and cannot be configured", path=here,
                           path_namespaces=self.smap.path_namespaces(here),
                           info={"bad-element": info.node.name})
        return info, op

    # -- node kinds -----------------------------------------------------------------
    def leaf(self, data, info: NodeInfo, edit, op: str, path: str) -> None:
        here = path + info.step
        existing = next(data.iterchildren(info.tag), None)  # twice as fast as find
        if self._deleted(data, info, existing, op, here):
            return
        if op == "none":
            return
        if op == "create" and existing is not None:
            raise self._exists(info, here)
        secret = info.tag in self.smap.secret_tags
        text = leaf_value(self.smap, info, edit, here, secret=secret)
        if edit.get(WD_DEFAULT_ATTR) in ("true", "1"):
            self._reset_to_default(data, info, existing, text, here)
            return
        if secret and self.seal_secret is not None:
            text = self.seal_secret(info, text, here,
                                    existing.text if existing is not None else None)
        declare = prefix_declarations(self.smap, info, text)
        if existing is not None and existing.text == text and all(
                existing.nsmap.get(prefix) == uri for prefix, uri in (declare or {}).items()):
            return  # the value it has: nothing changes
        self.changed = True
        if declare:  # a path: the element declares the prefixes its value uses
            fresh = etree.Element(info.tag, nsmap={None: qname(info.tag)[0], **declare})
            fresh.text = text
            if existing is None:
                self._clear_other_cases(data, info)
                data.append(fresh)
            else:
                data.replace(existing, fresh)
        elif existing is None:
            self._clear_other_cases(data, info)
            new_child(data, info.tag, text)
        else:
            existing.text = text

    def _reset_to_default(self, data, info: NodeInfo, existing, text: str, here: str) -> None:
        """RFC 6243 section 4.5.2: a leaf tagged wd:default="true" must carry the
        schema default; the leaf then goes back to its default (is removed)."""
        default = info.node.default
        if default is None or info.node.type.canonical_string(default) != text:
            raise RpcError("invalid-value", f"{info.node.name} is tagged wd:default=\"true\" but "
                           "its value is not the schema default", path=here,
                           path_namespaces=self.smap.path_namespaces(here),
                           info={"bad-element": info.node.name})
        if existing is not None:
            data.remove(existing)
            self.changed = True

    def _deleted(self, data, info: NodeInfo, existing, op: str, here: str) -> bool:
        """RFC 6241 7.2 ``delete`` and ``remove``: True when *op* was one of them
        (``delete`` of a missing node is ``data-missing``; ``remove`` is silent)."""
        if op not in ("delete", "remove"):
            return False
        if existing is None:
            if op == "delete":
                raise self._missing(info, here)
            return True
        data.remove(existing)
        self.changed = True
        return True

    def leaf_list_entry(self, data, info: NodeInfo, edit, op: str, path: str) -> None:
        text = leaf_value(self.smap, info, edit, path + info.step)
        here = path + info.step + f"[.='{text}']"
        existing = next((e for e in data.iterchildren(info.tag) if e.text == text), None)
        if op in ("delete", "remove"):
            if existing is None:
                if op == "delete":
                    raise self._missing(info, here)
                return
            data.remove(existing)
            self.changed = True
        elif op == "create" and existing is not None:
            raise self._exists(info, here)
        elif op != "none" and existing is None:
            self._clear_other_cases(data, info)
            new_child(data, info.tag, text)
            self.changed = True

    def container(self, data, info: NodeInfo, edit, op: str, path: str) -> Steps[None]:
        here = path + info.step
        existing = next(data.iterchildren(info.tag), None)  # twice as fast as find
        if self._deleted(data, info, existing, op, here):
            return
        if op == "create" and existing is not None:
            raise self._exists(info, here)
        replaced, changed = None, self.changed
        if op == "replace" and existing is not None:
            fresh = etree.Element(info.tag, nsmap={None: qname(info.tag)[0]})
            data.replace(existing, fresh)
            replaced, existing = existing, fresh
        created = existing is None
        if created:
            existing = new_child(data, info.tag)
        yield from self.children(existing, info, edit, op, here)
        if len(existing) == 0 and (not info.node.presence or (created and op == "none")):
            data.remove(existing)  # an empty non-presence container carries nothing
            if replaced is not None:
                self.changed = True
        elif created:
            self._clear_other_cases(data, info)
            self.changed = True
        elif replaced is not None:  # the same content again changes nothing
            self.changed = changed or not (yield from same_steps(replaced, existing))

    def list_entry(self, data, info: NodeInfo, edit, op: str, path: str) -> Steps[None]:
        keys: list[str] = []
        for ktag in info.key_tags:
            kel = next(edit.iterchildren(ktag), None)  # find()'s, without ElementPath
            kinfo = self.smap.child(info, ktag)
            if kel is None:
                here = path + info.step
                raise RpcError("missing-element",
                               f"list entry {info.node.name!r} needs its key "
                               f"{qname(ktag)[1]!r}", path=here,
                               path_namespaces=self.smap.path_namespaces(here),
                               info={"bad-element": qname(ktag)[1]})
            keys.append(leaf_value(self.smap, kinfo, kel,
                                   path + info.step + kinfo.step))
        key = tuple(keys)
        here = path + self.smap.step(info, key)
        slot = (data, info.tag)  # the list's entries by key, indexed once per edit
        index = self._index.get(slot)
        if index is None:
            index = self._index[slot] = yield from index_steps(data, info)
        existing = index.get(key)
        if self._deleted(data, info, existing, op, here):
            index.pop(key, None)
            return
        if op == "create" and existing is not None:
            raise self._exists(info, here)
        created = existing is None
        replaced, changed = None, self.changed
        if op == "replace" and existing is not None:
            fresh = self._new_entry(None, info, key)
            data.replace(existing, fresh)
            replaced, existing = existing, fresh
            index[key] = fresh
        elif created:
            existing = index[key] = self._new_entry(data, info, key)
        yield from self.children(existing, info, edit, op, here, skip=frozenset(info.key_tags))
        if created and op == "none" and len(existing) == len(key):
            data.remove(existing)  # "none" creates nothing by itself
            del index[key]
        elif created:
            self._clear_other_cases(data, info)
            self.changed = True
        elif replaced is not None:  # the same content again changes nothing
            self.changed = changed or not (yield from same_steps(replaced, existing))

    # -- helpers --------------------------------------------------------------------
    @staticmethod
    def _new_entry(data, info: NodeInfo, key: tuple[str, ...]) -> etree._Element:
        if data is None:
            entry = etree.Element(info.tag, nsmap={None: qname(info.tag)[0]})
        else:
            entry = new_child(data, info.tag)
        for ktag, kval in zip(info.key_tags, key):
            new_child(entry, ktag, kval)
        return entry

    def _clear_other_cases(self, data, info: NodeInfo) -> None:
        """RFC 7950 section 7.9.2: creating a node of one case of a choice
        deletes all nodes of the choice's other cases."""
        if not info.cases:
            return
        others = self._other_cases.get(id(info))
        if others is None:
            mine = {id(choice): case for choice, case in info.cases}
            others = self._other_cases[id(info)] = tuple(
                tag for tag, other in self.smap.children(info.parent).items()
                if tag != info.tag and any(id(choice) in mine and mine[id(choice)] is not case
                                           for choice, case in other.cases))
        if others:  # found in C: no Python object for the other children
            for el in list(data.iterchildren(*others)):
                data.remove(el)
                self.changed = True

    def _exists(self, info: NodeInfo, here: str) -> RpcError:
        return RpcError("data-exists", f"{here} already exists; use merge or replace to change "
                        "it", path=here, path_namespaces=self.smap.path_namespaces(here),
                        info={"bad-element": info.node.name})

    def _missing(self, info: NodeInfo, here: str) -> RpcError:
        return RpcError("data-missing", f"{here} does not exist, so it cannot be deleted (use "
                        "remove to ignore absent data)", path=here,
                        path_namespaces=self.smap.path_namespaces(here),
                        info={"bad-element": info.node.name})
