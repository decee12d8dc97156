"""A fast check that a configuration tree is valid, for ``<commit>``.

Full validation (:func:`agent.datastore.validation.validate_tree`) loads the
whole tree into yangson instances and validates every node through them; for
1,000 ``cmp-session`` entries that was most of a commit. :class:`QuickCheck`
walks the lxml tree itself with plans compiled once per schema node from the
same yangson schema, and checks what RFC 7950 section 8 asks of a
configuration: every element a config data node, no single node twice, leaf
values of their type (section 9), mandatory nodes and choices (sections
7.6.5, 7.9.4), one case per choice (7.9.2), min/max-elements (7.7.5),
unique list keys and leaf-list values (7.8.2, 7.7), ``when`` (7.21.5) and
``must`` (7.5.3) through libxml2's XPath 1.0 on running's report-all view
(the accessible tree of section 6.4.1 holds defaults), and leafref
``require-instance`` (9.9.3).

It only ever answers "valid" or "ask yangson": :meth:`QuickCheck.valid`
returns True only for a tree that full validation accepts; anything it finds
wrong, and anything it does not handle (``unique``, identityref and
instance-identifier leaves, values not in their canonical form, XPath beyond
a small set of operators and comparisons yangson evaluates otherwise than
XPath 1.0, nested choices, ``when`` on lists, choices and cases, mandatory
nodes under a ``when``), returns False, and the caller then runs ``validate_tree``, whose
error is the rpc-error. So the errors are yangson's, exactly; the quick check
only spares yangson the trees that are valid, which is what a commit almost
always holds. tests/datastore/test_ds_quickcheck.py runs both on many trees,
valid and not, and checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from yangson.datatype import LeafrefType, LinkType, StringType, UnionType
from yangson.schemanode import (
    CaseNode,
    ChoiceNode,
    ContainerNode,
    LeafListNode,
    LeafNode,
    ListNode,
)
from yangson.xpathast import (
    AndExpr,
    Axis,
    EqualityExpr,
    Literal,
    LocationPath,
    Number,
    OrExpr,
    RelationalExpr,
    Root,
    Step,
)

from agent.datastore.schema import NodeInfo, SchemaMap, text_only
from agent.datastore.steps import Steps, run_steps

__all__ = ["QuickCheck"]

#: leaf-value verdicts remembered per (type, text); cleared when this large
_VERDICTS_MAX = 100_000


@dataclass
class _Plan:
    """What :meth:`QuickCheck._walk` checks under one schema node."""

    #: False: a construct the quick check leaves to yangson (the walk answers False)
    handled: bool = True
    #: tags that must be present (mandatory config leaves and non-presence containers)
    required: list[str] = field(default_factory=list)
    #: per choice: (mandatory, [(tags of a case, tags required when that case is active)])
    choices: list[tuple[bool, list[tuple[frozenset[str], list[str]]]]] = \
        field(default_factory=list)
    #: lists and leaf-lists: tag -> (min-elements, max-elements or None)
    counts: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    #: the config data nodes allowed here: tag -> (schema, kind, compiled XPath tests or
    #: None); each test must be true for a present node: when, then musts; a test is None
    #: for an expression the quick check does not translate
    nodes: dict[str, tuple[NodeInfo, str, list[etree.XPath | None] | None]] = \
        field(default_factory=dict)
    #: a list's keys: (tag, yangson type) in key order
    keys: list[tuple[str, object]] = field(default_factory=list)


class _Untranslatable(Exception):
    pass


#: kinds of :attr:`_Plan.nodes` (compared by identity)
_LEAF, _LEAF_LIST, _LIST, _CONTAINER = "leaf", "leaf-list", "list", "container"


def _kind(sn) -> str:
    if isinstance(sn, LeafNode):
        return _LEAF
    if isinstance(sn, LeafListNode):
        return _LEAF_LIST
    return _LIST if isinstance(sn, ListNode) else _CONTAINER


class QuickCheck:
    """Checks configuration trees against the schema behind *smap*; for one
    thread (compiled XPath is not shared between threads)."""

    def __init__(self, smap: SchemaMap):
        self.smap = smap
        self._plans: dict[int, _Plan] = {}
        self._verdicts: dict[tuple[int, str | None], bool] = {}
        self._paths: dict[int, etree.XPath | None] = {}
        self._prefixes: dict[str, str] = {}  # module name -> XPath prefix used
        #: whether the view's defaults are the accessible tree's: Defaults ignores
        #: ``when``, so a default under a ``when`` leaves XPath to yangson
        self._xpath_on_view = not _conditional_default(smap.model.datamodel.schema)

    # -- the check ------------------------------------------------------------------------
    def valid(self, tree: etree._Element, view: etree._Element) -> bool:
        """True only if full validation accepts *tree* (a ``<data>`` root);
        False means "not known": run full validation. *view* is *tree* with
        defaults filled in (:class:`~agent.datastore.defaults.Defaults`,
        report-all), whose every element keeps the children of its element in
        *tree* first, in the same order."""
        return run_steps(self.steps(tree, view))

    def steps(self, tree: etree._Element, view: etree._Element) -> Steps[bool]:
        """:meth:`valid` in steps: a generator that pauses after each list
        entry (so that a caller on the event loop can serve others between
        steps) and returns the verdict. Neither tree may change meanwhile."""
        return self._walk(tree, view, self.smap.root, view, {})

    def _walk(self, el: etree._Element, vel: etree._Element, info: NodeInfo,
              root: etree._Element, targets: dict) -> Steps[bool]:
        plan = self._plan(info)
        if not plan.handled:
            return False
        nodes = plan.nodes
        seen: dict[str, int] = {}
        keys: dict[str, set] = {}
        if len(vel) < len(el):
            return False
        for child, vchild in zip(el, vel):
            tag = child.tag
            # None: a comment or processing instruction (yangson decides), or not a
            # config data node here
            node = nodes.get(tag)
            if node is None:
                return False
            cinfo, kind, tests = node
            count = seen.get(tag, 0)
            seen[tag] = count + 1
            # the view's element is compared with the tree's where it is used (a test
            # runs on it, the walk goes down it): it is the same node with defaults
            if kind is _LEAF:
                if count or not self._leaf(cinfo, child, root, targets):
                    return False
            elif kind is _LEAF_LIST:
                if not self._leaf(cinfo, child, root, targets):
                    return False
                values = keys.setdefault(tag, set())
                value = _identity(cinfo.node.type, child)
                if value in values:
                    return False
                values.add(value)
            elif kind is _LIST:
                key = self._key(cinfo, child)
                if key is None or vchild.tag != tag:
                    return False
                entries = keys.setdefault(tag, set())
                if key in entries:
                    return False
                entries.add(key)
                if not (yield from self._walk(child, vchild, cinfo, root, targets)):
                    return False
                yield
            else:  # container
                if count or vchild.tag != tag or not (
                        yield from self._walk(child, vchild, cinfo, root, targets)):
                    return False
            if tests is not None:
                if kind is not _LIST and kind is not _CONTAINER and vchild.tag != tag:
                    return False
                for test in tests:
                    if test is None or not test(vchild):
                        return False
        for tag in plan.required:
            if tag not in seen:
                return False
        for tag, (low, high) in plan.counts.items():
            count = seen.get(tag, 0)
            if count < low or (high is not None and count > high):
                return False
        for mandatory, cases in plan.choices:
            active = [required for tags, required in cases if not tags.isdisjoint(seen)]
            if len(active) > 1 or (mandatory and not active):
                return False
            if active and any(tag not in seen for tag in active[0]):
                return False
        return True

    def _key(self, info: NodeInfo, entry: etree._Element) -> tuple | None:
        """The entry's key as yangson compares keys (values, not texts)."""
        key = []
        for tag, typ in self._plan(info).keys:
            leaf = next(entry.iterchildren(tag), None)  # find()'s first, without ElementPath
            if leaf is None:
                return None
            key.append(_identity(typ, leaf))
        return tuple(key)

    def _leaf(self, info: NodeInfo, el: etree._Element, root: etree._Element,
              targets: dict) -> bool:
        if len(el):
            return False
        typ = info.node.type
        slot = (id(typ), el.text)
        verdict = self._verdicts.get(slot)
        if verdict is None:
            verdict = _value_ok(typ, el)
            if len(self._verdicts) >= _VERDICTS_MAX:
                self._verdicts.clear()
            self._verdicts[slot] = verdict
        if not verdict:
            return False
        if isinstance(typ, LeafrefType) and typ.require_instance:
            found = targets.get(id(typ))
            if found is None:
                path = self._leafref_path(typ)
                if path is None:
                    return False
                found = targets[id(typ)] = frozenset(t.text for t in path(root))
            return el.text in found
        return True

    # -- plans --------------------------------------------------------------------------
    def _plan(self, info: NodeInfo) -> _Plan:
        plan = self._plans.get(id(info))
        if plan is None:
            plan = self._plans[id(info)] = self._make_plan(info)
        return plan

    def _make_plan(self, info: NodeInfo) -> _Plan:
        plan = _Plan()
        sn = info.node
        plan.keys = [(tag, self.smap.child(info, tag).node.type) for tag in info.key_tags]
        if isinstance(sn, ListNode) and sn.unique:
            plan.handled = False
            return plan
        choices: dict[int, tuple[ChoiceNode, dict[int, tuple[CaseNode, set, list]]]] = {}
        for tag, child in self.smap.children(info).items():
            csn = child.node
            if not child.config:
                continue
            if len(child.cases) > 1 or any(ch.when or case.when for ch, case in child.cases):
                plan.handled = False  # nested choices, conditional choices or cases
                return plan
            # as yangson's _pattern_entry: required in a configuration
            mandatory = csn.mandatory and (csn.mandatory_config if isinstance(csn, ContainerNode)
                                           else not isinstance(csn, (ListNode, LeafListNode)))
            if mandatory and csn.when:
                plan.handled = False
                return plan
            if child.cases:
                choice, case = child.cases[0]
                _, per_case = choices.setdefault(id(choice), (choice, {}))
                _, tags, required = per_case.setdefault(id(case), (case, set(), []))
                tags.add(tag)
                if mandatory:
                    required.append(tag)
            elif mandatory:
                plan.required.append(tag)
            if isinstance(csn, (ListNode, LeafListNode)):
                plan.counts[tag] = (csn.min_elements, csn.max_elements)
            tests = []
            if csn.when:
                if isinstance(csn, (ListNode, LeafListNode)):
                    plan.handled = False
                    return plan
                tests.append(self._xpath(csn.when, csn, when=True))
            tests.extend(self._xpath(m.expression, csn) for m in csn.must)
            plan.nodes[tag] = (child, _kind(csn), tests or None)
        for choice, per_case in choices.values():
            if len(per_case) != len(choice.children):  # a case without config data nodes
                plan.handled = False
                return plan
            plan.choices.append((choice.mandatory, [(frozenset(tags), required)
                                                    for _, tags, required in per_case.values()]))
        return plan

    # -- XPath --------------------------------------------------------------------------
    def _xpath(self, expr, context, when: bool = False) -> etree.XPath | None:
        """*expr* (yangson's AST of a YANG XPath expression on schema node
        *context*) compiled for lxml, as a boolean; None if it uses more than
        :meth:`_translate` knows or compares what yangson compares otherwise
        than XPath 1.0 (:func:`_comparable`).

        yangson evaluates a ``when`` with a stand-in for the node (no value, no
        children), so there paths must start at the root or the parent."""
        if not self._xpath_on_view:
            return None
        try:
            _comparable(expr, context)
            text = self._translate(expr, when)
        except _Untranslatable:
            return None
        return etree.XPath(f"boolean({text})", namespaces=self._namespaces())

    def _leafref_path(self, typ: LeafrefType) -> etree.XPath | None:
        if id(typ) not in self._paths:
            path = typ.path
            compiled = None
            if isinstance(path, LocationPath) and _absolute(path):
                try:
                    compiled = etree.XPath(self._translate(path, False),
                                           namespaces=self._namespaces())
                except _Untranslatable:
                    compiled = None
            self._paths[id(typ)] = compiled
        return self._paths[id(typ)]

    def _namespaces(self) -> dict[str, str]:
        return {prefix: self.smap.ns_of_module[module]
                for module, prefix in self._prefixes.items()}

    def _prefix(self, module: str) -> str:
        if module not in self.smap.ns_of_module:
            raise _Untranslatable(module)
        return self._prefixes.setdefault(module, f"m{len(self._prefixes)}")

    def _translate(self, expr, when: bool, head: bool = True) -> str:
        """XPath 1.0 text for libxml2 with the same meaning on the view as
        yangson's on its instance (the data tree's root is ``<data>``); *head*:
        *expr* starts a location path."""
        tr = lambda e: self._translate(e, when)  # noqa: E731
        if isinstance(expr, OrExpr):
            return f"({tr(expr.left)}) or ({tr(expr.right)})"
        if isinstance(expr, AndExpr):
            return f"({tr(expr.left)}) and ({tr(expr.right)})"
        if isinstance(expr, EqualityExpr):
            return f"({tr(expr.left)}) {'!=' if expr.negate else '='} ({tr(expr.right)})"
        if isinstance(expr, RelationalExpr):
            op = ("<" if expr.less else ">") + ("=" if expr.equal else "")
            return f"({tr(expr.left)}) {op} ({tr(expr.right)})"
        if isinstance(expr, Literal):
            if '"' not in expr.value:
                return f'"{expr.value}"'
            if "'" not in expr.value:
                return f"'{expr.value}'"
            raise _Untranslatable(expr)
        if isinstance(expr, Number):
            return repr(float(expr.value))
        if isinstance(expr, LocationPath):
            left = "/*" if isinstance(expr.left, Root) else self._translate(expr.left, when, head)
            return f"{left}/{self._translate(expr.right, when, False)}"
        if isinstance(expr, Step) and not expr.predicates:
            if expr.qname is None:
                if expr.axis == Axis.parent:
                    return ".."
                if expr.axis == Axis.self and not (when and head):
                    return "."
            elif expr.axis == Axis.child and expr.qname and expr.qname[1] and not (when and head):
                return f"{self._prefix(expr.qname[1])}:{expr.qname[0]}"
        raise _Untranslatable(expr)


def _comparable(expr, context) -> None:
    """Raises :class:`_Untranslatable` unless each comparison in *expr* means
    the same in yangson as in XPath 1.0 (section 3.4) on the view.

    yangson's node-sets compare otherwise: they skip containers and list
    entries (whose XPath string-value is their text), compare a leaf's
    value, not its text, with a number or boolean (a boolean leaf equals
    1), and ``<`` and ``>`` between two strings are Python's. What agrees:
    ``=`` and ``!=`` between leaves (their canonical texts, which
    :func:`_value_ok` requires) and a string literal, and any comparison
    between numbers. Function calls, which yangson's parser wraps in filter
    expressions, are never translated: they go to yangson."""
    if isinstance(expr, (EqualityExpr, RelationalExpr)):
        kinds = {_operand(expr.left, context), _operand(expr.right, context)}
        if not (kinds == {"number"} or (isinstance(expr, EqualityExpr)
                                        and kinds == {"leaves", "string"})):
            raise _Untranslatable(expr)
    for sub in (getattr(expr, "left", None), getattr(expr, "right", None)):
        if sub is not None and not isinstance(sub, (LocationPath, Step)):
            _comparable(sub, context)


def _operand(expr, context) -> str | None:
    """What a comparison operand is: "string", "number", "leaves" (a path
    selecting leaves or leaf-list entries) or None (anything else)."""
    if isinstance(expr, Literal):
        return "string"
    if isinstance(expr, Number):
        return "number"
    if isinstance(expr, (LocationPath, Step, Root)):
        target = _target(expr, context)
        return "leaves" if isinstance(target, (LeafNode, LeafListNode)) else None
    return None


def _target(expr, context):
    """The schema node that path *expr* selects from *context*, or None."""
    if isinstance(expr, Root):
        return context.schema_root()
    if isinstance(expr, LocationPath):
        left = _target(expr.left, context)
        return None if left is None else _target(expr.right, left)
    if not isinstance(expr, Step) or expr.predicates:
        return None
    if expr.qname is None:
        if expr.axis == Axis.self:
            return context
        return context.data_parent() if expr.axis == Axis.parent else None
    if expr.axis != Axis.child or not expr.qname or not hasattr(context, "get_data_child"):
        return None
    return context.get_data_child(*expr.qname)


def _absolute(path) -> bool:
    """A path ``/a:x/a:y`` of child steps without predicates."""
    if isinstance(path, LocationPath):
        return _absolute(path.left) and _absolute(path.right)
    if isinstance(path, Step):
        return not path.predicates and path.axis == Axis.child and path.qname is not None
    return isinstance(path, Root)


def _conditional_default(sn, conditional: bool = False) -> bool:
    """Whether a config leaf with a default sits under a ``when`` (its own or
    an ancestor's, cases and choices included)."""
    conditional = conditional or sn.when is not None
    if isinstance(sn, LeafNode):
        return conditional and sn.config and sn.default is not None
    return any(_conditional_default(child, conditional)
               for child in getattr(sn, "children", ()))


def _identity(typ, el: etree._Element):
    """What yangson compares for list keys and leaf-list values: the value."""
    return el.text if type(typ) is StringType else typ.from_xml(el)


def _unhandled_type(typ) -> bool:
    if not text_only(typ):
        return True
    return isinstance(typ, UnionType) and any(isinstance(t, LinkType) or _unhandled_type(t)
                                              for t in typ.types)


def _value_ok(typ, el: etree._Element) -> bool:
    """Whether yangson loads and accepts the value (its type check, as in
    ``TerminalNode._validate``), for types whose value depends on the text
    alone, written in its canonical form (RFC 7950 section 9.1): yangson's
    XPath and leafref targets compare canonical texts (``str`` of an
    instance), the compiled XPath and leafref paths the texts as written, so
    any other spelling (``+5``, `` 5``, ``05``) goes to yangson."""
    if _unhandled_type(typ):
        return False
    value = typ.from_xml(el)
    return (value is not None and value in typ
            and typ.canonical_string(value) == (el.text or ""))
