"""Deferred imports of third-party packages whose start-up cost the agent does not need,
and a cheaper search for asyncssh's optional native libraries.

yangson imports two names from elementpath, ``RegexError`` and ``translate_pattern``
(XSD patterns translated to Python regular expressions), at its own import. Importing
elementpath runs its package ``__init__``, which loads its XPath 1/2 parsers, datatypes
and tree builders (and with them xml.sax, urllib.request, http.client, email): about a
seventh of the agent's start-up CPU; its ``elementpath.regex`` package alone builds
Unicode tables at import (3 % of the agent's instructions until it listens). yangson
calls ``translate_pattern`` only to compile the model (:mod:`agent.modelcache` usually
spares it) and for XPath ``re-match()``.

:func:`defer_elementpath` puts in their place the real packages' module objects (same
spec, same ``__path__``) with their ``__init__`` not yet run: ``RegexError`` comes from
``elementpath.regex.codepoints`` alone (the class elementpath raises), and
``translate_pattern`` is :func:`translate_pattern`, which runs ``elementpath.regex`` at
its first call; any other name runs the real ``__init__`` in the module first, so the
package is complete for whoever needs more.
The same way (:func:`defer`), ``urllib.request`` is imported but not run: xml.sax.saxutils,
which yangson imports, imports it (and so http.client and email's parser) for a function
that reads URLs, which the agent never calls.

``email.utils`` (with ``email.charset``, its encoders, ``calendar`` and ``random``) is
deferred too: ``cryptography.x509.general_name`` imports ``parseaddr`` from it at its
import, which :func:`parseaddr` answers until it is called; a ``from`` import of a
deferred plain module asks it for ``__path__``, answered without running its code.

``cryptography.x509.name`` compiles at its import the regular expressions of its RFC 4514
string parser (``Name.from_rfc4514_string``, which the agent does not call): one of
them holds the character range ``[\x80-\U0010ffff]`` six times over, for each of which
``re``'s compiler walks 65,536 code points in Python, about 100 M instructions, a fifth
of ``cmp-agent cmp ir`` as a whole process. :func:`compile_patterns_at_first_use` has
the module's own ``re.compile`` calls made at the first use of each pattern instead.

asyncssh looks for two optional native libraries when it is imported, with
``ctypes.util.find_library``: nettle (UMAC) and liboqs (the sntrup761 key exchange).
On Linux find_library reads the dynamic loader's cache (``ldconfig -p``) and, for a
name not there, runs gcc and then ld to link against it: a library that is not
installed (liboqs, usually) costs two compiler and two linker runs, about 25 ms of CPU
and 40 to 60 ms at every start where a compiler is installed. While
:func:`native_libraries_from_loader_cache` is active, find_library takes its first step
alone (with ``ldconfig -p`` run once for all the names, :func:`loader_cache_search`): a library is found if the loader's cache lists it (where a package manager
installs it), as the loader itself finds it; with ``LD_LIBRARY_PATH`` set, the whole
search runs as usual.
"""

from __future__ import annotations

import _thread
import contextlib
import importlib
import importlib.util
import importlib.machinery
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType

#: ``hmac.compare_digest`` for ``hmac`` deferred (:func:`defer_openssl_hashes`): the
#: constant-time comparison of ``_operator``, which hmac itself uses when ``_hashlib``
#: (OpenSSL's, the same comparison) is missing
from _operator import _compare_digest as compare_digest  # noqa: F401 - re-exported

#: what yangson takes from elementpath at its import, and where it is found without
#: running elementpath's regex package (whose import builds Unicode tables)
_YANGSON_NAMES = {"RegexError": "elementpath.regex.codepoints",
                  "translate_pattern": "agent.lazyimports"}


def defer_elementpath() -> None:
    """Install the deferred elementpath and its regex package, unless they are imported
    already or not installed."""
    defer("elementpath", _YANGSON_NAMES)
    if "elementpath" in sys.modules:
        defer("elementpath.regex", {"RegexError": _YANGSON_NAMES["RegexError"]})


#: what ``cryptography.hazmat.primitives.serialization`` gives besides its OpenSSH formats
#: (its ``ssh`` module, whose import brings the symmetric ciphers, bcrypt and
#: cryptography's decrepit ciphers), and where each is defined
_SERIALIZATION_NAMES = {
    **dict.fromkeys(["BestAvailableEncryption", "Encoding", "KeySerializationEncryption",
                     "NoEncryption", "ParameterFormat", "PrivateFormat", "PublicFormat",
                     "_KeySerializationEncryption"],
                    "cryptography.hazmat.primitives._serialization"),
    **dict.fromkeys(["load_der_parameters", "load_der_private_key", "load_der_public_key",
                     "load_pem_parameters", "load_pem_private_key", "load_pem_public_key"],
                    "cryptography.hazmat.primitives.serialization.base"),
}


def defer_serialization() -> None:
    """Install the deferred ``cryptography.hazmat.primitives.serialization``: its key
    formats and PEM/DER loaders come from the modules that define them, without running
    the package's ``__init__`` (which imports its OpenSSH module); any other name (an
    OpenSSH format or loader) runs it."""
    defer("cryptography.hazmat.primitives.serialization", _SERIALIZATION_NAMES)


class _BackendAtFirstUse:
    """cryptography's OpenSSL backend object (``cryptography.hazmat.backends.openssl
    .backend.backend``) while its module is deferred: an attribute asked of it runs the
    module and is the real object's."""

    def __getattr__(self, name: str):
        return getattr(completed("cryptography.hazmat.backends.openssl.backend").backend, name)

    def __repr__(self) -> str:
        return "<cryptography's OpenSSL backend, its module run at first use>"


#: what ``from cryptography.hazmat.backends.openssl[.backend] import backend`` gives while
#: that module is deferred (:func:`defer_openssl_backend`)
backend = _BackendAtFirstUse()


def defer_openssl_backend() -> None:
    """Install the deferred ``cryptography.hazmat.backends.openssl`` package and its
    ``backend`` module: ``ec.ECDSA(hash)``, which cryptography's path validation makes
    for each ECDSA signature it checks, imports the backend object to check, when
    deterministic signing (RFC 6979) is asked, that OpenSSL has it; the module's import
    (cffi's OpenSSL binding and the symmetric ciphers) costs ``cmp-agent cmp ir`` 6 % of
    its instructions. The object is :data:`backend` until a name is asked of it."""
    package_name = "cryptography.hazmat.backends.openssl"
    defer(package_name, {"backend": __name__})
    package = sys.modules.get(package_name)
    if package is None or getattr(package, "__getattr__", None) is None:
        return  # imported already (its code run): nothing to defer
    defer(package_name + ".backend", {"backend": __name__})
    package.backend = backend  # as its code leaves it: the object, not the module


def defer_openssl_hashes() -> None:
    """Install the deferred ``hashlib`` and ``hmac``: both import ``_hashlib``, whose import
    loads the system's OpenSSL (besides the one in cryptography's Rust module), lists its
    digests and tries each of hashlib's named constructors on it, about 7 % of
    ``cmp-agent cmp ir``'s instructions. ``cryptography.x509.extensions`` imports hashlib for
    one function (a key identifier from a public key), ``cryptography...constant_time``
    hmac for ``compare_digest``, given ``_operator``'s (hmac's own without ``_hashlib``); the CMP
    engine hashes with cryptography and CPython's built-in hash modules
    (:mod:`agent.cmp.protection`). Any other name runs the real module."""
    defer("hashlib")
    defer("hmac", {"compare_digest": __name__})


def translate_pattern(pattern: str, *args, **options) -> str:
    """``elementpath.regex.translate_pattern`` (an XSD pattern as a Python regular
    expression), whose package is run at the first call: yangson takes the name at its
    import and calls it to compile the model's patterns (:mod:`agent.modelcache`
    usually spares that) and for XPath ``re-match()``."""
    from elementpath.regex import translate_pattern as translate

    return translate(pattern, *args, **options)


def parseaddr(*args, **options):
    """``email.utils.parseaddr``, whose module is run at the first call:
    ``cryptography.x509.general_name`` takes the name at its import and calls it only to
    check an RFC822Name it is given."""
    return completed("email.utils").parseaddr(*args, **options)


def get_terminal_size(fallback=(80, 24)):
    """``shutil.get_terminal_size`` as CPython 3.11 to 3.13 define it (COLUMNS and LINES
    if positive integers, else the terminal of ``sys.__stdout__``, else *fallback*),
    while shutil is deferred (:func:`defer_shutil`)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    try:
        lines = int(os.environ["LINES"])
    except (KeyError, ValueError):
        lines = 0
    if columns <= 0 or lines <= 0:
        try:
            size = os.get_terminal_size(sys.__stdout__.fileno())
        except (AttributeError, ValueError, OSError):
            size = os.terminal_size(fallback)
        if columns <= 0:
            columns = size.columns or fallback[0]
        if lines <= 0:
            lines = size.lines or fallback[1]
    return os.terminal_size((columns, lines))


def defer_shutil() -> None:
    """Install the deferred ``shutil``: argparse imports it in each help formatter it
    makes (one for every ``add_argument``, to check the metavar) for
    ``get_terminal_size`` alone, which :func:`get_terminal_size` answers; the module's
    import (zlib, its archive formats, pwd and grp probes) is about 2 % of ``cmp-agent
    cmp ir``'s instructions. Any other name runs the real module."""
    defer("shutil", {"get_terminal_size": __name__})


#: deferred module name -> what runs its code (once)
_RUN: dict[str, Callable[[], None]] = {}


def completed(name: str) -> ModuleType:
    """Module *name*, imported, with its code run if :func:`defer` deferred it (a name
    of *early* asked of it does not run it)."""
    run = _RUN.get(name)
    if run is not None:
        run()
    return importlib.import_module(name)


def defer(name: str, early: Mapping[str, str] | None = None) -> None:
    """Put in ``sys.modules`` for module *name* its real module object (same spec, same
    ``__path__``) with its code not yet run, unless it is imported already or not
    installed: the first name asked of it that is not in *early* runs the code in the
    module (once, also with several threads), which is then complete; a name in *early*
    is taken from the module *early* names for it, without running the code (or, if
    that module or name is not there, from the code run)."""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:  # its package is not installed (or fails to import)
        return
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader, lock, early = spec.loader, _thread.RLock(), dict(early or {})
    is_package = spec.submodule_search_locations is not None
    started = []  # whether the code was run (or is running, in the thread holding lock)

    def __getattr__(attr: str):  # noqa: N807 - a module's __getattr__ (PEP 562)
        # Ours stays while the code runs, so that another thread asking a name the code
        # has not defined yet waits here for it, as the import system makes it wait for
        # a module being imported; the code's own import of a submodule (same thread,
        # lock re-entered) sees the partly run module, as under the import system.
        if attr == "__path__" and not is_package and not started:
            # what the import system asks of the module a `from ... import` names: a
            # plain module has none (its code does not make one)
            raise AttributeError(f"module {name!r} has no attribute {attr!r}",
                                 name=attr, obj=module)
        with lock:
            if attr in early and not started:
                try:
                    value = getattr(importlib.import_module(early[attr]), attr)
                except (ImportError, AttributeError):
                    pass  # not there (another version of the package): run its code
                else:
                    setattr(module, attr, value)
                    return value
            run()
        try:
            return module.__dict__[attr]
        except KeyError:
            if module.__dict__.get("__getattr__") not in (None, __getattr__):
                return module.__dict__["__getattr__"](attr)  # the code's own (PEP 562)
            raise AttributeError(f"module {name!r} has no attribute {attr!r}",
                                 name=attr, obj=module) from None

    def run() -> None:
        with lock:
            if not started:
                started.append(True)
                try:
                    loader.exec_module(module)
                except BaseException:
                    if sys.modules.get(name) is module:  # as a failed import leaves it
                        del sys.modules[name]
                    raise
                finally:
                    if module.__dict__.get("__getattr__") is __getattr__:
                        del module.__getattr__  # the code did not define its own

    module.__getattr__ = __getattr__
    _RUN[name] = run
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does for a submodule it loads
        setattr(sys.modules[parent], child, module)


def defer_if_present(name: str, native: str) -> None:
    """:func:`defer` module *name* if the native module *native* its code imports is
    there: where it is missing, importing *name* fails at once, as whoever imports it to
    know whether it is there expects (shutil of bz2 and lzma)."""
    if native in sys.modules or importlib.util.find_spec(native) is not None:
        defer(name)


@contextlib.contextmanager
def native_libraries_from_loader_cache() -> Iterator[None]:
    """Within the block, ``ctypes.util.find_library`` answers from the dynamic loader's
    cache alone (its own first step), unless ``LD_LIBRARY_PATH`` is set or this Python
    has no such step; restored after it."""
    import ctypes.util

    first_step = getattr(ctypes.util, "_findSoname_ldconfig", None)
    if first_step is None or os.environ.get("LD_LIBRARY_PATH"):
        yield
        return
    find_library = ctypes.util.find_library
    ctypes.util.find_library = loader_cache_search()
    try:
        yield
    finally:
        ctypes.util.find_library = find_library


def loader_cache_search() -> Callable[[str], str | None]:
    """``ctypes.util._findSoname_ldconfig`` (find_library's first step on Linux, CPython
    3.11 to 3.13): the soname of library *name* as the loader's cache lists it for this
    machine's ABI, or ``None``; ``ldconfig -p`` runs once for all the names asked of the
    function returned, not once a name (asyncssh asks three: about 15 ms each, wall)."""
    import struct
    import subprocess

    machine = os.uname().machine + ("-32" if struct.calcsize("l") == 4 else "-64")
    abi_type = {"x86_64-64": "libc6,x86-64", "ppc64-64": "libc6,64bit",
                "sparc64-64": "libc6,64bit", "s390x-64": "libc6,64bit",
                "ia64-64": "libc6,IA-64"}.get(machine, "libc6")
    listing: list[bytes] = []

    def find(name: str) -> str | None:
        if not listing:
            try:
                with subprocess.Popen(["/sbin/ldconfig", "-p"], stdin=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      env={"LC_ALL": "C", "LANG": "C"}) as process:
                    listing.append(process.stdout.read())
            except OSError:
                return None  # as the first step answers (and tries again next time)
        found = re.search(os.fsencode(r"\s+(lib%s\.[^\s]+)\s+\(%s" % (re.escape(name), abi_type)),
                          listing[0])
        return os.fsdecode(found.group(1)) if found else None

    return find


class _PatternAtFirstUse:
    """``re.compile(pattern, flags)``, run when an attribute of the pattern (``match``,
    ``sub``, ``pattern``, ...) is first asked for; the compiled pattern answers."""

    __slots__ = ("_arguments", "_compiled")

    def __init__(self, pattern, flags) -> None:
        self._arguments = (pattern, flags)
        self._compiled = None

    def __getattr__(self, name: str):
        if self._compiled is None:
            self._compiled = _re_compile(*self._arguments)
        return getattr(self._compiled, name)

    def __repr__(self) -> str:
        return f"<pattern compiled at first use: {self._arguments[0]!r}>"


_re_compile = re.compile


class _PatternsAtFirstUseLoader(importlib.machinery.SourceFileLoader):
    """A module's source loader whose code's own ``re.compile`` calls (those made from the
    module's globals: its top level and class bodies, its functions if the code runs
    them) return patterns compiled at their first use, while the code runs."""

    def exec_module(self, module) -> None:
        own = module.__dict__

        def compile_at_first_use(pattern, flags=0):
            if sys._getframe(1).f_globals is own:
                return _PatternAtFirstUse(pattern, flags)
            return _re_compile(pattern, flags)  # another thread's, or a module it imports

        re.compile = compile_at_first_use
        try:
            super().exec_module(module)
        finally:
            re.compile = _re_compile


class _PatternsAtFirstUseFinder:
    """Finds the modules *names* as the path finder does, with their source loaded by
    :class:`_PatternsAtFirstUseLoader`; each once."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in self.names:
            return None
        self.names.discard(fullname)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _PatternsAtFirstUseLoader(spec.loader.name, spec.loader.path)
        return spec


def compile_patterns_at_first_use(*names: str) -> None:
    """The modules *names*, when imported (not already), have the regular expressions their
    code compiles compiled at each pattern's first use."""
    names = {name for name in names if name not in sys.modules}
    if names:
        sys.meta_path.insert(0, _PatternsAtFirstUseFinder(names))
