"""The compiled methods of dataclasses, kept between starts like bytecode.

``@dataclass`` writes each method it generates (``__init__``, ``__repr__``,
``__eq__``; for a frozen class also ``__setattr__``, ``__delattr__``, ``__hash__``)
as source text and compiles it with ``exec`` at every import: for the agent's
sixty-odd dataclasses about 330 compilations, 45 ms of its start (a tenth), and
about as much of a ``cmp-agent cmp`` command's.

:func:`install` gives the dataclasses module an ``exec`` of its own (a module
global, found before the builtin) that compiles each text once: the code objects
are kept in ``__pycache__/dataclass-methods.<cache tag>.bin`` beside this module
(or under ``PYTHONPYCACHEPREFIX``, where this module's bytecode goes),
marshalled as a ``.pyc`` is, under the text itself, behind the interpreter's
bytecode magic number. ``exec`` of that code object with the same globals and
locals makes the same function as ``exec`` of the text: compiled with no
``__future__`` flags (dataclasses has none), as ``<string>``, at the interpreter's
optimisation level. A missing, foreign or damaged file is ignored; one that other
users could change is not read (it holds code, as a ``.pyc`` does), and the file is
written (atomically, at exit) only when a process compiled something it lacked and
may write bytecode, keeping at most :data:`MAX_ENTRIES` (the texts used by that
process first). typing's forward references, which it compiles as expressions, go
through the same cache (:meth:`MethodCache.compile`): a process that compiles nothing
does not set up the AST types.
"""

from __future__ import annotations

import builtins
import importlib.util
import marshal
import sys
from pathlib import Path
from types import CodeType

from agent.atomic import atomic_write, writable_by_others

#: where the compiled methods are kept: the package's bytecode directory, where this
#: module's own bytecode goes (``__pycache__`` beside it, or under ``PYTHONPYCACHEPREFIX``
#: where one is set, as for a read-only installation)
CACHE_FILE = ((Path(importlib.util.cache_from_source(str(Path(__file__).resolve()))).parent
               if sys.implementation.cache_tag is not None  # else no bytecode is kept
               else Path(__file__).resolve().parent / "__pycache__")
              / f"dataclass-methods.{sys.implementation.cache_tag}.bin")


def cache_file(command: str | None = None) -> Path:
    """The file of *command*'s processes (``serve``, ``cmp``, ...), beside
    :data:`CACHE_FILE`: each command loads only the methods its own imports compile (a
    file shared by all held 621 texts, 12 M instructions to read, of which ``cmp-agent
    cmp ir`` uses about 220); :data:`CACHE_FILE` itself without a command."""
    if command is None:
        return CACHE_FILE
    return CACHE_FILE.with_name(f"dataclass-methods-{command}.{sys.implementation.cache_tag}.bin")


#: what the key of an expression compiled for typing starts with (a method's text, the
#: key of its code, does not)
_EXPRESSION = "\0eval\0"
#: more texts than this (dataclasses of earlier versions of the code): only those used
#: by the writing process are kept
MAX_ENTRIES = 2000


class MethodCache:
    """Code objects by source text, read from and written to one file."""

    def __init__(self, path: Path):
        self.path = path
        self.codes: dict[str, CodeType] = {}
        self.used: set[str] = set()
        self.missed = 0

    def load(self) -> None:
        """Read the file, if it is there, this interpreter's and private."""
        try:
            if writable_by_others(self.path) or writable_by_others(self.path.parent):
                return
            data = self.path.read_bytes()
        except OSError:
            return
        magic = importlib.util.MAGIC_NUMBER
        if not data.startswith(magic):
            return
        try:
            codes = marshal.loads(data[len(magic):])
        except (EOFError, ValueError, TypeError):
            return
        if isinstance(codes, dict):
            self.codes = {k: v for k, v in codes.items()
                          if isinstance(k, str) and isinstance(v, CodeType)}

    def exec(self, source, globals=None, locals=None):  # noqa: A002 - exec's own names
        """``exec``, with a text compiled once (the dataclasses module's)."""
        if isinstance(source, str):
            code = self.codes.get(source)
            if code is None:
                code = self.codes[source] = compile(source, "<string>", "exec",
                                                    dont_inherit=True)
                self.missed += 1
            self.used.add(source)
            source = code
        return builtins.exec(source, globals, locals)

    def compile(self, source, filename, mode, *args, **kwargs):  # noqa: A003 - compile's
        """``compile``, with an expression's text compiled once when asked as typing's
        forward references ask (``typing.ForwardRef``: the text, ``'<string>'``,
        ``'eval'``, nothing more): the first ``compile`` of a process sets up the AST
        types, 3 % of ``cmp-agent cmp ir``'s instructions for cryptography's one forward
        reference. Compiled as typing would (no ``__future__`` flags: it has none)."""
        if args or kwargs or mode != "eval" or filename != "<string>" or not isinstance(
                source, str):
            return builtins.compile(source, filename, mode, *args, **kwargs)
        key = _EXPRESSION + source
        code = self.codes.get(key)
        if code is None:
            code = self.codes[key] = builtins.compile(source, filename, mode,
                                                      dont_inherit=True)
            self.missed += 1
        self.used.add(key)
        return code

    def save(self) -> None:
        """Write the file if this process compiled texts it lacked, unless bytecode is
        not to be written (``python -B``, ``PYTHONDONTWRITEBYTECODE``); a failure (a
        read-only installation) only means compiling them again next time."""
        if not self.missed or sys.dont_write_bytecode:
            return
        codes = self.codes
        if len(codes) > MAX_ENTRIES:
            codes = {k: v for k, v in codes.items() if k in self.used}
        try:
            atomic_write(self.path, importlib.util.MAGIC_NUMBER + marshal.dumps(codes),
                         mode=0o644)
        except (OSError, ValueError):
            return
        self.missed = 0


def install(path: Path = CACHE_FILE) -> MethodCache:
    """Make the dataclasses module (and typing's forward references) compile through a
    :class:`MethodCache` on *path*
    (once per process); its :meth:`~MethodCache.save` is the caller's to call."""
    import dataclasses

    current = getattr(dataclasses, "exec", None)
    if isinstance(getattr(current, "__self__", None), MethodCache):
        return current.__self__
    import typing

    cache = MethodCache(path)
    cache.load()
    dataclasses.exec = cache.exec
    typing.compile = cache.compile
    return cache
