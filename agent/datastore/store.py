"""The running, candidate and startup configuration datastores (RFC 6241
sections 5.1, 8.3 and 8.7).

Persistence. ``running`` and ``startup`` live in ``<state_dir>/running.xml``
and ``<state_dir>/startup.xml``, always written with :func:`atomic_write`
(temporary file, fsync, rename), so a kill -9 at any moment leaves the old or
the new file, never a broken one. Every commit (and confirmed-commit rollback)
writes ``running.xml`` *before* the in-memory running changes, so a failed
write changes nothing.

Boot (decision). The issue requires that a restart comes back with the
committed configuration, so ``running.xml`` is authoritative: on start,
running := running.xml if it exists, else startup.xml (RFC 6241 section 8.7:
the startup configuration is what the device loads when it has nothing
else, e.g. a provisioned device's first boot), else the empty configuration
(schema defaults apply). ``copy-config running -> startup`` saves running as
startup; ``delete-config startup`` removes it. Candidate starts as a copy of
running and is never persisted (RFC 6241 section 8.3: it is a scratch pad).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Awaitable, Callable, Iterable, TypeVar

from lxml import etree

from agent.atomic import atomic_write, fsync_directory, install_temporary, write_temporary
from agent.datastore.changes import ChangeSummary, diff, diff_steps
from agent.datastore.defaults import Defaults
from agent.datastore.editconfig import apply_edit_steps, same_steps
from agent.datastore.quickcheck import QuickCheck
from agent.datastore.raw import raw_value
from agent.datastore.schema import NodeInfo, SchemaMap, index_steps
from agent.datastore.secrets import CLEAR_TEXT_MAX, MARK, SecretBox
from agent.datastore.steps import Steps, run_cooperatively, run_steps
from agent.datastore.validation import validate_tree
from agent.model import Model
from agent.netconf.errors import NC_NS, RpcError, RpcErrors

__all__ = ["Datastores", "ChangeSummary", "Snapshot", "DatastoreLoadError"]

log = logging.getLogger(__name__)
T = TypeVar("T")

DATASTORES = ("running", "candidate", "startup")
#: comments and processing instructions of a hand-edited file are dropped: they
#: are not configuration (and yangson cannot load them)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          remove_blank_text=True, load_dtd=False, remove_comments=True,
                          remove_pis=True)

CommitListener = Callable[[ChangeSummary], None]
#: checks a change of a datastore from the first tree to the second, raises RpcError
#: to refuse it (access control, RFC 8341 section 3.4.5)
Authorize = Callable[[etree._Element, etree._Element], None]
#: :data:`Authorize` in steps (:mod:`agent.datastore.steps`), also given what changed
#: from the first tree to the second (a commit's write check, RFC 8341 section 3.2.8)
AuthorizeSteps = Callable[[etree._Element, etree._Element, ChangeSummary], Steps[None]]
#: what validation found -> what the client is told (access control: no node it
#: may not read named, RFC 8341 section 3.4.5)
Invalid = Callable[[RpcError | RpcErrors], RpcError | RpcErrors]
#: a datastore tree (the caller's copy) -> the part of it a client may read
Readable = Callable[[etree._Element], etree._Element]
#: :data:`Authorize` in steps (:mod:`agent.datastore.steps`)
AuthorizeCopy = Callable[[etree._Element, etree._Element], Steps[None]]
#: :data:`Readable` in steps
ReadableSteps = Callable[[etree._Element], Steps[etree._Element]]


def _replaced_meanwhile(target: str, what: str, by: str) -> RpcError:
    """The error of an edit or copy given up after :data:`EDIT_ATTEMPTS` attempts."""
    return RpcError("operation-failed", f"{target} was replaced by other sessions ({by}) "
                    f"{EDIT_ATTEMPTS} times while this {what} was applied; nothing was changed;"
                    f" send the {what} again", type="application")


class DatastoreLoadError(Exception):
    """A persisted datastore file cannot be used; the message names the file."""


@dataclass(frozen=True)
class Snapshot:
    """An opaque copy of running, for confirmed-commit rollback (RFC 6241 8.4)."""

    _tree: etree._Element


def _empty() -> etree._Element:
    return etree.Element(f"{{{NC_NS}}}data", nsmap={None: NC_NS})


#: an edit is done again when another session replaced its target meanwhile, at most
#: this many times in all (:meth:`Datastores.edit_config_cooperatively`)
EDIT_ATTEMPTS = 3
#: below the top-level containers, an element with fewer children is copied in one step
_COPY_AT_ONCE = 64


def copy_steps(el: etree._Element, depth: int = 0, at_once: bool = False,
               parent: etree._Element | None = None) -> Steps[etree._Element]:
    """``copy.deepcopy(el)`` in steps (:mod:`agent.datastore.steps`): the root,
    the top-level containers and any element with many children (a long list)
    are copied a child at a time. *at_once*: one ``copy.deepcopy`` (about eight
    times faster), for a computation run at once (:func:`run_steps`).

    A container copied a child at a time is made inside its *parent*'s copy
    (the document of the whole copy) before its children: appending a finished
    copy of a list of 1,000 entries to another document would move every node
    of it at once (about 1 ms on the event loop)."""
    if at_once or not isinstance(el.tag, str) or (depth >= 2 and len(el) < _COPY_AT_ONCE):
        return copy.deepcopy(el)
    if parent is None:
        out = etree.Element(el.tag, dict(el.attrib), nsmap=el.nsmap)
    else:
        out = etree.SubElement(parent, el.tag, dict(el.attrib), nsmap=_own_namespaces(el))
    out.text = el.text
    for child in el:
        copied = yield from copy_steps(child, depth + 1, parent=out)
        if copied.getparent() is not out:
            out.append(copied)
        yield
    return out


def _own_namespaces(el: etree._Element) -> dict[str | None, str]:
    """The namespace declarations *el* adds to those of its parent."""
    parent = el.getparent()
    inherited = parent.nsmap if parent is not None else {}
    return {prefix: uri for prefix, uri in el.nsmap.items() if inherited.get(prefix) != uri}


def _at_once(call: Callable[..., T]) -> Callable[..., Steps[T]]:
    """*call* as a computation of one step (:mod:`agent.datastore.steps`)."""
    def steps(*args):
        return call(*args)
        yield  # pragma: no cover - a generator
    return steps


def _unlink_staged(stage: asyncio.Future) -> None:
    """Remove the file a cancelled :meth:`Datastores.prepare_commit` staged."""
    if not stage.cancelled() and stage.exception() is None:
        staged = stage.result()[1]
        if staged is not None:
            staged.unlink(missing_ok=True)


def _write_snapshot_file(snapshot: "Snapshot", path: Path) -> None:
    atomic_write(path, etree.tostring(snapshot._tree))


def _remove_durably(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_directory(path.parent)


async def _in_thread_to_the_end(call: Callable[[], T]) -> T:
    """``call()`` in a worker thread. A thread cannot be stopped: if the caller is
    cancelled meanwhile, the call is still waited for (its result or exception then
    dropped) and :class:`asyncio.CancelledError` raised after it, so that a file
    write is over before the caller lets go of its lock."""
    job = asyncio.ensure_future(asyncio.to_thread(call))
    cancelled: asyncio.CancelledError | None = None
    while not job.done():
        try:
            await asyncio.wait([job])
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        if not job.cancelled():
            job.exception()  # retrieved: the caller is told of its cancellation instead
        raise cancelled
    return job.result()


@dataclass(frozen=True)
class _PreparedCommit:
    """What :meth:`Datastores.commit` installs, computed for (candidate, running) versions."""

    key: tuple[int, int]
    tree: etree._Element
    #: the running that *tree* replaces
    old: etree._Element
    summary: ChangeSummary
    data: bytes
    #: running's report-all view (:meth:`Datastores.config_view`)
    view: etree._Element
    #: *data* already written and fsync'ed beside ``running.xml``, to be renamed over it
    staged: Path | None = None
    #: the entry indexes of *view* for the lists asked for before (:meth:`Datastores.running_keys`)
    indexes: dict[tuple[str, ...], tuple] = field(default_factory=dict)
    #: the ``authorize`` checks this change passed (:meth:`Datastores.prepare_commit`)
    authorized: set[AuthorizeSteps] = field(default_factory=set)

    def unchecked_by(self, authorize: AuthorizeSteps | None) -> bool:
        """Whether *authorize* has yet to pass this change (an empty one needs no check)."""
        return authorize is not None and authorize not in self.authorized \
            and not self.summary.empty


class Datastores:
    """running, candidate and startup; every write is all-or-nothing."""

    def __init__(self, model: Model, state_dir: Path, secrets: SecretBox):
        self.model = model
        self.state_dir = Path(state_dir)
        self.secrets = secrets
        self.smap = SchemaMap(model)
        self._defaults = Defaults(self.smap)
        self._quick = QuickCheck(self.smap)
        self._listeners: list[CommitListener] = []
        self._running_file = self.state_dir / "running.xml"
        self._startup_file = self.state_dir / "startup.xml"
        self._trees: dict[str, etree._Element] = {}
        self._versions = {name: 0 for name in DATASTORES}
        self._cache: dict[tuple[str, str], tuple[int, etree._Element]] = {}
        self._dirty = False
        #: datastore -> version that passed full validation (validate + commit once)
        self._validated: dict[str, int] = {}
        self._prepared: _PreparedCommit | None = None
        self._indexes: dict[tuple[str, ...], tuple] = {}
        self._preparing = asyncio.Lock()
        self._writing = asyncio.Lock()
        #: copies to startup and its deletions are written one at a time
        self._writing_startup = asyncio.Lock()
        #: the tree a commit is writing to running.xml, until it is running (or refused)
        self._incoming: etree._Element | None = None
        #: candidate's version when it was set to :attr:`_incoming` (discard-changes)
        self._rebased: int | None = None
        self._editing = asyncio.Lock()
        #: what running was before commits, let go of a piece per loop iteration
        self._releasing: list = []
        self._load()

    # -- boot -------------------------------------------------------------------------
    def _load(self) -> None:
        startup, _ = self._read(self._startup_file)
        running, data = self._read(self._running_file)
        if running is None:
            running = copy.deepcopy(startup) if startup is not None else _empty()
            source = self._startup_file if startup is not None else None
        else:  # the stamp of the bytes parsed, the file read once
            source = None if self._stamped(data) else self._running_file
        if source is not None:
            try:
                validate_tree(self.smap, running)
            except RpcError as err:
                raise DatastoreLoadError(f"{source}: stored configuration is not valid "
                                         f"against the model: {err}") from None
            if source == self._running_file:
                self._restamp(running, data)
        self._trees = {"running": running, "candidate": copy.deepcopy(running),
                       "startup": startup if startup is not None else _empty()}
        self._startup_exists = startup is not None

    @staticmethod
    def _read(path: Path) -> tuple[etree._Element | None, bytes]:
        """The ``<data>`` of *path* and the file's bytes; ``None`` if there is no file."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, b""
        try:
            root = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise DatastoreLoadError(f"{path}: not well-formed XML ({exc}); restore it from "
                                     "a backup or remove it") from None
        if root.tag != f"{{{NC_NS}}}data":
            raise DatastoreLoadError(f"{path}: root element is {root.tag}, expected <data>")
        return root, data

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        atomic_write(path, data, mode=0o600)

    @staticmethod
    def _serialize(tree: etree._Element) -> bytes:
        return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")

    # A running.xml written by a commit was fully validated against the model: it
    # ends with a comment holding a digest of the model's YANG texts and of the
    # file before it. At boot such a file is not validated again (with many
    # sessions, that was most of the start-up); any other file, one edited by
    # hand or one from another model, is.
    _STAMP = b"\n<!-- cmp-agent validated "

    def _stamp(self, data: bytes) -> bytes:
        digest = hashlib.sha256(self.model.schema_digest.encode() + data).hexdigest()
        return data + self._STAMP + digest.encode() + b" -->\n"

    def _stamped(self, data: bytes) -> bool:
        body, marker, _ = data.rpartition(self._STAMP)
        return bool(marker) and self._stamp(body) == data

    def _restamp(self, running: etree._Element, data: bytes) -> None:
        """Write *running* (parsed from *data*), just validated at boot, as a commit
        would (stamped), so that the next boots need not validate it again: a file
        edited by hand, or stamped for other module texts (an upgrade of the model or of
        the stamp), could otherwise be validated at every boot until the next commit.
        Not if the file changed meanwhile (another process on this state directory);
        failing to write only means validating it again at the next boot."""
        try:
            self._rewrite_if_holding(data, running)
        except OSError as exc:
            log.warning("%s: validated, but not stamped as validated (%s): it will be "
                        "validated again at the next start", self._running_file, exc)

    def _rewrite_if_holding(self, expected: bytes, tree: etree._Element) -> None:
        """Write *tree* (stamped) over ``running.xml`` if the file still holds
        *expected*; an :class:`OSError` is the caller's to report."""
        if self._running_file.read_bytes() == expected:
            self._write(self._running_file, self._stamp(self._serialize(tree)))

    # -- reads ------------------------------------------------------------------------
    def get_config(self, source: str, with_defaults: str = "report-all") -> etree._Element:
        """A new ``<data>`` element with *source*'s configuration (RFC 6243 mode)."""
        return copy.deepcopy(self.config_view(source, with_defaults))

    def config_view(self, source: str, with_defaults: str = "report-all") -> etree._Element:
        """Like :meth:`get_config` but the shared tree, built once per version of
        *source*: read it (filter, serialize), never modify it."""
        self._check_name(source, "source")
        slot = (source, with_defaults)
        cached = self._cache.get(slot)
        if cached is None or cached[0] != self._versions[source]:
            tree = self._defaults.apply(copy.deepcopy(self._trees[source]), with_defaults)
            self._cache[slot] = cached = (self._versions[source], tree)
        return cached[1]

    @property
    def candidate_dirty(self) -> bool:
        """True if candidate was changed since the last commit or discard."""
        return self._dirty

    def running_snapshot(self) -> Snapshot:
        return Snapshot(copy.deepcopy(self._trees["running"]))

    async def running_snapshot_cooperatively(self) -> Snapshot:
        """:meth:`running_snapshot`, the copy made in slices on the event loop (a
        confirmed commit's, under the write lock: running does not change meanwhile)."""
        return Snapshot(await run_cooperatively(copy_steps(self._trees["running"])))

    @staticmethod
    async def write_snapshot(snapshot: Snapshot, path: Path) -> None:
        """*path* := *snapshot* (running as ``<get-config>`` with-defaults explicit
        gives it), serialised and written with :func:`~agent.atomic.atomic_write`
        in a worker thread, waited for to its end even if the caller is cancelled
        (the file is then the old one or the snapshot, never a mix). Nothing else
        may use *snapshot* meanwhile (a confirmed commit's, under the write lock:
        its rollback waits for the lock). An :class:`OSError` is the caller's."""
        await _in_thread_to_the_end(partial(_write_snapshot_file, snapshot, path))

    @staticmethod
    async def put_back_snapshot(snapshot: Snapshot, path: Path) -> None:
        """:meth:`write_snapshot`, unless *path* exists (checked in the worker thread)."""
        await _in_thread_to_the_end(
            lambda: None if path.exists() else _write_snapshot_file(snapshot, path))

    @staticmethod
    async def remove_durably(path: Path) -> None:
        """*path* removed and its directory fsync'ed (the removal survives a power
        cut) in a worker thread, waited for to its end even if the caller is
        cancelled. An :class:`OSError` is the caller's."""
        await _in_thread_to_the_end(partial(_remove_durably, path))

    @property
    def running_version(self) -> int:
        """Changes whenever running changes: a cache key for views of running."""
        return self._versions["running"]

    def version(self, name: str) -> int:
        """Changes whenever datastore *name* changes (edit, copy, delete, commit,
        discard, rollback): a cache key for views of that datastore."""
        self._check_name(name, "source")
        return self._versions[name]

    def running_raw(self, without: str | None = None) -> dict:
        """Running (with defaults) as yangson raw JSON-ish data (RFC 7951 names),
        leaving out the elements with the Clark tag *without* (e.g. a long list
        that :meth:`running_entries` reads a part at a time)."""
        return raw_value(self.smap, self.smap.root, self.config_view("running", "report-all"),
                         skip=without)

    def running_keys(self, tags: tuple[str, ...]) -> list[tuple[str, ...]]:
        """The keys of the entries of the list at *tags* in running."""
        return list(self._entry_index(tags)[2])

    def running_entries(self, tags: tuple[str, ...],
                        keys: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], dict | None]:
        """The entries with *keys* of the list at *tags* (Clark tags from the
        root) in running, each with defaults as raw data (like
        :meth:`running_raw`), ``None`` for a key not in running. Only those
        entries are read: after a commit, views of running are brought up to
        date with what :attr:`ChangeSummary.entries` names.
        """
        _, info, index = self._entry_index(tags)
        return {key: None if (entry := index.get(key)) is None
                else raw_value(self.smap, info, entry) for key in set(keys)}

    def _entry_index(self, tags: tuple[str, ...]):
        """(running version, schema of the list, key -> entry in running's
        report-all view) for the list at *tags*, built once per version."""
        cached = self._indexes.get(tags)
        if cached is None or cached[0] != self._versions["running"]:
            info, entries = run_steps(self._index_steps(self.config_view("running", "report-all"),
                                                        tags))
            cached = self._indexes[tags] = (self._versions["running"], info, entries)
        return cached

    async def build_running_views(self, *lists: tuple[str, ...]) -> None:
        """Build running's report-all view (:meth:`config_view`) and the entry
        indexes of *lists* (:meth:`running_keys`) in slices on the event loop,
        unless they exist for running's version: after a start, so that the
        first reader does not build them at once while other sessions (a client
        just connecting) wait. A commit meanwhile brings its own."""
        version, slot = self._versions["running"], ("running", "report-all")
        cached = self._cache.get(slot)
        if cached is None or cached[0] != version:
            view = await run_cooperatively(self._view_steps(self._trees["running"]))
            if self._versions["running"] != version:
                return
            cached = self._cache.get(slot)
            if cached is None or cached[0] != version:  # no reader built it meanwhile
                self._cache[slot] = (version, view)
        for tags in lists:
            cached = self._indexes.get(tags)
            if cached is None or cached[0] != version:
                info, entries = await run_cooperatively(
                    self._index_steps(self.config_view("running", "report-all"), tags))
                if self._versions["running"] != version:
                    return
                self._indexes[tags] = (version, info, entries)

    def _view_steps(self, tree: etree._Element, at_once: bool = False) -> Steps[etree._Element]:
        """:meth:`config_view`'s report-all view of *tree* (a copy with defaults), in
        steps; *at_once*: see :func:`copy_steps`."""
        return (yield from self._defaults.report_all_steps(
            (yield from copy_steps(tree, at_once=at_once))))

    def _indexes_steps(self, view: etree._Element) -> Steps[dict[tuple[str, ...], tuple]]:
        """The entry indexes of *view* for the lists asked for before
        (:meth:`running_keys`), for a view about to become running's, in steps."""
        indexes = {}
        for tags in list(self._indexes):
            indexes[tags] = yield from self._index_steps(view, tags)
        return indexes

    def _index_steps(self, view: etree._Element, tags: tuple[str, ...]) -> Steps[tuple]:
        """(schema of the list at *tags*, key -> entry in *view*), in steps."""
        parent, info = view, self.smap.root
        for tag in tags[:-1]:
            info = self.smap.child(info, tag)
            parent = parent.find(tag) if parent is not None else None
        info = self.smap.child(info, tags[-1])
        return info, (yield from index_steps(parent, info))

    def add_commit_listener(self, fn: CommitListener) -> None:
        """Call ``fn(summary)`` after every change of running (commit, rollback,
        copy-config); ``running_raw()`` then gives the new configuration."""
        self._listeners.append(fn)

    # -- writes -----------------------------------------------------------------------
    def edit_config(self, target: str, config: etree._Element, *,
                    default_operation: str = "merge", test_option: str = "test-then-set",
                    error_option: str = "stop-on-error",
                    authorize: Authorize | None = None) -> bool:
        """``<edit-config>`` (RFC 6241 section 7.2) on candidate, at once;
        *authorize* may refuse the whole change. Whether it changed candidate
        (see :meth:`edit_config_cooperatively`)."""
        return run_steps(self._edit_steps(target, config, default_operation, test_option,
                                          error_option, authorize, None, None))

    async def edit_config_cooperatively(self, target: str, config: etree._Element, *,
                                        default_operation: str = "merge",
                                        test_option: str = "test-then-set",
                                        error_option: str = "stop-on-error",
                                        authorize: Authorize | None = None,
                                        recheck: Callable[[], None] | None = None,
                                        invalid: Invalid | None = None) -> bool:
        """:meth:`edit_config` while other sessions go on (issue 9); whether it
        changed the target.

        The edit runs on the event loop in slices
        (:func:`~agent.datastore.steps.run_cooperatively`) on a copy of the
        target made at once (a few milliseconds for 10,000 list entries), *authorize* and the
        full validation of ``test-only`` in worker threads; trees are never
        changed in place, so they read a tree nobody changes, and other
        sessions see the target as it was until the edited tree replaces it.
        Edits run one at a time. *recheck* (e.g. the lock check of RFC 6241
        section 7.5) is called again just before that replacement. If the
        target was replaced meanwhile (copy-config, discard-changes), the edit
        is done again, in slices too, on the new tree, so no change is lost; after
        :data:`EDIT_ATTEMPTS` such attempts it fails and changes nothing.

        An edit that leaves the target equal to what it was (the engine tells:
        :attr:`~agent.datastore.editconfig.EditResult.changed`) does not replace
        it: the target's version stays, and candidate is not marked modified
        (:attr:`candidate_dirty`: RFC 6241 sections 7.5 and 8.3.5.1, a lock of
        candidate is refused only once it "has been modified").
        """
        async with self._editing:
            return await run_cooperatively(self._edit_steps(target, config, default_operation,
                                                            test_option, error_option,
                                                            authorize, recheck, invalid))

    def _edit_steps(self, target: str, config: etree._Element, default_operation: str,
                    test_option: str, error_option: str, authorize: Authorize | None,
                    recheck: Callable[[], None] | None,
                    invalid: Invalid | None) -> Steps[bool]:
        """:meth:`edit_config` in steps; *authorize* and validation are calls
        made off the loop (:mod:`agent.datastore.steps`); *invalid* rewrites
        the validation errors of ``test-only``. Whether the target changed
        (``test-only``: whether it would have)."""
        self._check_writable(target, "edit-config")
        if test_option not in ("test-then-set", "set", "test-only"):
            raise RpcError("invalid-value", "test-option must be test-then-set, set or "
                           f"test-only, not {test_option!r}", type="protocol",
                           info={"bad-element": "test-option"})
        for _ in range(EDIT_ATTEMPTS):
            version, base = self._versions[target], self._trees[target]
            # at once: lxml's deepcopy takes about 0.6 us an entry, copy_steps eight times that
            work = _empty() if default_operation == "replace" else copy.deepcopy(base)
            result = yield from apply_edit_steps(self.smap, work, config,
                                                 default_operation=default_operation,
                                                 error_option=error_option,
                                                 seal_secret=self._seal)
            changed = result.changed
            if default_operation == "replace":  # built anew: the same as before?
                changed = not (yield from same_steps(base, work))
            if authorize is not None:
                yield partial(authorize, base, work)
            if test_option == "test-only":
                if result.errors:
                    raise RpcErrors(result.errors)
                try:
                    yield partial(validate_tree, self.smap, work)
                except (RpcError, RpcErrors) as exc:
                    if invalid is None:
                        raise
                    raise invalid(exc) from None
                return changed
            if recheck is not None:
                recheck()
            if self._versions[target] == version:
                if changed:
                    self._set(target, work)
                    self._dirty = True
                if result.errors:  # continue-on-error: the good parts stay applied
                    raise RpcErrors(result.errors)
                return changed
        raise _replaced_meanwhile(target, "edit", "copy-config, discard-changes")

    def copy_config(self, target: str, source: str | etree._Element,
                    authorize: Authorize | None = None,
                    readable: Readable | None = None) -> ChangeSummary | None:
        """``<copy-config>`` (RFC 6241 section 7.3) to candidate or startup, at
        once; what changed in startup, ``None`` for candidate. *readable* cuts a
        copy of a source datastore down to what the client may read (the rest
        is not copied, RFC 8341 section 3.2.6); *authorize* may refuse the copy.
        Sessions use :meth:`copy_config_durably`."""
        self._check_writable(target, "copy-config", allow_startup=True)
        tree = run_steps(self._copy_source_steps(
            target, source, None if authorize is None else _at_once(authorize),
            None if readable is None else _at_once(readable), True))
        if target == "startup":
            summary = run_steps(self._startup_steps(tree))
            self._put_startup(self._serialize(tree))
            self._switch_startup(tree)
            return summary
        self._copied_to_candidate(source, tree)
        return None

    def _copied_to_candidate(self, source: str | etree._Element, tree: etree._Element) -> None:
        self._dirty = True
        self._set("candidate", tree)
        if source == "running":
            self._note_rebased()

    async def copy_config_durably(self, target: str, source: str | etree._Element,
                                  authorize: AuthorizeCopy | None = None,
                                  readable: ReadableSteps | None = None,
                                  recheck: Callable[[], None] | None = None
                                  ) -> ChangeSummary | None:
        """:meth:`copy_config`, to startup (RFC 6241 sections 7.3 and 8.7) as
        :meth:`commit_durably` makes a commit, while other sessions go on: copies to
        and deletes of startup are made one at a time, in turn; in its turn, the
        copy of the source and the change from startup are computed in slices on
        the event loop, the validation and ``startup.xml`` (serialised, then
        written with :func:`~agent.atomic.atomic_write`) in worker threads. Readers
        see startup as it was until the file is durable, then the new one, in the
        loop step in which this returns. *recheck* (raising :class:`RpcError`, e.g.
        a lock taken meanwhile) is called before the write and after it (then the
        file is put back: see :meth:`_write_startup`). A failed write is an
        ``operation-failed`` rpc-error, startup then unchanged in memory and on
        disk. *authorize* and *readable* are :data:`Authorize` and :data:`Readable`
        in steps (e.g. :meth:`~agent.netconf.nacm.Access.check_write_steps`).

        To candidate, as :meth:`edit_config_cooperatively` edits it: the copy of
        the source (or the check of the inline ``<config>``), *readable* and
        *authorize* in slices on the event loop, other sessions answered
        meanwhile (with many NACM rules, the prune and the write check of a copy
        of 10,000 entries take seconds); they see candidate as it was until the
        copy replaces it, at once, after *recheck*. If candidate (an edit, a
        discard-changes) or the source was replaced meanwhile, the copy is made
        again, as an edit is: at most :data:`EDIT_ATTEMPTS` times in all."""
        self._check_writable(target, "copy-config", allow_startup=True)
        if target != "startup":
            await run_cooperatively(self._copy_to_candidate_steps(source, authorize, readable,
                                                                  recheck))
            return None
        async with self._writing_startup:
            tree = await run_cooperatively(self._copy_source_steps(target, source, authorize,
                                                                   readable))
            summary = await run_cooperatively(self._startup_steps(tree))
            await self._write_startup(tree, recheck)
            return summary

    def _copy_to_candidate_steps(self, source: str | etree._Element,
                                 authorize: AuthorizeCopy | None,
                                 readable: ReadableSteps | None,
                                 recheck: Callable[[], None] | None) -> Steps[None]:
        """:meth:`copy_config_durably` to candidate, in steps."""
        for _ in range(EDIT_ATTEMPTS):
            version, origin = self._versions["candidate"], self._copy_origin(source)
            tree = yield from self._copy_source_steps("candidate", source, authorize, readable)
            if recheck is not None:
                recheck()
            if self._versions["candidate"] == version and self._copy_origin(source) is origin:
                self._copied_to_candidate(source, tree)
                return
        raise _replaced_meanwhile("candidate", "copy-config",
                                  "edit-config, copy-config, discard-changes")

    def _copy_origin(self, source: str | etree._Element) -> etree._Element:
        """The tree a copy from *source* to candidate copies (trees are replaced,
        never changed in place: the same tree, the same content)."""
        if source == "running":
            return self._running_to_come()  # see there
        return self._trees[source] if isinstance(source, str) else source

    def _copy_source_steps(self, target: str, source: str | etree._Element,
                           authorize: AuthorizeCopy | None, readable: ReadableSteps | None,
                           at_once: bool = False) -> Steps[etree._Element]:
        """The tree :meth:`copy_config` puts in *target* (a copy of datastore
        *source*, or the inline ``<config>`` checked), in steps; *at_once*: see
        :func:`copy_steps`."""
        if isinstance(source, str):
            self._check_name(source, "source")
            if source == target:
                raise RpcError("invalid-value", f"source and target are both {source}; "
                               "nothing to copy", type="protocol", info={"bad-element": "source"})
            rebase = (source, target) == ("running", "candidate")  # see _running_to_come
            tree = yield from copy_steps(self._running_to_come() if rebase
                                         else self._trees[source], at_once=at_once)
            if readable is not None:
                tree = yield from readable(tree)
        else:
            tree = yield from self._inline_steps(source)
        if authorize is not None:
            yield from authorize(self._trees[target], tree)
        return tree

    def _startup_steps(self, tree: etree._Element) -> Steps[ChangeSummary]:
        """*tree* validated (startup must always be bootable; in a worker thread
        when run cooperatively), then the change from startup, in steps."""
        yield partial(validate_tree, self.smap, tree)
        return (yield from diff_steps(self.smap, self._trees["startup"], tree))

    def delete_config(self, target: str, authorize: Authorize | None = None) -> ChangeSummary:
        """``<delete-config>`` (RFC 6241 section 7.4): only startup can be deleted;
        returns what was deleted. At once: sessions use :meth:`delete_config_durably`."""
        self._check_deletable(target)
        if authorize is not None:
            authorize(self._trees["startup"], _empty())
        summary = diff(self.smap, self._trees["startup"], _empty())
        if self._startup_exists:
            self._put_startup(None)
        self._switch_startup(None)
        return summary

    async def delete_config_durably(self, target: str, authorize: Authorize | None = None,
                                    recheck: Callable[[], None] | None = None
                                    ) -> ChangeSummary:
        """:meth:`delete_config` as :meth:`copy_config_durably` copies to startup:
        in its turn, the change computed in slices, ``startup.xml`` removed (and
        its directory fsync'ed) in a worker thread; readers see startup until then."""
        self._check_deletable(target)
        async with self._writing_startup:
            if authorize is not None:
                authorize(self._trees["startup"], _empty())
            summary = await run_cooperatively(diff_steps(self.smap, self._trees["startup"],
                                                         _empty()))
            await self._write_startup(None, recheck)
            return summary

    def _check_deletable(self, target: str) -> None:
        if target != "startup":
            self._check_name(target, "target")
            raise RpcError("operation-not-supported", f"delete-config of {target} is not "
                           "allowed; only startup can be deleted", type="protocol")

    async def _write_startup(self, tree: etree._Element | None,
                             recheck: Callable[[], None] | None) -> None:
        """startup := *tree* (``None``: deleted), ``startup.xml`` made so durably
        first, in worker threads (serialised, written or removed), waited for to
        their end even if the caller is cancelled; under :attr:`_writing_startup`.
        If the write fails, or *recheck* refuses after it, or the caller is
        cancelled (agent shutdown) meanwhile, the file is put back as startup in
        memory stays (:meth:`_put_back_startup`) and the error raised, an
        :class:`OSError` as an ``operation-failed`` rpc-error."""
        old = self._trees["startup"] if self._startup_exists else None  # as it stays
        data = None if tree is None else await _in_thread_to_the_end(
            partial(self._serialize, tree))
        if recheck is not None:  # other sessions' RPCs ran while this one waited
            recheck()
        if data is not None or old is not None:
            try:
                await _in_thread_to_the_end(partial(self._put_startup, data))
                if recheck is not None:
                    recheck()
            except BaseException as exc:
                await _in_thread_to_the_end(partial(self._put_back_startup, data, old))
                if isinstance(exc, OSError):
                    raise RpcError("operation-failed", f"{self._startup_file} could not be "
                                   f"{'removed' if data is None else 'written'} "
                                   f"({exc.strerror or exc}); startup was not changed. Check "
                                   "the state directory's disk and permissions, then try "
                                   "again", type="application") from None
                raise
        self._switch_startup(tree)

    def _put_startup(self, data: bytes | None) -> None:
        """``startup.xml`` := *data* (``None``: removed), durably."""
        if data is None:
            _remove_durably(self._startup_file)
        else:
            self._write(self._startup_file, data)

    def _put_back_startup(self, written: bytes | None, old: etree._Element | None) -> None:
        """After a failed or refused write of *written* (``None``: the removal):
        if ``startup.xml`` holds it, the file is made startup *old* again (``None``:
        removed). Failing to is logged: the write's own failure is what the client
        is told."""
        try:
            try:
                holds: bytes | None = self._startup_file.read_bytes()
            except FileNotFoundError:
                holds = None
            if holds == written:
                self._put_startup(None if old is None else self._serialize(old))
        except OSError as exc:
            log.error("%s holds a change of startup that was not made and could not be "
                      "undone (%s); the next start without running.xml would load it",
                      self._startup_file, exc)

    def _switch_startup(self, tree: etree._Element | None) -> None:
        self._set("startup", tree if tree is not None else _empty())
        self._startup_exists = tree is not None

    def validate(self, source: str | etree._Element) -> None:
        """``<validate>`` (RFC 6241 section 8.6): full YANG validation, at once."""
        run_steps(self._validate_steps(source))

    async def validate_cooperatively(self, source: str | etree._Element) -> None:
        """:meth:`validate` while other sessions go on: the full validation (about
        half a second for 1,000 list entries) in a worker thread, on the tree as it
        is now (trees are never changed in place); an inline ``<config>`` converted
        in slices on the event loop first, as :meth:`copy_config_durably` does."""
        await run_cooperatively(self._validate_steps(source))

    def _validate_steps(self, source: str | etree._Element) -> Steps[None]:
        if isinstance(source, str):
            self._check_name(source, "source")
            tree, version = self._trees[source], self._versions[source]
            if self._validated.get(source) == version:
                return
            yield partial(validate_tree, self.smap, tree)
            self._validated[source] = version
        else:
            yield partial(validate_tree, self.smap, (yield from self._inline_steps(source)))

    async def prepare_commit(self, authorize: AuthorizeSteps | None = None) -> None:
        """The heavy part of the next :meth:`commit`, while other sessions go on.

        The copy of candidate for running, running's report-all view, the
        quick check of candidate (:mod:`agent.datastore.quickcheck`), the
        change summary and the bytes of ``running.xml`` are computed from the
        trees as they are now (trees are never changed in place: every write
        replaces one) on the event loop in slices of about a millisecond
        (:func:`~agent.datastore.steps.run_cooperatively`), so that no worker
        thread competes with the loop for the GIL; full validation, when the
        quick check cannot tell, and the write of the new file (fsync'ed, to be
        renamed by :meth:`commit_durably`) run in worker threads. The next
        commit uses the result if neither candidate nor running has
        changed since; otherwise it does the work itself. A validation error
        is raised here, and so is the refusal of *authorize* (the write check of
        the user who commits), run in slices too on what the commit changes.
        """
        async with self._preparing:
            key = (self._versions["candidate"], self._versions["running"])
            prepared = self._prepared
            if prepared is None or prepared.key != key:
                prepared = await self._prepare_cooperatively(key)
            if prepared.unchecked_by(authorize):
                try:
                    await run_cooperatively(authorize(prepared.old, prepared.tree,
                                                      prepared.summary))
                except BaseException:
                    if self._prepared is prepared:
                        self.release_prepared()
                    raise
                prepared.authorized.add(authorize)

    async def _prepare_cooperatively(self, key: tuple[int, int]) -> "_PreparedCommit":
        """The computing part of :meth:`prepare_commit`, for *key*."""
        self.release_prepared()
        candidate, running = self._trees["candidate"], self._trees["running"]
        new, view, summary, indexes = await run_cooperatively(
            self._commit_steps(key, candidate, running))
        # the bytes, their digest and the write in a worker thread: lxml's
        # serialiser and hashlib give up the GIL (nothing else uses *new* yet);
        # the last await, so that a cancellation before it leaves no staged file; one
        # while it runs leaves the thread writing on, and its file is removed once written
        stage = asyncio.ensure_future(asyncio.to_thread(self._stage, new, not summary.empty))
        try:
            data, staged = await asyncio.shield(stage)
        except asyncio.CancelledError:
            stage.add_done_callback(_unlink_staged)
            raise
        self._prepared = _PreparedCommit(key, new, running, summary, data, view, staged,
                                         indexes)
        return self._prepared

    def _commit_steps(self, key: tuple[int, int], candidate: etree._Element,
                      running: etree._Element) -> Steps[tuple]:
        """(copy of candidate, its report-all view, the change from *running*, the
        entry indexes of the view): the computing part of :meth:`prepare_commit`,
        one computation, so that its parts share slices (run one after the other,
        the end of one and the first slice of the next would hold the loop at once);
        a full validation, when the quick check cannot tell, in a worker thread."""
        new, view, valid = yield from self._prepare_steps(key, candidate)
        if not valid:
            yield partial(validate_tree, self.smap, candidate)
        summary = yield from diff_steps(self.smap, running, new)
        return new, view, summary, (yield from self._indexes_steps(view))

    def _stage(self, new: etree._Element, write: bool) -> tuple[bytes, Path | None]:
        data = self._stamp(self._serialize(new))
        return data, write_temporary(self._running_file, data, mode=0o600) if write else None

    def release_prepared(self) -> None:
        """Forget what :meth:`prepare_commit` computed (a commit refused after it)."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared.staged is not None:
            prepared.staged.unlink(missing_ok=True)

    def _prepare_steps(self, key: tuple[int, int], candidate: etree._Element,
                       at_once: bool = False) -> Steps[tuple]:
        """(copy of candidate, its report-all view, whether it is known valid);
        *at_once*: for :func:`run_steps` (see :func:`copy_steps`)."""
        new = yield from copy_steps(candidate, at_once=at_once)
        view = yield from self._view_steps(new, at_once)
        valid = self._validated.get("candidate") == key[0] or (yield from self._quick.steps(new,
                                                                                       view))
        return new, view, valid

    def _prepare(self, key: tuple[int, int], candidate: etree._Element,
                 running: etree._Element) -> "_PreparedCommit":
        """:meth:`prepare_commit` at once, for a commit that was not prepared."""
        new, view, valid = run_steps(self._prepare_steps(key, candidate, at_once=True))
        if not valid:
            validate_tree(self.smap, candidate)  # raises the rpc-error (or finds it valid)
        summary = diff(self.smap, running, new)
        return _PreparedCommit(key, new, running, summary, self._stamp(self._serialize(new)),
                               view)

    def commit(self, authorize: AuthorizeSteps | None = None) -> ChangeSummary:
        """``<commit>`` (RFC 6241 section 8.3.4.1): candidate becomes running.

        *authorize* may refuse the change; it is not run again if
        :meth:`prepare_commit` ran it on this very change (it is run at once
        if candidate or running changed since).
        """
        prepared = self._take_prepared(authorize)
        self._install_running(prepared.tree, prepared.summary, prepared.data, prepared.view,
                              prepared.staged, prepared.indexes)
        return self._committed(prepared)

    async def commit_durably(self, authorize: AuthorizeSteps | None = None,
                             recheck: Callable[[], None] | None = None,
                             begin: Callable[[], Awaitable[None]] | None = None,
                             end: Callable[[], Awaitable[None]] | None = None
                             ) -> ChangeSummary:
        """:meth:`commit` with ``running.xml`` renamed into place and its
        directory fsync'ed in a worker thread: the directory fsync takes
        milliseconds, during which the event loop would serve no session.

        Running in memory changes only once the new file is durable: until
        then readers see the old running, and a crash leaves the old file or
        the new one. Other sessions' RPCs run meanwhile, so after the write
        *recheck* (raising :class:`RpcError`, e.g. a lock taken meanwhile) is
        called again and running must be as it was (a confirmed commit may
        have been rolled back); if not, ``running.xml`` is written back from
        running in memory and nothing is committed. A write that fails
        (rename, fsync) is an ``operation-failed`` rpc-error; running is then
        unchanged in memory and on disk. Commits are written one at a time:
        *begin* is called once this commit's turn has come and before its write
        (a confirmed commit's snapshot of running and its backup file: no other
        commit can change running until this one ends); meanwhile, as during
        the write, running "is" the tree to be written for discard-changes.
        *end* is called, still in this commit's turn, once ``running.xml`` holds
        the commit durably and *recheck* passed, before running changes in memory
        (a confirming commit's durable removal of the confirmed commit's backup);
        if it raises (or is cancelled), ``running.xml`` is written back and nothing
        is committed.
        """
        async with self._writing:
            if self._prepared is None or self._prepared.key != (self._versions["candidate"],
                                                                self._versions["running"]):
                # running changed by the commit written before this one: in slices again
                await self.prepare_commit(authorize)
            prepared = self._take_prepared(authorize)
            # meanwhile running "is" the tree written, for discard-changes (see _incoming)
            self._incoming, self._rebased = prepared.tree, None
            try:
                try:
                    if begin is not None:
                        await begin()
                    if prepared.summary.empty:
                        if recheck is not None:  # other sessions' RPCs ran meanwhile
                            recheck()
                        if end is not None:
                            await end()
                        return self._committed(prepared)
                except BaseException:
                    if prepared.staged is not None:
                        prepared.staged.unlink(missing_ok=True)
                    raise
                await self._write_commit(prepared, recheck, end)
            except BaseException:
                if self._rebased == self._versions["candidate"]:
                    # candidate was set to this commit's tree since: running as it stays
                    self._incoming = None  # a discard-changes meanwhile copies running
                    await self._candidate_back_to_running()
                raise
            finally:
                self._incoming = None
            return self._committed(prepared)

    async def _candidate_back_to_running(self) -> None:
        """After a failed commit whose tree candidate was set to (discard-changes
        while it was written): candidate := running, the copy made in slices on the
        event loop (other sessions' RPCs answered meanwhile: a copy of 10,000
        entries at once held the loop for tens of milliseconds), candidate replaced
        at once when it is ready, unless it was changed meanwhile (edited on the
        commit's tree, as if before the failure; copied to; discarded: set to
        running then). Cancelled (agent shutdown), the copy is made at once."""
        version, running = self._versions["candidate"], self._trees["running"]
        try:
            tree = await run_cooperatively(copy_steps(running))
        except asyncio.CancelledError:
            if self._versions["candidate"] == version:
                self._set("candidate", copy.deepcopy(running))
                self._dirty = False
            raise
        if self._versions["candidate"] == version:
            self._set("candidate", tree)
            self._dirty = False

    async def _write_commit(self, prepared: _PreparedCommit,
                            recheck: Callable[[], None] | None,
                            end: Callable[[], Awaitable[None]] | None = None) -> None:
        """The write of :meth:`commit_durably` and running's switch once it is durable."""
        try:
            await _in_thread_to_the_end(partial(self._persist, prepared))
        except asyncio.CancelledError:
            # agent shutdown: the thread went on; now that it is done, running.xml
            # is made running in memory again (a confirmed commit rolled back as its
            # session ended must stay rolled back after the restart); a failed
            # write left the file as it was
            await self._restore_file(prepared.data)
            raise
        except OSError as exc:
            await self._restore_file(prepared.data)
            raise RpcError("operation-failed", f"{self._running_file} could not be "
                           f"written ({exc.strerror or exc}); nothing was committed. "
                           "Check the state directory's disk and permissions, then commit "
                           "again", type="application") from None
        try:
            if self._versions["running"] != prepared.key[1]:
                raise RpcError("in-use", "running was changed while this commit was "
                               "being written (a confirmed commit rolled back); nothing "
                               "was committed, commit again", type="protocol")
            if recheck is not None:
                recheck()
            if end is not None:
                await end()
        except BaseException:  # refused, or *end* failed or was cancelled
            await self._restore_file(prepared.data)
            raise
        self._switch_running(prepared.tree, prepared.summary, prepared.view,
                             prepared.indexes)

    def _take_prepared(self, authorize: AuthorizeSteps | None) -> _PreparedCommit:
        """What :meth:`prepare_commit` prepared for candidate and running as they
        are now, else the same computed at once; no longer :attr:`_prepared`."""
        key = (self._versions["candidate"], self._versions["running"])
        prepared = self._prepared
        if prepared is None or prepared.key != key:
            self.release_prepared()
            prepared = self._prepare(key, self._trees["candidate"], self._trees["running"])
        if prepared.unchecked_by(authorize):
            run_steps(authorize(prepared.old, prepared.tree, prepared.summary))
        self._prepared = None
        return prepared

    def _committed(self, prepared: _PreparedCommit) -> ChangeSummary:
        self._validated["candidate"] = prepared.key[0]
        # candidate edited while the commit was written: it may differ (not if it was
        # only set to running, the tree written, by discard-changes)
        self._dirty = self._versions["candidate"] not in (prepared.key[0], self._rebased)
        self._rebased = None
        return prepared.summary

    def _persist(self, prepared: _PreparedCommit) -> None:
        """``running.xml`` := *prepared*'s bytes, durably (in a worker thread)."""
        if prepared.staged is not None:
            install_temporary(prepared.staged, self._running_file)
        else:
            self._write(self._running_file, prepared.data)

    async def _restore_file(self, written: bytes) -> None:
        """After a failed or refused :meth:`commit_durably`: if ``running.xml``
        holds what it wrote, running in memory is written back over it, as the
        commit's own write is made: in a worker thread (the serialisation and the
        fsyncs of a large running would hold the event loop for milliseconds),
        with :func:`~agent.atomic.atomic_write` (the file is the one or the other,
        never a mix), waited for to its end even if the caller is cancelled (the
        write lock is held until the file is settled). Failing to write it back
        is logged: the commit's own failure is what the client is told."""
        running = self._trees["running"]  # as it stays: no commit switches it meanwhile
        try:
            await _in_thread_to_the_end(partial(self._rewrite_if_holding, written, running))
        except OSError as exc:
            log.error("%s holds a commit that was not made and could not be written back "
                      "(%s); the next start would load it", self._running_file, exc)

    def discard_changes(self) -> None:
        """``<discard-changes>`` (RFC 6241 section 8.3.4.2): candidate := running
        (while a commit is written, the running it writes: see :meth:`commit_durably`)."""
        self._set("candidate", copy.deepcopy(self._running_to_come()))
        self._dirty = False
        self._note_rebased()

    async def discard_changes_cooperatively(self, recheck: Callable[[], None] | None = None
                                            ) -> None:
        """:meth:`discard_changes` while other sessions go on: the copy of running
        made in slices on the event loop (a copy of 10,000 entries at once held
        the loop for tens of milliseconds), candidate replaced at once when it is
        ready, after *recheck* (e.g. the lock check of RFC 6241 section 7.5).
        If running (or the tree a commit is writing) was replaced meanwhile, the
        copy is made again; after :data:`EDIT_ATTEMPTS` such attempts, at once."""
        for _ in range(EDIT_ATTEMPTS):
            origin = self._running_to_come()
            tree = await run_cooperatively(copy_steps(origin))
            if recheck is not None:
                recheck()
            if self._running_to_come() is origin:
                self._set("candidate", tree)
                self._dirty = False
                self._note_rebased()
                return
        self.discard_changes()

    def _running_to_come(self) -> etree._Element:
        """Running, or the tree a commit is writing to become running. A candidate
        set to running meanwhile gets the latter: else, once the commit is made,
        candidate would hold the running before it, and the next commit would undo
        it; if the commit fails, candidate is set to running again."""
        return self._incoming if self._incoming is not None else self._trees["running"]

    def _note_rebased(self) -> None:
        if self._incoming is not None:
            self._rebased = self._versions["candidate"]

    def restore_running(self, snapshot: Snapshot) -> ChangeSummary:
        """Confirmed-commit rollback (RFC 6241 section 8.4): running and
        candidate := *snapshot*, persisted."""
        summary = self._replace_running(copy.deepcopy(snapshot._tree))
        self._set("candidate", copy.deepcopy(snapshot._tree))
        self._dirty = False
        return summary

    async def restore_running_durably(self, snapshot: Snapshot,
                                      wanted: Callable[[], bool]) -> ChangeSummary | None:
        """:meth:`restore_running` as :meth:`commit_durably` makes a commit, for a
        confirmed-commit rollback while other sessions go on: after the commit
        being written, if any (rollbacks and commits are written one at a time),
        unless *wanted* then says otherwise (``None``: nothing done); the copies
        of *snapshot*, the change from running, running's report-all view and its
        entry indexes computed in slices on the event loop, ``running.xml``
        serialised and written (:func:`~agent.atomic.atomic_write`) in a worker
        thread. Readers see running as it was until the file is durable, then
        running and candidate are switched at once, in the loop step in which this
        returns. A failed write is an ``operation-failed`` rpc-error, running and
        candidate then unchanged, in memory and on disk. Cancelled (agent shutdown)
        while the file is written, it waits for the write and changes nothing in
        memory: the file holds the one running or the other, and the server's
        confirmed-commit backup rolls back at the next start."""
        async with self._writing:
            if not wanted():
                return None
            running = self._trees["running"]  # as it stays: commits wait for the lock
            new, view, summary, indexes, candidate = await run_cooperatively(
                self._restore_steps(snapshot._tree, running))
            if not summary.empty:
                try:
                    await _in_thread_to_the_end(partial(self._write_tree, new))
                except OSError as exc:
                    raise RpcError("operation-failed", f"{self._running_file} could not be "
                                   f"written ({exc.strerror or exc}); running was not rolled "
                                   "back", type="application") from None
                self._switch_running(new, summary, view, indexes)
            self._set("candidate", candidate)
            self._dirty = False
            return summary

    def _restore_steps(self, snapshot: etree._Element, running: etree._Element) -> Steps[tuple]:
        """(copy of *snapshot* for running, its report-all view, the change from
        *running*, the view's entry indexes, another copy for candidate), in steps."""
        new = yield from copy_steps(snapshot)
        view = yield from self._view_steps(new)
        summary = yield from diff_steps(self.smap, running, new)
        indexes = yield from self._indexes_steps(view)
        candidate = yield from copy_steps(snapshot)
        return new, view, summary, indexes, candidate

    def _write_tree(self, tree: etree._Element) -> None:
        """``running.xml`` := *tree*, stamped (in a worker thread: nothing else changes
        *tree*, lxml's serialiser gives up the GIL)."""
        self._write(self._running_file, self._stamp(self._serialize(tree)))

    # -- internals --------------------------------------------------------------------
    def _replace_running(self, new: etree._Element) -> ChangeSummary:
        summary = diff(self.smap, self._trees["running"], new)
        return self._install_running(new, summary, None)

    def _install_running(self, new: etree._Element, summary: ChangeSummary,
                         data: bytes | None, view: etree._Element | None = None,
                         staged: Path | None = None,
                         indexes: dict[tuple[str, ...], tuple] | None = None) -> ChangeSummary:
        if summary.empty:
            return summary
        if staged is not None:
            install_temporary(staged, self._running_file)
        else:
            self._write(self._running_file,
                        data if data is not None else self._stamp(self._serialize(new)))
        return self._switch_running(new, summary, view, indexes)

    def _switch_running(self, new: etree._Element, summary: ChangeSummary,
                        view: etree._Element | None = None,
                        indexes: dict[tuple[str, ...], tuple] | None = None) -> ChangeSummary:
        """Running := *new*, already persisted; the listeners hear of it."""
        replaced = [self._trees["running"], self._cache.get(("running", "report-all"))]
        self._set("running", new)
        if view is not None:  # what get-config and the PKI view read, made in steps
            version = self._versions["running"]
            self._cache[("running", "report-all")] = (version, view)
            for tags, (info, entries) in (indexes or {}).items():
                replaced.append(self._indexes.get(tags))
                self._indexes[tags] = (version, info, entries)
        for fn in self._listeners:
            try:
                fn(summary)
            except Exception:  # a listener's bug must not undo a commit
                log.exception("commit listener %r failed", fn)
        self._release_later(replaced)
        return summary

    def _release_later(self, replaced: list) -> None:
        """Let go of what running was before a commit (its tree, its report-all view,
        the views' indexes) one at a time in later loop iterations, after the commit's
        reply: freeing a tree of 1,000 list entries takes about a millisecond (lxml
        frees it at once, holding the interpreter), and all of it in the commit's last
        step held the loop for several. Without an event loop they go at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if not self._releasing:
            loop.call_soon(self._release_one, loop)
        self._releasing.extend(item for item in replaced if item is not None)

    def _release_one(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._releasing:
            self._releasing.pop()  # freed here, unless a reader still holds it
        if self._releasing:
            loop.call_soon(self._release_one, loop)

    def _set(self, name: str, tree: etree._Element) -> None:
        self._trees[name] = tree
        self._versions[name] += 1

    def _inline(self, config: etree._Element) -> etree._Element:
        """An inline ``<config>``: checked and secrets sealed like an edit."""
        return run_steps(self._inline_steps(config))

    def _inline_steps(self, config: etree._Element) -> Steps[etree._Element]:
        """:meth:`_inline` in steps (a pause after each list entry)."""
        tree = _empty()
        yield from apply_edit_steps(self.smap, tree, config, default_operation="merge",
                                    error_option="stop-on-error", seal_secret=self._seal)
        return tree

    def _seal(self, info: NodeInfo, value: str, path: str, stored: str | None = None) -> str:
        """Store a secret leaf only as ciphertext; our own ciphertext is kept.

        Writing the clear text of the secret already *stored* keeps the stored
        ciphertext, so that re-applying the same configuration changes nothing
        (what idempotent tools such as Ansible's netconf_config compare).
        """
        if self.secrets.is_ciphertext(value):
            return value
        if stored is not None and self.secrets.is_ciphertext(stored) \
                and self.secrets.open_text(stored) == value:
            return stored
        if value.startswith(MARK):
            raise RpcError("invalid-value", f"{info.node.name} looks like an agent ciphertext "
                           "but cannot be decrypted with this agent's key; write the secret "
                           "as clear text", path=path,
                           path_namespaces=self.smap.path_namespaces(path),
                           info={"bad-element": info.node.name})
        if len(value) > CLEAR_TEXT_MAX:
            raise RpcError("invalid-value", f"a clear-text {info.node.name} is 1 to "
                           f"{CLEAR_TEXT_MAX} characters long", path=path,
                           path_namespaces=self.smap.path_namespaces(path),
                           info={"bad-element": info.node.name})
        sealed = self.secrets.seal(value)
        if sealed not in info.node.type:  # many multi-byte characters: too long sealed
            raise RpcError("invalid-value", f"the {info.node.name} is too long once encrypted; "
                           "use fewer or plainer (ASCII) characters", path=path,
                           path_namespaces=self.smap.path_namespaces(path),
                           info={"bad-element": info.node.name})
        return sealed

    @staticmethod
    def _check_name(name: str, what: str) -> None:
        if name not in DATASTORES:
            raise RpcError("invalid-value", f"{what} must be one of {', '.join(DATASTORES)}, "
                           f"not {name!r}", type="protocol", info={"bad-element": what})

    def _check_writable(self, target: str, op: str, allow_startup: bool = False) -> None:
        self._check_name(target, "target")
        if target == "running":
            raise RpcError("operation-not-supported", f"{op} cannot target running (the agent "
                           "has no :writable-running); edit candidate and commit",
                           type="protocol")
        if target == "startup" and not allow_startup:
            raise RpcError("operation-not-supported", f"{op} cannot target startup; use "
                           "copy-config running -> startup", type="protocol")
