"""The YANG data model the agent implements, and how it describes itself.

* :class:`Model` builds one yangson :class:`~yangson.DataModel` from the
  package's own modules (``yang/`` at the top of the repository, reached as the package data
  ``agent/yang/`` through a symbolic link, found beside the package's
  ``__init__``) and pyang's installed IETF modules (never
  copied into the repository). The yangson YANG library it needs is generated
  here from :data:`MODULES`.
* RFC 8525 (YANG library) and RFC 6022 (``netconf-state/schemas`` and
  ``<get-schema>``) views of the same module list let a client discover and
  fetch every module the agent uses.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import sysconfig
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from lxml import etree
from yangson import DataModel
from yangson.schemanode import AnyContentNode, InternalNode

from agent.modelcache import ModelCache
from agent.netconf.errors import RpcError
from agent.netconf.filternames import NameTree


def _package_yang_dir() -> Path:
    """The package's own modules, installed with it as package data (``agent/yang``, a link to the
    repository's ``yang/``; the wheel carries the files themselves).

    yangson reads modules from directories: the package must be installed as
    files (a wheel or an editable install), not imported from a zip archive. The
    directory is the one ``importlib.resources.files("agent")`` names for such a package
    (its ``__init__``'s directory), found without importing importlib.resources, its
    readers and zipfile (issue 11: start-up time).
    """
    import agent

    directory = Path(agent.__file__).parent / "yang"
    if not isinstance(directory, Path) or not (directory / "cmp-agent-pki.yang").is_file():
        raise FileNotFoundError(f"the YANG module cmp-agent-pki.yang is not in {directory}:"
                                " reinstall cmp-agent (from a wheel or the source tree)")
    return directory


YANG_DIR: Path = _package_yang_dir()
YANGLIB_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NCM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"


def _find_ietf_dir() -> Path:
    """pyang's installed IETF modules: ``<prefix>/share/yang/modules/ietf``.

    pyang installs them as data files under the environment's prefix; if that
    is not where they are (e.g. a user install), look next to pyang's package.
    """
    candidates = [Path(sys.prefix) / "share/yang/modules/ietf",
                  Path(sysconfig.get_path("data")) / "share/yang/modules/ietf"]
    try:
        import pyang

        pkg = Path(pyang.__file__).resolve().parent
        candidates += [p / "share/yang/modules/ietf" for p in pkg.parents]
        candidates.append(pkg / "modules" / "ietf")
    except ImportError:  # pragma: no cover - pyang is a dependency
        pass
    for cand in candidates:
        if (cand / "ietf-yang-types.yang").is_file():
            return cand
    raise FileNotFoundError(
        "pyang's IETF YANG modules not found (looked in "
        + ", ".join(str(c) for c in candidates) + "); reinstall pyang"
    )


IETF_DIR: Path = _find_ietf_dir()

#: ietf-netconf features matching the capabilities the agent advertises
#: (RFC 6241 section 8): candidate, confirmed-commit, rollback-on-error,
#: validate, startup, xpath. Not writable-running, not url.
NETCONF_FEATURES = ("candidate", "confirmed-commit", "rollback-on-error", "validate",
                    "startup", "xpath")

#: (name, conformance, features) of every module in the agent's YANG library.
#: "import" modules only contribute types, groupings, identities, extensions.
MODULES: tuple[tuple[str, Literal["implement", "import"], tuple[str, ...]], ...] = (
    ("cmp-agent-pki", "implement", ()),
    ("ietf-netconf", "implement", NETCONF_FEATURES),
    ("ietf-netconf-with-defaults", "implement", ()),
    ("ietf-netconf-monitoring", "implement", ()),
    ("ietf-yang-library", "implement", ()),
    ("ietf-netconf-acm", "implement", ()),
    ("ietf-netconf-notifications", "implement", ()),
    ("ietf-inet-types", "import", ()),
    ("ietf-yang-types", "import", ()),
    ("ietf-datastores", "import", ()),
)

_HEADER_RE = {
    "namespace": re.compile(r"^\s*namespace\s+\"?([^\";\s]+)\"?\s*;", re.M),
    "prefix": re.compile(r"^\s*prefix\s+\"?([\w.-]+)\"?\s*;", re.M),
    "revision": re.compile(r"^\s*revision\s+\"?(\d{4}-\d{2}-\d{2})\"?", re.M),
}


@dataclass(frozen=True)
class ModuleInfo:
    """One module of the YANG library (RFC 8525 section 3)."""

    name: str
    revision: str
    namespace: str
    prefix: str
    path: Path
    features: tuple[str, ...]
    conformance: Literal["implement", "import"]
    #: SHA-256 (hex) of the module's text, read once at start (the compiled model's
    #: cache key and running.xml's validation stamp depend on it)
    text_sha256: str


def _module_info(name: str, conformance: Literal["implement", "import"],
                 features: tuple[str, ...]) -> ModuleInfo:
    for directory in (YANG_DIR, IETF_DIR, IETF_DIR.parent / "iana"):
        path = directory / f"{name}.yang"
        if path.is_file():
            break
    else:
        raise FileNotFoundError(f"YANG module {name} not found in {YANG_DIR} or {IETF_DIR}")
    data = path.read_bytes()
    text = data.decode("utf-8")
    header = {}
    for key, rx in _HEADER_RE.items():
        match = rx.search(text)
        if match is None:
            raise ValueError(f"{path}: no {key} statement")
        header[key] = match.group(1)
    return ModuleInfo(name=name, revision=header["revision"], namespace=header["namespace"],
                      prefix=header["prefix"], path=path, features=features,
                      conformance=conformance, text_sha256=hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class NacmAnnotations:
    """The model's RFC 8341 section 3.5.1 extensions.

    *data* maps a data node's path (Clark tags from the top, choices and cases
    left out) to ``"all"`` (default-deny-all) or ``"write"`` (default-deny-write);
    *operations* and *notifications* hold (module, name) of the RPCs and
    notifications marked default-deny-all.
    """

    data: dict[tuple[str, ...], str]
    leaves: frozenset[tuple[str, ...]]
    operations: frozenset[tuple[str, str]]
    notifications: frozenset[tuple[str, str]]


#: RFC 6241 section 10 (the ietf-netconf module in the RFC) marks these two
#: operations nacm:default-deny-all; the copy pyang installs lacks the marks.
NETCONF_DENY_ALL_OPERATIONS = frozenset({("ietf-netconf", "delete-config"),
                                         ("ietf-netconf", "kill-session")})


def _nacm_annotations(model: "Model") -> NacmAnnotations:
    data: dict[tuple[str, ...], str] = {}
    leaves: set[tuple[str, ...]] = set()
    operations: set[tuple[str, str]] = set(NETCONF_DENY_ALL_OPERATIONS)
    notifications: set[tuple[str, str]] = set()
    for mdata in model.datamodel.schema_data.modules.values():
        top, ns = mdata.statement, mdata.xml_namespace
        if top is None or ns is None:
            continue
        groupings = {g.argument: g for g in _all_substatements(top) if g.keyword == "grouping"}

        def walk(stmt, path: tuple[str, ...]) -> None:
            for sub in stmt.substatements:
                if sub.prefix is not None:
                    continue  # an extension statement
                kw = sub.keyword
                if kw in ("container", "list", "leaf", "leaf-list"):
                    here = path + (f"{{{ns}}}{sub.argument}",)
                    level = _deny_level(sub)
                    if level:
                        data[here] = level
                    if kw == "leaf":
                        leaves.add(here)
                    walk(sub, here)
                elif kw in ("choice", "case"):
                    walk(sub, path)
                elif kw == "uses" and ":" not in sub.argument and sub.argument in groupings:
                    walk(groupings[sub.argument], path)

        walk(top, ())
        for sub in top.substatements:
            if sub.keyword in ("rpc", "notification") and _deny_level(sub) == "all":
                (operations if sub.keyword == "rpc" else notifications).add(
                    (mdata.main_module[0], sub.argument))
    return NacmAnnotations(data, frozenset(leaves), frozenset(operations),
                           frozenset(notifications))


def _deny_level(stmt) -> str | None:
    kws = {s.keyword for s in stmt.substatements if s.prefix is not None}
    if "default-deny-all" in kws:
        return "all"
    return "write" if "default-deny-write" in kws else None


def _all_substatements(stmt):
    for sub in stmt.substatements:
        yield sub
        yield from _all_substatements(sub)


class Model:
    """The yangson DataModel of everything the agent implements + its YANG library."""

    def __init__(self, modules: list[ModuleInfo], datamodel: DataModel | None = None):
        """*datamodel*: compiled from *modules* before (:mod:`agent.modelcache`); by
        default they are compiled now."""
        self.modules = modules
        self._by_name = {m.name: m for m in modules}
        if datamodel is None:
            datamodel = DataModel(json.dumps(self.yangson_library()),
                                  [str(d) for d in dict.fromkeys(m.path.parent for m in modules)])
        self.datamodel: DataModel = datamodel
        self.prefixes: dict[str, str] = {m.namespace: m.prefix for m in modules}
        #: (namespace, local name) of config leaves marked nacm:default-deny-all
        #: (RFC 8341 section 3.5.1.1): they hold secrets.
        self.secret_leaves: frozenset[tuple[str, str]] = self._find_secret_leaves()

    @classmethod
    def load(cls, cache: ModelCache | None = None) -> "Model":
        """Build the model from :data:`MODULES`, from *cache* if it holds them compiled
        (else the caller may :meth:`ModelCache.write` the result there)."""
        modules = [_module_info(*entry) for entry in MODULES]
        return cls(modules, cache.read(modules) if cache is not None else None)

    @cached_property
    def name_tree(self) -> NameTree:
        """The names of every data node, for checking filters (:mod:`agent.netconf.filternames`)."""
        namespaces = {m.name: m.namespace for m in self.modules}

        def build(node) -> NameTree:
            tree = NameTree(opaque=isinstance(node, AnyContentNode))
            for child in node.data_children() if isinstance(node, InternalNode) else ():
                tree.children.setdefault(child.name, []).append((namespaces[child.ns], build(child)))
            return tree

        return build(self.datamodel.schema)

    # -- yangson ------------------------------------------------------------------
    def yangson_library(self) -> dict:
        """RFC 7895 ``modules-state`` as yangson wants it (it predates RFC 8525)."""
        module_list = []
        for m in self.modules:
            entry: dict = {"name": m.name, "revision": m.revision, "namespace": m.namespace,
                           "conformance-type": m.conformance}
            if m.features:
                entry["feature"] = list(m.features)
            module_list.append(entry)
        return {"ietf-yang-library:modules-state": {"module-set-id": self.content_id,
                                                     "module": module_list}}

    @cached_property
    def schema_digest(self) -> str:
        """A digest of the YANG texts themselves (changes with any edit of a module)."""
        digest = hashlib.sha256()
        for m in self.modules:
            digest.update(m.text_sha256.encode())
        return digest.hexdigest()

    @cached_property
    def content_id(self) -> str:
        """A digest of module names, revisions and features (RFC 8525 content-id)."""
        digest = hashlib.sha256()
        for m in self.modules:
            digest.update(f"{m.name}@{m.revision}:{m.conformance}:{','.join(m.features)};".encode())
        return digest.hexdigest()[:16]

    @cached_property
    def nacm_annotations(self) -> "NacmAnnotations":
        """Where the model says ``nacm:default-deny-all`` / ``default-deny-write``
        (RFC 8341 section 3.5.1)."""
        return _nacm_annotations(self)

    def _find_secret_leaves(self) -> frozenset[tuple[str, str]]:
        return frozenset((etree.QName(path[-1]).namespace, etree.QName(path[-1]).localname)
                         for path, level in self.nacm_annotations.data.items()
                         if level == "all" and path in self.nacm_annotations.leaves)

    # -- get-schema (RFC 6022 section 3.1) ------------------------------------------
    def module_text(self, name: str, revision: str | None = None) -> str:
        """The YANG text of *name* (at *revision*, if given) for ``<get-schema>``."""
        info = self._by_name.get(name)
        if info is None or (revision and revision != info.revision):
            wanted = f"{name}@{revision}" if revision else name
            raise RpcError(
                "invalid-value",
                f"no schema {wanted!r}; the agent has: "
                + ", ".join(f"{m.name}@{m.revision}" for m in self.modules),
                type="application",
            )
        return info.path.read_text(encoding="utf-8")

    # -- RFC 8525 -----------------------------------------------------------------
    def yang_library_xml(self, content_id: str | None = None) -> etree._Element:
        """``<yang-library>`` (RFC 8525 section 4): one module set, one schema,
        the running, candidate and startup datastores."""
        y = lambda n: f"{{{YANGLIB_NS}}}{n}"  # noqa: E731
        lib = etree.Element(y("yang-library"), nsmap={None: YANGLIB_NS, "ds": DS_NS})
        mset = etree.SubElement(lib, y("module-set"))
        etree.SubElement(mset, y("name")).text = "all"
        for m in self.modules:
            tag = "module" if m.conformance == "implement" else "import-only-module"
            el = etree.SubElement(mset, y(tag))
            etree.SubElement(el, y("name")).text = m.name
            etree.SubElement(el, y("revision")).text = m.revision
            etree.SubElement(el, y("namespace")).text = m.namespace
            for feature in m.features:
                etree.SubElement(el, y("feature")).text = feature
        schema = etree.SubElement(lib, y("schema"))
        etree.SubElement(schema, y("name")).text = "complete"
        etree.SubElement(schema, y("module-set")).text = "all"
        for ds in ("running", "candidate", "startup"):
            d = etree.SubElement(lib, y("datastore"))
            etree.SubElement(d, y("name")).text = f"ds:{ds}"
            etree.SubElement(d, y("schema")).text = "complete"
        etree.SubElement(lib, y("content-id")).text = content_id or self.content_id
        return lib

    def modules_state_xml(self, content_id: str | None = None) -> etree._Element:
        """Legacy ``<modules-state>`` (RFC 7895, kept by RFC 8525 as deprecated)
        for clients that predate RFC 8525."""
        y = lambda n: f"{{{YANGLIB_NS}}}{n}"  # noqa: E731
        state = etree.Element(y("modules-state"), nsmap={None: YANGLIB_NS})
        etree.SubElement(state, y("module-set-id")).text = content_id or self.content_id
        for m in self.modules:
            el = etree.SubElement(state, y("module"))
            etree.SubElement(el, y("name")).text = m.name
            etree.SubElement(el, y("revision")).text = m.revision
            etree.SubElement(el, y("namespace")).text = m.namespace
            for feature in m.features:
                etree.SubElement(el, y("feature")).text = feature
            etree.SubElement(el, y("conformance-type")).text = m.conformance
        return state

    # -- RFC 6022 -----------------------------------------------------------------
    def schema_list_xml(self) -> etree._Element:
        """``<schemas>`` of ``netconf-state`` (RFC 6022 section 2.1.3): every
        module, retrievable with ``<get-schema>`` over NETCONF."""
        n = lambda name: f"{{{NCM_NS}}}{name}"  # noqa: E731
        schemas = etree.Element(n("schemas"), nsmap={None: NCM_NS})
        for m in self.modules:
            s = etree.SubElement(schemas, n("schema"))
            etree.SubElement(s, n("identifier")).text = m.name
            etree.SubElement(s, n("version")).text = m.revision
            etree.SubElement(s, n("format")).text = "yang"
            etree.SubElement(s, n("namespace")).text = m.namespace
            etree.SubElement(s, n("location")).text = "NETCONF"
        return schemas
