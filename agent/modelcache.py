"""The compiled YANG model kept between starts: yangson's DataModel, pickled.

Compiling the agent's modules (parsing them, resolving groupings, types and
XPath, translating XSD patterns) costs more CPU than anything else the agent
does before it accepts connections; loading the pickle of the result costs
about a tenth of that.

The cache never stands in for a different model: its file starts with a key
that covers everything the compiled model depends on (each module's name,
revision, namespace, conformance, features and whole text, the last by the
SHA-256 :func:`agent.model._module_info` took of it as it read the file; the
files of the installed yangson; the versions of Python and of the agent), and a file with another key, or one that
does not load, is ignored: the model is compiled and the file replaced
(:meth:`ModelCache.write`, atomically). Loading a pickle runs code, so the file
is read only if neither it nor its directory can be changed by another user
(the same rule as the state directory's, :func:`agent.atomic.writable_by_others`).

The model's regular expressions (yangson's ``Pattern.regex``, the modules' XSD
``pattern`` statements translated) are kept as their source and flags and compiled
at their first use (:class:`PatternAtFirstUse`): unpickling a compiled ``re.Pattern``
compiles it again, and ietf-inet-types' address patterns, whose Unicode letter and
digit classes ``re``'s compiler expands code point by code point, cost more than half of
loading the model, while the agent's start matches none of them.
"""

from __future__ import annotations

import contextlib
import copyreg
import gc
import hashlib
import io
import os
import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_write, writable_by_others

if TYPE_CHECKING:
    from yangson import DataModel

    from .model import ModuleInfo

#: the file's first line, followed by the key; a change of layout changes it
MAGIC = b"cmp-agent compiled YANG model v2 "


class PatternAtFirstUse:
    """A regular expression of the cached model: ``re.compile(pattern, flags)`` made at
    the first use, then answering for it (yangson calls ``regex.match``; any other
    attribute of a compiled pattern is there too). Pickled as its source and flags."""

    __slots__ = ("pattern", "flags", "_compiled")

    def __init__(self, pattern: str, flags: int) -> None:
        self.pattern = pattern
        self.flags = flags
        self._compiled: re.Pattern | None = None

    def compiled(self) -> re.Pattern:
        """The compiled pattern (compiled now if not yet; two threads may both compile
        it, and either result serves)."""
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = re.compile(self.pattern, self.flags)
        return compiled

    def match(self, string: str, *args):
        return self.compiled().match(string, *args)

    def __getattr__(self, name: str):
        if name.startswith("__"):  # a protocol's probe (copy's __deepcopy__, ...): not there
            raise AttributeError(name)
        return getattr(self.compiled(), name)

    def __copy__(self) -> PatternAtFirstUse:
        return self  # as a compiled pattern's copy is itself

    def __deepcopy__(self, memo: dict) -> PatternAtFirstUse:
        return self

    def __reduce__(self):
        return (PatternAtFirstUse, (self.pattern, self.flags))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (PatternAtFirstUse, re.Pattern)):
            return (self.pattern, self.flags) == (other.pattern, other.flags)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pattern, self.flags))

    def __repr__(self) -> str:
        return f"PatternAtFirstUse({self.pattern!r}, {self.flags!r})"


def _pattern_reduced(pattern: re.Pattern):
    return (PatternAtFirstUse, (pattern.pattern, pattern.flags))


def _yangson_fingerprint() -> bytes:
    """Name, size and modification time of each file of the installed yangson
    (an upgrade or a local edit changes them; ``importlib.metadata`` costs more
    to import than this costs)."""
    import yangson

    package = Path(yangson.__file__).parent
    entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                     for e in os.scandir(package) if e.name.endswith(".py"))
    return repr(entries).encode()


def cache_key(modules: list[ModuleInfo]) -> str:
    """A digest of everything a model compiled from *modules* depends on."""
    from . import __version__

    digest = hashlib.sha256(MAGIC + sys.version.encode() + __version__.encode()
                            + _yangson_fingerprint())
    for m in modules:
        digest.update(repr((m.name, m.revision, m.namespace, m.prefix, m.conformance,
                            m.features, m.text_sha256)).encode())
    return digest.hexdigest()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block: unpickling builds only objects the
    result holds, tens of thousands of them, which collections would scan (a full one
    among them) without finding garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ModelCache:
    """One cache file, e.g. ``<state-dir>/compiled-model.pickle``.

    :attr:`outcome` says what :meth:`read` found: ``"used"``, ``"missing"``,
    ``"stale"`` (another key), or why the file was not used.
    """

    def __init__(self, path: Path):
        self.path = path
        self.key: str | None = None
        self.outcome = "not read"

    def read(self, modules: list[ModuleInfo]) -> DataModel | None:
        """The model compiled from *modules*, if this file holds it."""
        self.key = cache_key(modules)
        try:
            if writable_by_others(self.path) or writable_by_others(self.path.parent):
                self.outcome = "ignored: other users could change it"
                return None
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.outcome = "missing"
            return None
        except OSError as exc:
            self.outcome = f"unreadable: {exc}"
            return None
        header, _, body = data.partition(b"\n")
        if header != MAGIC + self.key.encode():
            self.outcome = "stale"
            return None
        from yangson import DataModel

        try:
            with _collector_paused():
                datamodel = pickle.loads(body)
        except Exception as exc:  # noqa: BLE001 - any damage means: compile instead
            self.outcome = f"unreadable: {type(exc).__name__}: {exc}"
            return None
        if not isinstance(datamodel, DataModel):
            self.outcome = f"unreadable: holds a {type(datamodel).__name__}"
            return None
        self.outcome = "used"
        return datamodel

    def write(self, datamodel: DataModel) -> None:
        """Store *datamodel* under the key of the last :meth:`read` (mode 0600).

        Raises ``OSError`` if the file cannot be written, ``pickle.PicklingError``
        or ``RecursionError`` if the model cannot be pickled.
        """
        if self.key is None:
            raise ValueError("ModelCache.write before read: no key")
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = {**copyreg.dispatch_table, re.Pattern: _pattern_reduced}
        pickler.dump(datamodel)
        body = buffer.getvalue()
        atomic_write(self.path, MAGIC + self.key.encode() + b"\n" + body)
