"""YANG validation of configuration, mapped to NETCONF errors.

Two levels, as RFC 6241 section 8.3.5 and RFC 7950 section 8.3 split them:

* :func:`leaf_value` checks one leaf value against its type (lexical form,
  range, length, pattern, enumeration) while ``<edit-config>`` runs.
* :func:`validate_tree` loads a whole tree into yangson and validates every
  constraint (leafref ``require-instance``, mandatory, ``must``/``when``,
  unique, min/max-elements) for ``<validate>`` and ``<commit>``.

yangson is the only source of truth for the rules; this module only
translates its exceptions into :class:`RpcError` with the error-tags of RFC
7950 section 15 and an ``error-path`` in prefixed XPath form. Three memos
of yangson's own results (schema patterns, schema children, absolute leafref
targets within one run) make validation of large lists fast without
changing any outcome; tests/datastore/test_ds_validation_memo.py compares
them with yangson alone.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from lxml import etree
from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import (
    RawDataError,
    RawMemberError,
    RawTypeError,
    SemanticError,
    ValidationError,
    YangsonException,
    YangTypeError,
)
from yangson.datatype import IdentityrefType, LeafrefType, UnionType
from yangson.instance import ArrayEntry, InstanceNode, RootNode
from yangson.nodeset import NodeSet
from yangson.schemanode import CaseNode, ChoiceNode, InternalNode, LeafListNode, ListNode
from yangson.xpathast import LocationPath, Root, Step

from agent.datastore.schema import NodeInfo, SchemaMap, text_only
from agent.netconf.errors import RpcError


def _memoize_schema_patterns() -> None:
    """Performance: remember which member-name sets passed a node's schema
    pattern check.

    yangson checks the structure of every instance of an internal node with
    Brzozowski derivatives of the node's schema pattern (mandatory children,
    choice exclusivity, allowed members); for 1,000 list entries that is most
    of the validation time. Where none of the node's children carries a
    ``when`` (nor the node itself), the outcome depends only on the set of
    member names and the content type, so a passing set is remembered per
    schema node. Failures are always recomputed so that yangson raises its own
    error. Nothing else of yangson's validation is changed.
    """
    original = InternalNode._check_schema_pattern
    if getattr(original, "_cmp_agent_memo", False):
        return

    def static(node: InternalNode) -> bool:
        todo = list(node.children)
        while todo:
            child = todo.pop()
            if getattr(child, "when", None) is not None:
                return False
            if isinstance(child, (ChoiceNode, CaseNode)):
                todo.extend(child.children)
        return getattr(node, "when", None) is None

    def check(self, inst, ctype):
        memo = self.__dict__.get("_cmp_agent_pattern_memo")
        if memo is None:
            memo = self.__dict__["_cmp_agent_pattern_memo"] = (static(self), set())
        if not memo[0]:
            return original(self, inst, ctype)
        key = (frozenset(inst.value), ctype)
        if key not in memo[1]:
            original(self, inst, ctype)
            memo[1].add(key)

    check._cmp_agent_memo = True
    InternalNode._check_schema_pattern = check


_memoize_schema_patterns()


def _memoize_data_children() -> None:
    """Performance: remember yangson's schema look-up of a data child by name.

    ``get_data_child`` walks a node's children (through choices and cases)
    for every member of every instance that is parsed or validated. A data
    node is identified by its name and module under its parent (RFC 7950
    section 6.2.1), so a found child is remembered per (name, module); a miss
    is always recomputed (so nothing looked up while the schema was still
    being built can be remembered wrongly).
    """
    original = InternalNode.get_data_child
    if getattr(original, "_cmp_agent_memo", False):
        return

    def get_data_child(self, name, ns=None):
        memo = self.__dict__.get("_cmp_agent_child_memo")
        if memo is None:
            memo = self.__dict__["_cmp_agent_child_memo"] = {}
        key = (name, ns or self.ns)
        found = memo.get(key)
        if found is None:
            found = original(self, name, ns)
            if found is not None:
                memo[key] = found
        return found

    get_data_child._cmp_agent_memo = True
    InternalNode.get_data_child = get_data_child


_memoize_data_children()

#: leafref targets found so far in the validation run in progress (see below)
_LEAFREF_TARGETS: ContextVar[dict | None] = ContextVar("_LEAFREF_TARGETS", default=None)


def _context_free(expr) -> bool:
    """Whether a leafref path is absolute without predicates (``/a:x/a:y``):
    then it selects the same nodes from every node of the same tree."""
    if isinstance(expr, LocationPath):
        return _context_free(expr.left) and _context_free(expr.right)
    if isinstance(expr, Step):
        return not expr.predicates and expr.axis.name == "child"
    return isinstance(expr, Root)


def _memoize_leafref_targets() -> None:
    """Performance: evaluate an absolute leafref path once per validation run.

    yangson checks ``require-instance`` (RFC 7950 section 9.9) by evaluating
    the leafref's path from every referring leaf; for an absolute path
    without predicates that builds the same node-set every time (1,000
    ``cmp-session`` entries referring to ``/pki/entity/name`` cost 1,000
    evaluations, each visiting every sibling of the entities). During one
    :func:`validate_tree` (whose tree cannot change, yangson's instances are
    immutable) the node-set is computed once by yangson itself and its
    matches are returned as yangson's ``_deref`` would return them. Paths
    with predicates or relative steps, and any evaluation that fails, go to
    yangson unchanged.
    """
    original = LeafrefType._deref
    if getattr(original, "_cmp_agent_memo", False):
        return

    def _deref(self, node):
        run = _LEAFREF_TARGETS.get()
        if run is None:
            return original(self, node)
        targets = run.get(id(self))
        if targets is None:
            if not _context_free(self.path):
                return original(self, node)
            ns = self.path.evaluate(node)
            if not isinstance(ns, NodeSet):
                return original(self, node)
            targets = {}
            for target in ns:
                targets.setdefault(str(target), []).append(target)
            run[id(self)] = targets
        return list(targets.get(str(node), ()))

    _deref._cmp_agent_memo = True
    LeafrefType._deref = _deref


_memoize_leafref_targets()


def leaf_value(smap: SchemaMap, info: NodeInfo, elem: etree._Element, path: str,
               secret: bool = False) -> str | None:
    """The canonical text of *elem*'s value for leaf (or leaf-list) *info*.

    Raises ``invalid-value`` (RFC 6241 Appendix A) naming the leaf, the value
    (unless *secret*) and what the type expects.
    """
    sn = info.node
    typ = sn.type
    if len(elem):
        raise _leaf_error(smap, info, path, "has child elements; a leaf holds a single value",
                          tag="bad-element")
    text = elem.text or ""
    slot = (id(typ), text)
    known = smap.leaf_texts.get(slot)
    if known is not None:
        return known
    if _is_identityref(typ):
        value = typ.from_xml(elem)
    else:
        value = typ.parse_value(text)
    if value is None or value not in typ:
        reason = _reason(typ, text)
        shown = "the value" if secret else repr(text)
        raise _leaf_error(smap, info, path, f"{shown} is not valid for {sn.name}: {reason}")
    if typ.name in _PREFIXED_PATHS:
        return _respell_prefixes(smap, info, elem, path, typ.canonical_string(value))
    canonical = typ.canonical_string(value)
    if not secret and text_only(typ):  # secrets' clear text is not kept
        if len(smap.leaf_texts) >= _LEAF_TEXTS_MAX:
            smap.leaf_texts.clear()
        smap.leaf_texts[slot] = canonical
    return canonical


#: canonical texts remembered in :attr:`SchemaMap.leaf_texts`; cleared when this large
_LEAF_TEXTS_MAX = 10_000


#: string typedefs whose values name nodes with prefixes that the XML namespace
#: declarations in scope resolve (RFC 8341 section 3.2.3 ``node-instance-identifier``)
_PREFIXED_PATHS = frozenset({"node-instance-identifier"})
_QUOTED_OR_QNAME = re.compile(r"('[^']*'|\"[^\"]*\")|([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)")


def prefix_declarations(smap: SchemaMap, info: NodeInfo, text: str) -> dict[str, str] | None:
    """The namespace declarations a stored value of *info* needs for its prefixes
    to keep their meaning in replies and files; ``None`` for a type without prefixes."""
    return smap.path_namespaces(text) if info.node.type.name in _PREFIXED_PATHS else None


def _respell_prefixes(smap: SchemaMap, info: NodeInfo, elem: etree._Element, path: str,
                      text: str) -> str:
    """*text* with each prefix replaced by the prefix of its module in the model.

    The stored tree keeps no namespace declarations, so the client's own
    prefixes would lose their meaning; a prefix the client did not declare
    may be a module's prefix or name (:attr:`SchemaMap.ns_of_prefix`, built once
    per model)."""

    def respell(m: re.Match) -> str:
        if m.group(1) is not None:
            return m.group(1)  # a quoted key value, kept as it is
        prefix, local = m.group(2), m.group(3)
        ns = (elem.nsmap.get(prefix) or smap.ns_of_module.get(prefix)
              or smap.ns_of_prefix.get(prefix))
        if not smap.knows_namespace(ns):
            raise _leaf_error(smap, info, path,
                              f"the prefix {prefix!r} in {text!r} names no module of the agent;"
                              " declare it (xmlns:" f"{prefix}=\"namespace\") or use the"
                              " module's prefix or name")
        return f"{smap.model.prefixes[ns]}:{local}"

    return _QUOTED_OR_QNAME.sub(respell, text)


def _reason(typ, text: str) -> str:
    """What the type expects, without echoing the value (it may be secret)."""
    if isinstance(typ, UnionType) or not typ.error_message:
        return f"expected a valid {typ.name or typ.yang_type()}"
    reason = typ.error_message
    if reason == "not in range" and getattr(typ, "range", None) is not None:
        return f"not in range {typ.range}"
    if reason == "invalid length" and getattr(typ, "length", None) is not None:
        return f"length must be {typ.length}"
    if reason.startswith("pattern ") and reason.endswith(": " + text):
        return "does not match " + reason[: -len(": " + text)]
    return reason


def _is_identityref(typ) -> bool:
    if isinstance(typ, IdentityrefType):
        return True
    return isinstance(typ, UnionType) and any(_is_identityref(t) for t in typ.types)


def _leaf_error(smap: SchemaMap, info: NodeInfo, path: str, message: str,
                tag: str = "invalid-value") -> RpcError:
    return RpcError(tag, message, type="application", path=path,
                    path_namespaces=smap.path_namespaces(path),
                    info={"bad-element": info.node.name})


def load_instance(smap: SchemaMap, root: etree._Element) -> RootNode:
    """The yangson instance of the configuration under *root* (``<data>``)."""
    try:
        return smap.model.datamodel.from_xml(root)
    except RawMemberError as exc:
        path = _jptr_to_text(str(exc.path))
        raise RpcError("unknown-element", f"no such node in the model: {path}",
                       info={"bad-element": path.rsplit("/", 1)[-1]}) from None
    except RawTypeError as exc:
        path = _jptr_to_text(str(exc.path))
        raise RpcError("invalid-value", f"invalid value at {path}: {exc.message}",
                       info={"bad-element": path.rsplit("/", 1)[-1]}) from None
    except (RawDataError, YangsonException) as exc:
        raise RpcError("invalid-value", f"configuration not loadable: {exc}") from None


def validate_tree(smap: SchemaMap, root: etree._Element) -> RootNode:
    """Full YANG validation of a configuration tree; returns the instance."""
    inst = load_instance(smap, root)
    token = _LEAFREF_TARGETS.set({})
    try:
        inst.validate(ValidationScope.all, ContentType.config)
    except ValidationError as exc:
        raise validation_error(smap, exc) from None
    finally:
        _LEAFREF_TARGETS.reset(token)
    return inst


#: yangson's error tags -> (NETCONF error-tag, error-app-tag) per RFC 7950 section 15
_TAGS: dict[str, tuple[str, str | None]] = {
    "instance-required": ("data-missing", "instance-required"),
    "missing-data": ("data-missing", None),
    "too-few-elements": ("operation-failed", "too-few-elements"),
    "too-many-elements": ("operation-failed", "too-many-elements"),
    "non-unique-key": ("operation-failed", "data-not-unique"),
    "repeated-leaf-list-value": ("operation-failed", "data-not-unique"),
    "member-not-allowed": ("unknown-element", None),
    "config member-not-allowed": ("unknown-element", None),
}


def validation_error(smap: SchemaMap, exc: ValidationError) -> RpcError:
    """One yangson ValidationError as an RpcError with error-path."""
    path = instance_xpath(smap, exc.instance)
    tag_text = exc.tag or ""
    if tag_text.startswith("data-not-unique"):
        tag, app_tag = "operation-failed", "data-not-unique"
    elif isinstance(exc, YangTypeError):
        tag, app_tag = "invalid-value", None
    elif tag_text in _TAGS:
        tag, app_tag = _TAGS[tag_text]
    elif isinstance(exc, SemanticError):  # must (RFC 7950 section 15.4)
        tag, app_tag = "operation-failed", (tag_text or "must-violation")
        detail = " ".join((exc.message or "").split())
        return RpcError(tag, detail or f"a must condition is false at {path}", path=path,
                        app_tag=app_tag, path_namespaces=smap.path_namespaces(path))
    else:
        tag, app_tag = "invalid-value", None
    message = _message(tag_text, " ".join((exc.message or "").split()) or None, path)
    if tag == "unknown-element" and exc.message:
        module, _, local = exc.message.rpartition(":")
        module = module or exc.instance.schema_node.ns
        prefix = smap.model.prefixes.get(smap.ns_of_module.get(module, ""), module)
        path = f"{path}/{prefix}:{local}"
    return RpcError(tag, message, type="application", path=path or "/", app_tag=app_tag,
                    path_namespaces=smap.path_namespaces(path))


def _message(tag: str, detail: str | None, path: str) -> str:
    if tag == "instance-required":
        return (f"{path} refers to an instance that does not exist; create the referenced "
                "entry first or correct the reference")
    if tag == "missing-data":
        return f"mandatory data missing under {path or '/'}: {detail}"
    if tag in ("member-not-allowed", "config member-not-allowed"):
        return f"{detail!r} is not allowed under {path or '/'} (when condition false or not config)"
    if detail:
        return f"{path}: {detail}"
    return f"{path}: {tag}"


def instance_xpath(smap: SchemaMap, inst: InstanceNode) -> str:
    """Prefixed XPath of a yangson instance, e.g.
    ``/pki:pki/pki:cmp-session[pki:name='s1']/pki:entity``."""
    steps: list[str] = []
    pending = ""
    node = inst
    prefixes = smap.model.prefixes
    ns_of = smap.ns_of_module
    while node is not None and node.parinst is not None:
        sn = node.schema_node
        pfx = prefixes.get(ns_of.get(sn.ns, ""), sn.ns)
        if isinstance(node, ArrayEntry):
            if isinstance(sn, ListNode):
                pending = ""
                for kname, kmod in sn.keys:
                    kpfx = prefixes.get(ns_of.get(kmod, ""), kmod)
                    iname = kname if kmod == sn.ns else f"{kmod}:{kname}"
                    try:
                        kval = str(node[iname])
                    except YangsonException:
                        kval = "?"
                    pending += f"[{kpfx}:{kname}={_lit(kval)}]"
            elif isinstance(sn, LeafListNode):
                pending = f"[.={_lit(str(node))}]"
        else:
            steps.append(f"/{pfx}:{sn.name}{pending}")
            pending = ""
        node = node.parinst
    return "".join(reversed(steps))


def _lit(value: str) -> str:
    return f"'{value}'" if "'" not in value else f'"{value}"'


def _jptr_to_text(jptr: str) -> str:
    return jptr or "/"
