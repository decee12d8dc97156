"""Network Configuration Access Control Model (RFC 8341), enforced.

The access rules live in ``/nacm`` of the running configuration, edited over
NETCONF like any other data. :class:`Nacm` turns them, per user, into an
:class:`Access`: the user's groups (``/nacm/groups`` plus, with
``enable-external-groups``, the groups of the agent's user database, RFC 8341
section 3.2.4), the rules of the rule-lists of those groups in order, and the
defaults. An :class:`Access` answers:

* protocol operations (section 3.4.4): :meth:`Access.may_exec`,
  ``<close-session>`` is always permitted;
* reads (sections 3.2.4 and 3.4.5): :meth:`Access.prune` removes what the
  user may not read from a reply, each node without read access with all its
  descendants; :meth:`Access.prune` also gives the part of a source datastore
  that ``<copy-config>`` copies (section 3.2.6);
* writes (section 3.4.5): :meth:`Access.check_write` compares a datastore
  before and after an edit and refuses it with ``access-denied`` if one
  created, changed or deleted node is not writable, and
  :meth:`Access.check_commit_steps` does the same for what a ``<commit>``
  changes in running (section 3.2.8);
  :meth:`Access.conceal` keeps an edit's errors from telling whether an
  unreadable node exists, :meth:`Access.conceal_invalid` keeps validation
  errors from naming one;
* notifications (section 3.4.6): :meth:`Access.visible_event`: the event
  type needs a rule or the defaults permitting it; beyond that, a
  ``netconf-config-change`` keeps only the edits whose target the user may
  read (the paths reveal configuration, RFC 6470 section 5) and is not sent
  when none is left, and an event naming a list entry by a leafref (the
  ``session`` of ``cmp-session-result``) is sent only to users who may read
  that entry.

Nodes, operations and notifications marked ``nacm:default-deny-all`` or
``default-deny-write`` (section 3.5.1, inherited by descendants here) need a
rule that explicitly permits them. A user whose first applicable rule permits
everything, a session of the recovery user (section 3.4: the account the agent
runs as) and everyone while ``enable-nacm`` is false get :data:`Access.bypass`:
no per-node work at all.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntFlag
from typing import TYPE_CHECKING, Literal

from lxml import etree
from yangson.schemanode import (ContainerNode, LeafListNode, LeafNode, ListNode,
                                NotificationNode)

from ..atomic import atomic_write
from .audit import NCN_NS
from .errors import NC_NS, RpcError, RpcErrors

if TYPE_CHECKING:
    from ..datastore import ChangeSummary, Datastores
    from ..datastore.changes import EntryId
    from ..datastore.steps import Steps
    from ..datastore.schema import NodeInfo, SchemaMap
    from ..model import Model

log = logging.getLogger("agent.netconf.nacm")

NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
CONFIG_CHANGE = f"{{{NCN_NS}}}netconf-config-change"
#: the RFC 5277 operations and events are defined in the YANG module "notifications"
_EXTRA_MODULES = {"urn:ietf:params:xml:ns:netconf:notification:1.0": "notifications"}


class Op(IntFlag):
    """The bits of ``access-operations-type`` (RFC 8341 section 3.2.2)."""

    CREATE = 1
    READ = 2
    UPDATE = 4
    DELETE = 8
    EXEC = 16


_ALL_OPS = Op.CREATE | Op.READ | Op.UPDATE | Op.DELETE | Op.EXEC
_OP_NAMES = {"create": Op.CREATE, "read": Op.READ, "update": Op.UPDATE, "delete": Op.DELETE,
             "exec": Op.EXEC}
_WRITE = Op.CREATE | Op.UPDATE | Op.DELETE


def _n(name: str) -> str:
    return f"{{{NACM_NS}}}{name}"


def _ncn(name: str) -> str:
    return f"{{{NCN_NS}}}{name}"


# --- the configuration -------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One step of a rule's ``path``: a node and, optionally, key values."""

    tag: str
    keys: tuple[tuple[str, str], ...] = ()  # (Clark tag of the key, or ".", value)


@dataclass(frozen=True)
class Rule:
    """One ``/nacm/rule-list/rule`` (RFC 8341 section 3.2.3)."""

    name: str
    module: str | None              # None: "*"
    kind: str                       # "any", "rpc", "notification" or "data"
    target: str | None = None       # rpc-name / notification-name; None: "*"
    path: tuple[Step, ...] | None = None
    ops: Op = _ALL_OPS
    permit: bool = False

    @property
    def universal(self) -> bool:
        """Matches every request."""
        return self.module is None and self.kind == "any" and self.ops == _ALL_OPS


@dataclass(frozen=True)
class NacmConfig:
    """The configured ``/nacm`` with the module's defaults."""

    enabled: bool = True
    read_default: bool = True
    write_default: bool = False
    exec_default: bool = True
    external_groups: bool = True
    #: group name -> its user names
    groups: tuple[tuple[str, frozenset[str]], ...] = ()
    #: (groups of the rule-list, its rules), in rule-list order
    rule_lists: tuple[tuple[frozenset[str], tuple[Rule, ...]], ...] = ()

    @classmethod
    def from_xml(cls, nacm: etree._Element | None, prefixes: dict[str, str]) -> "NacmConfig":
        """Read ``<nacm>`` of the configuration (``None``: not configured).

        *prefixes* resolves the prefixes of rule paths (module prefixes and
        module names: an edit stores paths with the modules' prefixes).
        """
        if nacm is None:
            return cls()

        def flag(name: str, default: bool, yes: str = "true") -> bool:
            text = nacm.findtext(_n(name))
            return default if text is None else text.strip() == yes

        groups = tuple(
            (g.findtext(_n("name"), "").strip(),
             frozenset((u.text or "").strip() for u in g.iterchildren(_n("user-name"))))
            for g in nacm.iterfind(f"{_n('groups')}/{_n('group')}"))
        rule_lists = []
        for rl in nacm.iterchildren(_n("rule-list")):
            names = frozenset((g.text or "").strip() for g in rl.iterchildren(_n("group")))
            rules = tuple(r for r in (_rule(el, prefixes) for el in rl.iterchildren(_n("rule")))
                          if r is not None)
            rule_lists.append((names, rules))
        return cls(enabled=flag("enable-nacm", True),
                   read_default=flag("read-default", True, "permit"),
                   write_default=flag("write-default", False, "permit"),
                   exec_default=flag("exec-default", True, "permit"),
                   external_groups=flag("enable-external-groups", True),
                   groups=groups, rule_lists=tuple(rule_lists))


def _rule(el: etree._Element, prefixes: dict[str, str]) -> Rule | None:
    name = el.findtext(_n("name"), "").strip()
    module = el.findtext(_n("module-name"), "*").strip()
    ops_text = el.findtext(_n("access-operations"), "*").strip()
    ops = _ALL_OPS if ops_text == "*" else Op(0)
    if ops_text != "*":
        for word in ops_text.split():
            ops |= _OP_NAMES.get(word, Op(0))
    permit = el.findtext(_n("action"), "deny").strip() == "permit"
    kind, target, path = "any", None, None
    if (rpc := el.findtext(_n("rpc-name"))) is not None:
        kind, target = "rpc", rpc.strip()
    elif (notif := el.findtext(_n("notification-name"))) is not None:
        kind, target = "notification", notif.strip()
    elif (path_el := el.find(_n("path"))) is not None:
        kind = "data"
        path = parse_path((path_el.text or "").strip(), prefixes)
        if path is None:  # fail closed: a deny rule denies more, a permit rule nothing
            log.warning("NACM rule %r: path %r is not a node-instance-identifier;"
                        " the rule %s", name, path_el.text,
                        "never matches" if permit else "matches every node of its module-name")
            if permit:
                return None
            path = ()
    return Rule(name, None if module == "*" else module, kind,
                None if target == "*" else target, path, ops, permit)


def _declared(el: etree._Element) -> dict[str, str]:
    return {p: ns for p, ns in el.nsmap.items() if p is not None}


_STEP = re.compile(r"\s*/\s*(?:([\w.-]+):)?([\w.-]+)((?:\s*\[[^\]]*\])*)")
_PRED = re.compile(r"\[\s*(?:([\w.-]+):)?([\w.-]+|\.)\s*=\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]")


def parse_path(text: str, prefixes: dict[str, str]) -> tuple[Step, ...] | None:
    """A ``node-instance-identifier`` (RFC 8341 section 3.2.3) as steps;
    ``"/"`` is the whole tree. ``None`` if it cannot be read."""
    if text.strip() == "/":
        return ()
    steps: list[Step] = []
    pos, ns = 0, None
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            return None
        prefix, local, preds = m.groups()
        ns = prefixes.get(prefix) if prefix else ns
        if ns is None:
            return None
        if len(_PRED.findall(preds)) != preds.count("["):
            return None  # a predicate that is not "[key = 'value']"
        keys = []
        for p in _PRED.finditer(preds):
            kprefix, klocal, v1, v2 = p.groups()
            kns = prefixes.get(kprefix, ns) if kprefix else ns
            keys.append((klocal if klocal == "." else f"{{{kns}}}{klocal}",
                         v1 if v1 is not None else v2))
        steps.append(Step(f"{{{ns}}}{local}", tuple(keys)))
        pos = m.end()
    return tuple(steps) if steps else None


# --- what one user may do ----------------------------------------------------------
@dataclass(eq=False)
class Counters:
    """The denied-* counters of ``/nacm`` (RFC 8341 section 3.1.3).

    Write checks of ``<edit-config>`` run in worker threads while the event loop counts
    other denials, so every increment goes through :meth:`add` and its lock.
    """

    denied_operations: int = 0
    denied_data_writes: int = 0
    denied_notifications: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, counter: Literal["denied_operations", "denied_data_writes",
                                   "denied_notifications"]) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)


class Access:
    """The decisions for one user under one ``/nacm`` configuration."""

    def __init__(self, schema: "NacmSchema", counters: Counters, user: str,
                 config: NacmConfig, rules: tuple[Rule, ...], *, bypass: bool = False):
        self.schema = schema
        self.counters = counters
        self.user = user
        self.config = config
        self.rules = rules
        #: no checks at all: recovery session, NACM off, or a first rule permitting all
        self.bypass = bypass or not config.enabled or bool(
            rules and rules[0].universal and rules[0].permit)
        #: what reads depend on: equal keys give equal read views
        self.view_key: tuple = (("bypass",) if self.bypass
                                else (rules, config.read_default))

    # -- protocol operations (RFC 8341 section 3.4.4) ---------------------------------
    def may_exec(self, module: str | None, name: str) -> bool:
        if self.bypass or (module == "ietf-netconf" and name == "close-session"):
            return True
        decision = self._match(module, "rpc", name, None, Op.EXEC)
        if decision is not None:
            return decision
        if (module, name) in self.schema.annotations.operations:
            return False
        return self.config.exec_default

    def may_invoke(self, operation: etree._Element) -> bool:
        """Whether the user may invoke *operation* (RFC 8341 section 3.4.4)."""
        if self.bypass:
            return True
        q = etree.QName(operation)
        return self.may_invoke_named(q.namespace, q.localname)

    def may_invoke_named(self, namespace: str | None, localname: str) -> bool:
        """:meth:`may_invoke` of an operation named *localname* in *namespace*."""
        return self.may_exec(self.schema.module_of_ns(namespace), localname)

    def authorize_rpc(self, operation: etree._Element) -> None:
        """``access-denied`` (and the counter) unless the user may invoke *operation*."""
        if self.may_invoke(operation):
            return
        q = etree.QName(operation)
        self.counters.add("denied_operations")
        prefix = self.schema.prefixes.get(q.namespace or "", "x")
        raise RpcError("access-denied",
                       f"user {self.user!r} may not invoke <{q.localname}> (NACM, RFC 8341);"
                       " ask an administrator for a rule that permits it",
                       type="protocol", path=f"/nc:rpc/{prefix}:{q.localname}",
                       path_namespaces={"nc": NC_NS, prefix: q.namespace or ""})

    # -- notifications (RFC 8341 section 3.4.6) ---------------------------------------
    def visible_event(self, event: etree._Element) -> etree._Element | None:
        """The notification *event* as the user may receive it: *event* itself,
        a copy with fewer ``edit`` entries (``netconf-config-change``), or
        ``None`` if it is not for this user (see the module's docstring)."""
        if self.bypass:
            return event
        if not self.may_receive(event):
            return None
        if event.tag == CONFIG_CHANGE:
            edits = list(event.iterchildren(_ncn("edit")))
            hidden = [i for i, edit in enumerate(edits) if not self._may_read_target(edit)]
            if not hidden:
                return event
            if len(hidden) == len(edits):
                return None
            shown = copy.deepcopy(event)
            copies = list(shown.iterchildren(_ncn("edit")))
            for i in hidden:
                shown.remove(copies[i])
            return shown
        for leaf, entry, key in self.schema.references.get(event.tag, ()):
            value = event.findtext(leaf)
            if value is not None and not self.may_read(
                    (*entry[:-1], Step(entry[-1].tag, ((key, value.strip()),)))):
                return None
        return event

    def _may_read_target(self, edit: etree._Element) -> bool:
        target = edit.find(_ncn("target"))
        if target is None:
            return True  # an edit without a target names no node
        steps = parse_path((target.text or "").strip(),
                           {**self.schema.path_prefixes, **_declared(target)})
        return steps is not None and self.may_read(steps)

    def may_receive(self, event: etree._Element) -> bool:
        """Whether the user may receive notifications of *event*'s type; counts
        the denials (``denied-notifications``)."""
        if self.bypass:
            return True
        q = etree.QName(event)
        module = self.schema.module_of_ns(q.namespace)
        decision = self._match(module, "notification", q.localname, None, Op.READ)
        if decision is None:
            decision = ((module, q.localname) not in self.schema.annotations.notifications
                        and self.config.read_default)
        if not decision:
            self.counters.add("denied_notifications")
        return decision

    # -- data nodes (RFC 8341 section 3.4.5) ------------------------------------------
    def _may(self, info: "NodeInfo | None", el: etree._Element, op: Op) -> bool:
        module = info.node.ns if info is not None else self.schema.module_of_ns(
            etree.QName(el).namespace)
        decision = self._match(module, "data", None, el, op)
        if decision is not None:
            return decision
        level = self.schema.deny_level(info)
        if level == "all" or (level == "write" and op & _WRITE):
            return False
        return self.config.read_default if op == Op.READ else self.config.write_default

    def _match(self, module: str | None, kind: str, name: str | None,
               el: etree._Element | None, op: Op) -> bool | None:
        """The action of the first rule matching the request (RFC 8341 section 3.4.5
        step 6), ``None`` if no rule matches."""
        for rule in self.rules:
            if not rule.ops & op or (rule.module is not None and rule.module != module):
                continue
            if rule.kind == "any":
                return rule.permit
            if rule.kind != kind:
                continue
            if kind == "data":
                assert el is not None and rule.path is not None
                if _path_matches(rule.path, el):
                    return rule.permit
            elif rule.target is None or rule.target == name:
                return rule.permit
        return None

    def prune(self, data: etree._Element) -> etree._Element:
        """Remove from *data* (a ``<data>`` tree the caller owns) what the user may not read."""
        from ..datastore.steps import run_steps  # see check_write

        return run_steps(self.prune_steps(data))

    def prune_steps(self, data: etree._Element) -> Steps[etree._Element]:
        """:meth:`prune` in steps (:mod:`agent.datastore.steps`), a pause after
        each list entry: with many rules, pruning a copy of a whole datastore
        (``<copy-config>``, RFC 8341 section 3.2.6) takes seconds for 10,000
        entries, too long for the event loop at once."""
        if not self.bypass:
            for child in list(data):
                if isinstance(child.tag, str) \
                        and not (yield from self._prune(child, self.schema.root)):
                    data.remove(child)
        return data

    def _prune(self, el: etree._Element, parent: "NodeInfo | None") -> Steps[bool]:
        """Prune below *el*; whether *el* stays, in steps (a pause after a list
        entry). A node the user may not read goes with all its descendants (RFC
        8341 section 3.2.4), whatever rules say about them: a readable node needs
        readable ancestors."""
        info = self.schema.smap.child(parent, el.tag) if parent is not None else None
        if not self._may(info, el, Op.READ):
            return False
        keys = info.key_tags if info is not None else ()
        for child in list(el):
            if not isinstance(child.tag, str) or child.tag in keys:
                continue
            if len(child):  # a generator only for a node with children
                stays = yield from self._prune(child, info)
            else:
                stays = self._may(self.schema.smap.child(info, child.tag)
                                  if info is not None else None, child, Op.READ)
            if not stays:
                el.remove(child)
        if info is not None and isinstance(info.node, ListNode):
            yield
        return True

    def may_read(self, steps: tuple[Step, ...]) -> bool:
        """Whether the user may read the instance *steps* name (list keys in
        the steps) and each of its ancestors."""
        return self.bypass or self._first_unreadable(_instance(steps)) is None

    def _first_unreadable(self, el: etree._Element
                          ) -> "tuple[etree._Element, NodeInfo | None] | None":
        """The outermost of *el* (a node of a datastore tree) and its ancestors
        that the user may not read, with its schema node; ``None`` if they may
        read them all."""
        chain = []
        cur = el
        while cur is not None and cur.getparent() is not None:
            chain.append(cur)
            cur = cur.getparent()
        info: NodeInfo | None = self.schema.root
        for node in reversed(chain):
            info = self.schema.smap.child(info, node.tag) if info is not None else None
            if not self._may(info, node, Op.READ):
                return node, info
        return None

    def _unreadable_path(self, el: etree._Element) -> str | None:
        """For *el* hidden from the user (itself or an ancestor unreadable): the
        path of its outermost unreadable node without that node's key values, the
        most an error may tell about a node the request did not name (an entry of
        a list the user may not read, deleted by a ``replace``); ``None`` if the
        user may read *el*."""
        found = None if self.bypass else self._first_unreadable(el)
        if found is None:
            return None
        node, info = found
        parent = node.getparent()
        above = self.schema.path_of(parent) if parent is not None else ""
        return above + (self.schema.smap.step(info) if info is not None
                        else f"/{etree.QName(node).localname}")

    def _hidden(self, path: str) -> RpcError:
        """The one ``access-denied`` for a write that touches a node the user may
        not read, at *path*: the same whether the node exists or not (section
        3.2.5), so that neither its message nor its path tells. It does not say
        that nothing was changed: under ``continue-on-error`` the rest of an edit
        whose delete found no such node is applied."""
        return RpcError("access-denied", f"user {self.user!r} may not read or change {path}"
                        " or a node below it (NACM, RFC 8341)",
                        type="application", path=path,
                        path_namespaces=self.schema.smap.path_namespaces(path))

    def conceal(self, exc: "RpcError | RpcErrors") -> "RpcError | RpcErrors":
        """*exc* with each ``data-exists`` / ``data-missing`` about a node the user
        may not read turned into ``access-denied``: whether such a node exists
        is content no rpc-error may show (RFC 8341 section 3.2.5). The request
        counts once in ``denied-data-writes`` however many it turns (several
        under ``continue-on-error``)."""
        if self.bypass:
            return exc
        errors = exc.errors if isinstance(exc, RpcErrors) else [exc]
        shown = [self._conceal(e) for e in errors]
        if any(new is not old for new, old in zip(shown, errors)):
            self.counters.add("denied_data_writes")
        return RpcErrors(shown) if isinstance(exc, RpcErrors) else shown[0]

    def _conceal(self, error: RpcError) -> RpcError:
        if error.tag not in ("data-exists", "data-missing") or not error.path:
            return error
        steps = parse_path(error.path, {**self.schema.path_prefixes, **error.path_namespaces})
        if steps is None:
            hidden: str | None = error.path  # fail closed: the request's own path
        else:
            hidden = self._unreadable_path(_instance(steps))
            if hidden is None:
                return error
        # as the write check refuses the node when it exists: a create names the
        # request's node, a delete no more than the write check of a deletion
        return self._hidden(error.path if error.tag == "data-exists" else hidden)

    def conceal_invalid(self, exc: "RpcError | RpcErrors") -> "RpcError | RpcErrors":
        """*exc*, what validating a datastore found (``<validate>``, ``<commit>``,
        ``<copy-config>``), without the nodes the user may not read: an error
        whose ``error-path`` names one keeps its error-tag (the configuration is
        invalid, whoever reads the reply) but loses the path, the error-info and
        the error-app-tag, and its message says only where not to look; several
        such errors become one. The content of a node that read access hides
        is hidden in errors too (RFC 8341 sections 3.2.4 and 3.4.5)."""
        if self.bypass:
            return exc
        shown: list[RpcError] = []
        hidden: set[str] = set()
        for error in exc.errors if isinstance(exc, RpcErrors) else [exc]:
            if error.tag == "access-denied" or self._names_readable(error):
                shown.append(error)  # access-denied: NACM's own, naming what it may
            elif error.tag not in hidden:
                hidden.add(error.tag)
                shown.append(RpcError(
                    error.tag, "the configuration is not valid in a part user"
                    f" {self.user!r} may not read (NACM, RFC 8341); ask an administrator"
                    " to correct it or to discard the changes", type=error.type))
        return shown[0] if len(shown) == 1 else RpcErrors(shown)

    def _names_readable(self, error: RpcError) -> bool:
        """Whether *error* names no node, or one the user may read."""
        if not error.path:
            return True
        steps = parse_path(error.path, {**self.schema.path_prefixes, **error.path_namespaces})
        return steps is not None and self.may_read(steps)

    def check_write(self, old: etree._Element, new: etree._Element) -> None:
        """``access-denied`` unless every node that differs between the datastore
        trees *old* and *new* may be created, updated or deleted by the user."""
        # imported here: serve loads the model (agent.datastore imports it) only
        # once it can report a broken installation
        from ..datastore.steps import run_steps

        run_steps(self.check_write_steps(old, new))

    def check_write_steps(self, old: etree._Element, new: etree._Element,
                          changed: "ChangeSummary | None" = None) -> Steps[None]:
        """:meth:`check_write` in steps (:mod:`agent.datastore.steps`), a pause
        after each list entry. *changed*, the change summary of *old* to *new*,
        names the outermost list entries in which something changed: the
        others are not compared again."""
        if self.bypass:
            return
        yield from self._diff(self.schema.root, old, new, (),
                              None if changed is None else changed.entries)

    def check_commit_steps(self, running: etree._Element, new: etree._Element,
                           changed: "ChangeSummary") -> Steps[None]:
        """The write check of a ``<commit>`` that replaces *running* by *new*
        (*changed*: its change summary), in steps: each node of running that the
        commit creates, changes or deletes needs write access (RFC 8341 section
        3.2.8), whoever edited it in the shared candidate (RFC 6241 section
        8.3). Those edits may be another user's, so the refusal names the node
        only if this user may read it (section 3.4.5)."""
        try:
            yield from self.check_write_steps(running, new, changed)
        except RpcError as error:
            hint = ("; the candidate holds a change this user may not make (the candidate is"
                    " shared: another session may have made it): have it committed by a user"
                    " who may, or discard it (discard-changes)")
            if self._names_readable(error):
                raise replace(error, message=error.message + hint) from None
            raise RpcError("access-denied", f"user {self.user!r} may not change a node it may"
                           f" not read (NACM, RFC 8341); nothing was changed{hint}",
                           type="application") from None

    def _diff(self, info: "NodeInfo", old: etree._Element, new: etree._Element,
              tags: tuple[str, ...], changed: "frozenset[EntryId] | None") -> Steps[None]:
        """Check the nodes that differ below *old* and *new*. *changed*, while
        outside every list entry (*tags*: the Clark tags down to here), names
        the list entries that differ; ``None``: compare every entry."""
        before = yield from self._entries(info, old)
        after = yield from self._entries(info, new)
        for ident, (el, cinfo) in after.items():
            prev = before.get(ident)
            if prev is None:
                yield from self._check_tree(el, cinfo, Op.CREATE)
            elif cinfo is None or isinstance(cinfo.node, (LeafNode, LeafListNode)):
                if (el.text or "") != (prev[0].text or ""):
                    self._check(el, cinfo, Op.UPDATE)
            elif not isinstance(cinfo.node, ListNode):
                yield from self._diff(cinfo, prev[0], el, tags + (el.tag,), changed)
            elif changed is None or (tags + (el.tag,), ident[1]) in changed:
                yield from self._diff(cinfo, prev[0], el, (), None)  # all of the entry
                yield
        for ident, (el, cinfo) in before.items():
            if ident not in after:
                yield from self._check_tree(el, cinfo, Op.DELETE)
        self._check_order(before, after)

    def _check_order(self, before: dict, after: dict) -> None:
        """Moving entries of an ``ordered-by user`` list (e.g. the rule-lists) is an
        update of each of them."""
        kept = [ident for ident in after if ident in before]
        for tag in {ident[0] for ident in kept}:
            _, info = after[next(i for i in kept if i[0] == tag)]
            if info is None or not getattr(info.node, "user_ordered", False):
                continue
            old = [i for i in before if i[0] == tag and i in after]
            new = [i for i in kept if i[0] == tag]
            if old != new:
                for ident in new:
                    self._check(after[ident][0], info, Op.UPDATE)

    def _entries(self, info: "NodeInfo", parent: etree._Element) -> Steps[dict]:
        """The children of *parent* by identity: tag, and the key values of a list
        entry (as :class:`~agent.datastore.ChangeSummary` spells them) or the
        value of a leaf-list entry; a pause every hundred children."""
        out: dict[tuple, tuple[etree._Element, NodeInfo | None]] = {}
        for count, child in enumerate(parent, 1):
            if not isinstance(child.tag, str):
                continue
            cinfo = self.schema.smap.child(info, child.tag)
            if cinfo is not None and isinstance(cinfo.node, ListNode):
                ident: tuple = (child.tag, tuple(child.findtext(k) or "" for k in cinfo.key_tags))
            elif cinfo is not None and isinstance(cinfo.node, LeafListNode):
                ident = (child.tag, child.text)
            else:
                ident = (child.tag,)
            out[ident] = (child, cinfo)
            if count % 100 == 0:
                yield
        return out

    def _check_tree(self, el: etree._Element, info: "NodeInfo | None", op: Op) -> Steps[None]:
        """A created or deleted subtree: every node in it (RFC 8341 section 3.4.5)."""
        implicit = (info is not None and isinstance(info.node, ContainerNode)
                    and not info.node.presence)  # non-presence containers have no value
        if not implicit:
            self._check(el, info, op)
        keys = info.key_tags if info is not None else ()
        for child in el:
            if isinstance(child.tag, str) and child.tag not in keys:
                yield from self._check_tree(child, self.schema.smap.child(info, child.tag)
                                            if info is not None else None, op)
        if info is not None and isinstance(info.node, ListNode):
            yield

    def _check(self, el: etree._Element, info: "NodeInfo | None", op: Op) -> None:
        """``access-denied`` unless the user may *op* the node *el*. A node the
        user may not read is named as :meth:`conceal` names it: a created or
        updated one by its path (from the request; a commit hides it again), a
        deleted one only by the path of its outermost unreadable node without key
        values (RFC 8341 sections 3.2.5 and 3.4.3: a ``replace``, ``<copy-config>``
        or ``<delete-config>`` must not tell the keys of entries the user may not
        read, nor a delete whether the node it names exists)."""
        if self._may(info, el, op):
            return
        self.counters.add("denied_data_writes")
        path = self.schema.path_of(el)
        hidden = self._unreadable_path(el)
        if hidden is not None:
            raise self._hidden(path if op != Op.DELETE else hidden)
        raise RpcError("access-denied",
                       f"user {self.user!r} may not {op.name.lower()} {path} (NACM, RFC 8341);"
                       " nothing was changed", type="application", path=path,
                       path_namespaces=self.schema.smap.path_namespaces(path))


def _instance(steps: tuple[Step, ...]) -> etree._Element:
    """The node *steps* name as an element of a tree of its ancestors (with
    their keys), as :meth:`Access._may` expects a node of a datastore."""
    el = etree.Element("data")
    for step in steps:
        el = etree.SubElement(el, step.tag)
        for key, key_value in step.keys:
            if key == ".":
                el.text = key_value
            else:
                etree.SubElement(el, key).text = key_value
    return el


def _path_matches(steps: tuple[Step, ...], el: etree._Element) -> bool:
    """Whether *el* is the node *steps* name or one of its descendants."""
    chain = []
    cur = el
    while cur is not None and cur.getparent() is not None:
        chain.append(cur)
        cur = cur.getparent()
    if len(chain) < len(steps):
        return False
    chain.reverse()
    for step, node in zip(steps, chain):
        if node.tag != step.tag:
            return False
        for key, value in step.keys:
            actual = node.text if key == "." else node.findtext(key)
            if (actual or "").strip() != value:
                return False
    return True


# --- the server's NACM -------------------------------------------------------------
class NacmSchema:
    """What NACM needs from the model: modules, annotations, paths."""

    def __init__(self, model: "Model", smap: "SchemaMap"):
        self.smap = smap
        self.root = smap.root
        self.annotations = model.nacm_annotations
        self._modules = {m.namespace: m.name for m in model.modules}
        self.prefixes = dict(model.prefixes)
        #: rule path prefixes the stored configuration may not declare
        self.path_prefixes = {**{m.name: m.namespace for m in model.modules},
                              **{m.prefix: m.namespace for m in model.modules}}
        self._levels: dict[int, str | None] = {}
        #: notification tag -> (its leaf's tag, the list entry the leaf names
        #: by a leafref to the entry's key, that key's tag)
        self.references = self._references(model)

    def _references(self, model: "Model") -> dict[str, tuple[tuple[str, tuple[Step, ...], str],
                                                             ...]]:
        out: dict[str, list[tuple[str, tuple[Step, ...], str]]] = {}
        schema = model.datamodel.schema
        for notif in schema.children:
            if not isinstance(notif, NotificationNode):
                continue
            ns = self.path_prefixes[notif.ns]
            for leaf in notif.children:
                path = getattr(leaf.type, "path", None) if isinstance(leaf, LeafNode) else None
                steps = parse_path(str(path), self.path_prefixes) if path is not None else None
                if not steps or len(steps) < 2:
                    continue
                info: NodeInfo | None = self.root
                for step in steps[:-1]:
                    info = self.smap.child(info, step.tag) if info is not None else None
                if info is not None and steps[-1].tag in info.key_tags:
                    out.setdefault(f"{{{ns}}}{notif.name}", []).append(
                        (f"{{{ns}}}{leaf.name}", steps[:-1], steps[-1].tag))
        return {tag: tuple(refs) for tag, refs in out.items()}

    def module_of_ns(self, ns: str | None) -> str | None:
        return self._modules.get(ns or "") or _EXTRA_MODULES.get(ns or "")

    def deny_level(self, info: "NodeInfo | None") -> str | None:
        """``"all"``, ``"write"`` or ``None`` for a node, inherited from its ancestors."""
        if info is None or info.parent is None:
            return None
        cached = self._levels.get(id(info), "?")
        if cached != "?":
            return cached
        tags = []
        cur: NodeInfo | None = info
        while cur is not None and cur.parent is not None:
            tags.append(cur.tag)
            cur = cur.parent
        own = self.annotations.data.get(tuple(reversed(tags)))
        inherited = self.deny_level(info.parent)
        level = "all" if "all" in (own, inherited) else (own or inherited)
        self._levels[id(info)] = level
        return level

    def path_of(self, el: etree._Element) -> str:
        """The instance path of *el* as ``error-path`` spells it (keys, never values)."""
        chain = []
        cur = el
        while cur is not None and cur.getparent() is not None:
            chain.append(cur)
            cur = cur.getparent()
        info = self.root
        path = ""
        for node in reversed(chain):
            nxt = self.smap.child(info, node.tag) if info is not None else None
            if nxt is None:
                path += f"/{etree.QName(node).localname}"
            else:
                path += self.smap.step(nxt, tuple(node.findtext(k) or "" for k in nxt.key_tags))
            info = nxt
        return path


class Nacm:
    """NACM of one server: the configuration from running, per-user access, counters.

    *groups_of* gives a user's groups from the user database (the "transport
    layer" groups of RFC 8341), ``None`` for a user that no longer exists;
    *users_version* changes whenever that database changes. The
    *recovery_user* bypasses NACM (RFC 8341 section 3.4).
    """

    def __init__(self, model: "Model", datastores: "Datastores", *,
                 groups_of: Callable[[str], frozenset[str] | None] = lambda _: frozenset(),
                 users_version: Callable[[], object] = lambda: None,
                 recovery_user: str | None = None):
        self.schema = NacmSchema(model, datastores.smap)
        self.datastores = datastores
        self.groups_of = groups_of
        self.users_version = users_version
        self.recovery_user = recovery_user
        self.counters = Counters()
        self._config_version = -1
        self._config = NacmConfig()
        self._access: dict[str, Access] = {}
        self._access_config: NacmConfig | None = None
        self._access_users: object = None

    @property
    def config(self) -> NacmConfig:
        version = self.datastores.running_version
        if version != self._config_version:
            view = self.datastores.config_view("running", "report-all")
            config = NacmConfig.from_xml(view.find(_n("nacm")), self.schema.path_prefixes)
            if config != self._config:  # else the same object: per-user access stays valid
                self._config = config
            self._config_version = version
        return self._config

    def access(self, user: str) -> Access:
        """What *user* may do now (cached until /nacm or the user database changes)."""
        config = self.config
        users = self.users_version()
        if config is not self._access_config or users != self._access_users:
            self._access, self._access_config, self._access_users = {}, config, users
        found = self._access.get(user)
        if found is None:
            found = self._access[user] = self._compile(user, config)
        return found

    def _compile(self, user: str, config: NacmConfig) -> Access:
        if self.recovery_user is not None and user == self.recovery_user:
            log.info("user %r is the recovery user: access control bypassed"
                     " (RFC 8341 section 3.4)", user)
            return Access(self.schema, self.counters, user, config, (), bypass=True)
        external = self.groups_of(user)
        if external is None:  # removed from the user database: nothing but close-session
            deny = Rule("user removed", None, "any", permit=False)
            return Access(self.schema, self.counters, user,
                          NacmConfig(read_default=False, exec_default=False), (deny,))
        groups = set(external) if config.external_groups else set()
        groups |= {name for name, users in config.groups if user in users}
        # a user in no group gets the defaults only, even from a rule-list of
        # group "*" (RFC 8341 section 3.4.4 step 5, section 3.4.5 step 6)
        rules = tuple(rule for names, rules in config.rule_lists
                      if groups and ("*" in names or names & groups) for rule in rules)
        return Access(self.schema, self.counters, user, config, rules)

    def state(self) -> list[etree._Element]:
        """The denied-* counters (config false leaves of ``/nacm``)."""
        root = etree.Element(_n("nacm"), nsmap={None: NACM_NS})
        c = self.counters
        for name, value in (("denied-operations", c.denied_operations),
                            ("denied-data-writes", c.denied_data_writes),
                            ("denied-notifications", c.denied_notifications)):
            etree.SubElement(root, _n(name)).text = str(value)
        return [root]


# --- first start ---------------------------------------------------------------------
ADMIN_GROUP = "admin"


def initial_config(admin: str) -> etree._Element:
    """An edit-config ``<config>`` that puts *admin* in group ``admin`` and gives
    that group a rule-list permitting everything (RFC 8341 section 3.2.3)."""
    config = etree.Element(f"{{{NC_NS}}}config", nsmap={None: NC_NS})
    nacm = etree.SubElement(config, _n("nacm"), nsmap={None: NACM_NS})
    group = etree.SubElement(etree.SubElement(nacm, _n("groups")), _n("group"))
    etree.SubElement(group, _n("name")).text = ADMIN_GROUP
    etree.SubElement(group, _n("user-name")).text = admin
    rule_list = etree.SubElement(nacm, _n("rule-list"))
    etree.SubElement(rule_list, _n("name")).text = ADMIN_GROUP
    etree.SubElement(rule_list, _n("group")).text = ADMIN_GROUP
    rule = etree.SubElement(rule_list, _n("rule"))
    for name, value in (("name", "permit-all"), ("module-name", "*"),
                        ("access-operations", "*"), ("action", "permit")):
        etree.SubElement(rule, _n(name)).text = value
    return config


def bootstrap(datastores: "Datastores", admin: str = "admin") -> bool:
    """Give *admin* full access once per state directory (first start, or the
    first start of a state directory made before NACM existed).

    Running gets the admin group and its permit-all rule-list unless ``/nacm``
    is configured already; ``<state-dir>/nacm-initialized`` records that this
    was done, so that an administrator who later removes these entries is not
    overruled at the next start. Returns whether running was changed.
    """
    marker = datastores.state_dir / "nacm-initialized"
    if marker.exists():
        return False
    changed = False
    if datastores.config_view("running", "explicit").find(_n("nacm")) is None:
        datastores.discard_changes()
        datastores.edit_config("candidate", initial_config(admin))
        datastores.commit()
        changed = True
        log.info("NACM: user %r is in group %r with a permit-all rule-list", admin, ADMIN_GROUP)
    atomic_write(marker, b"/nacm initialized; remove this file to add the admin rules again\n")
    return changed
