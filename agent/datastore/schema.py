"""Schema look-ups for XML data trees, answered by the yangson schema.

The datastores keep configuration as lxml trees; this module maps their
elements to yangson schema nodes (RFC 7950 section 7 statements), caches what
the edit and defaults engines ask often, and spells instance paths as
prefixed XPath for ``error-path`` (RFC 6241 section 4.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from yangson.schemanode import (
    CaseNode,
    ChoiceNode,
    ContainerNode,
    DataNode,
    LeafListNode,
    LeafNode,
    ListNode,
    SchemaNode,
)

from yangson.datatype import IdentityrefType, InstanceIdentifierType, UnionType

from agent.datastore.steps import Steps
from agent.model import Model

#: list entries indexed between two pauses of :func:`index_steps`
_INDEX_STEP = 64


def qname(tag: str) -> tuple[str | None, str]:
    """``{ns}local`` -> (ns, local)."""
    if tag[0] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


@dataclass
class NodeInfo:
    """What the engines need to know about one schema node."""

    node: SchemaNode
    tag: str                          # Clark notation {ns}local
    prefix: str
    #: (choice, case) pairs between this node and its data parent, outermost first
    cases: tuple[tuple[ChoiceNode, CaseNode], ...] = ()
    #: list nodes: Clark tags of the keys, in key order
    key_tags: tuple[str, ...] = ()
    parent: "NodeInfo | None" = field(default=None, repr=False)
    config: bool = True
    children: dict[str, "NodeInfo"] | None = field(default=None, repr=False)
    #: this node's XPath step without key predicates, ``/prefix:name`` (see :meth:`SchemaMap.step`)
    step: str = ""
    #: its data children for :func:`agent.datastore.raw.raw_value`, made on first use
    raw_members: dict | None = field(default=None, repr=False, compare=False)


class SchemaMap:
    """Maps XML elements of a configuration tree to the model's schema nodes."""

    def __init__(self, model: Model):
        self.model = model
        self.schema_data = model.datamodel.schema_data
        self.ns_of_module = {name: m.xml_namespace
                              for name, m in self.schema_data.modules_by_name.items()}
        self._prefix_of_ns = dict(model.prefixes)
        #: a module's prefix -> its namespace
        self.ns_of_prefix = {prefix: ns for ns, prefix in self._prefix_of_ns.items()}
        self.root = NodeInfo(model.datamodel.schema, tag="", prefix="")
        self.secret_tags = frozenset(f"{{{ns}}}{local}" for ns, local in model.secret_leaves)
        #: (id of a leaf's type, text) -> the canonical text of that valid value, for
        #: types whose values depend on the text alone (:func:`text_only`); filled and
        #: bounded by :func:`agent.datastore.validation.leaf_value`
        self.leaf_texts: dict[tuple[int, str], str] = {}

    # -- children -------------------------------------------------------------------
    def children(self, info: NodeInfo) -> dict[str, NodeInfo]:
        """Data children of *info* by Clark tag (through choices and cases)."""
        if info.children is None:
            info.children = {}
            self._collect(info, info.node, (), info.children)
        return info.children

    def _collect(self, parent: NodeInfo, sn: SchemaNode,
                 cases: tuple, out: dict[str, NodeInfo]) -> None:
        for ch in getattr(sn, "children", ()):
            if isinstance(ch, ChoiceNode):
                for case in ch.children:
                    self._collect(parent, case, cases + ((ch, case),), out)
            elif isinstance(ch, CaseNode):  # pragma: no cover - cases sit under choices
                self._collect(parent, ch, cases, out)
            elif isinstance(ch, DataNode) and isinstance(ch, (ContainerNode, ListNode,
                                                               LeafNode, LeafListNode)):
                ns = self.ns_of_module[ch.ns]
                tag = f"{{{ns}}}{ch.name}"
                key_tags = ()
                if isinstance(ch, ListNode):
                    key_tags = tuple(f"{{{self.ns_of_module[m]}}}{k}" for k, m in ch.keys)
                prefix = self._prefix_of_ns.get(ns, ch.ns)
                out[tag] = NodeInfo(ch, tag, prefix, cases, key_tags, parent, ch.config,
                                    step=f"/{prefix}:{ch.name}")

    def child(self, info: NodeInfo, tag: str) -> NodeInfo | None:
        return self.children(info).get(tag)

    def knows_namespace(self, ns: str | None) -> bool:
        return ns in self._prefix_of_ns

    # -- paths ----------------------------------------------------------------------
    def step(self, info: NodeInfo, key_values: tuple[str, ...] = ()) -> str:
        """One XPath step for *info* (with key predicates for a list entry)."""
        text = info.step
        for ktag, kval in zip(info.key_tags, key_values):
            text += f"[{info.prefix}:{qname(ktag)[1]}={_xpath_literal(kval)}]"
        return text

    def path_namespaces(self, path: str) -> dict[str, str]:
        """The prefix declarations *path* needs on ``<error-path>``."""
        return {p: ns for ns, p in self._prefix_of_ns.items() if f"{p}:" in path}


def text_only(typ) -> bool:
    """Whether a leaf value of yangson type *typ* depends on its text alone
    (identityref and instance-identifier values also on the namespaces in
    scope, RFC 7950 sections 9.10.3 and 9.13.2)."""
    if isinstance(typ, (IdentityrefType, InstanceIdentifierType)):
        return False
    return not isinstance(typ, UnionType) or all(text_only(t) for t in typ.types)


def _xpath_literal(value: str) -> str:
    return f"'{value}'" if "'" not in value else f'"{value}"'


def index_steps(parent: etree._Element | None,
                info: NodeInfo) -> Steps[dict[tuple[str, ...], etree._Element]]:
    """The entries of list *info* under *parent* (``None``: no entries) by the
    tuple of their key values, a pause (:mod:`agent.datastore.steps`) every
    :data:`_INDEX_STEP` entries: the list may be long."""
    index: dict[tuple[str, ...], etree._Element] = {}
    if parent is None:
        return index
    if len(info.key_tags) == 1:  # the usual case: the key is the entry's first child
        found = (((key.text or "",), entry) for entry in parent.iterchildren(info.tag)
                 if (key := _first_key(entry, info.key_tags[0])) is not None)
    else:
        found = ((tuple(entry.findtext(k) or "" for k in info.key_tags), entry)
                 for entry in parent.iterchildren(info.tag))
    for count, (key, entry) in enumerate(found, 1):
        index[key] = entry
        if count % _INDEX_STEP == 0:
            yield
    return index


def _first_key(entry: etree._Element, tag: str) -> etree._Element | None:
    """The key element *tag* of a list entry: as a rule its first child (RFC 7950
    section 7.8.5 puts the keys first), else looked for among its children;
    ``None`` if it has none."""
    first = entry[0] if len(entry) else None
    return first if first is not None and first.tag == tag else entry.find(tag)


def new_child(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    """Append a child element; a namespace other than the parent's is declared
    as the child's default namespace (no generated ``ns0`` prefixes)."""
    ptag = parent.tag
    if tag[0] == "{" and ptag.startswith(tag[: tag.index("}") + 1]):
        el = etree.SubElement(parent, tag)  # the parent's namespace declaration applies
    else:
        el = etree.SubElement(parent, tag, nsmap={None: qname(tag)[0]})
    if text is not None:
        el.text = text
    return el
