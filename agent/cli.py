"""The ``cmp-agent`` command: ``serve`` runs the agent, ``cmp`` enrols from the
shell, ``cli`` speaks the vendor's PKI commands to an agent over NETCONF."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
from collections.abc import Sequence

#: subcommand -> (module, one-line help). Each module provides
#: ``configure_parser(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("agent.serve", "run the NETCONF agent"),
    "cmp": ("agent.cmp.cli", "run one CMP transaction (ir, cr, kur, p10cr, rr, genm)"),
    "cli": ("agent.opcli.main", "the vendor's PKI commands over NETCONF"),
    "user": ("agent.usercli", "add, change, remove and list the agent's NETCONF users"),
}


def plain_text(docstring: str) -> str:
    """A module docstring as ``--help`` shows it: reStructuredText literals and roles unmarked."""
    import re

    return re.sub(r"(?::\w+:)?`{1,2}([^`]+)`{1,2}", r"\1", docstring)


#: the commands that do not import yangson (nor so elementpath or xml.sax's urllib.request)
WITHOUT_YANG = frozenset({"cmp"})


#: the exit status of a command whose output was closed by its reader (``cmp-agent cli
#: ... | head``): 128 + SIGPIPE, what the shell reports of a tool the signal ended
EXIT_OUTPUT_CLOSED = 141


def quiet_closed_output() -> bool:
    """Point the standard streams whose reader is gone (a write raised BrokenPipeError) at
    /dev/null, so that what they still buffer, and what the command says while it winds
    down, goes nowhere instead of raising again, at exit too (Python's "Note on SIGPIPE").
    A stream is closed if poll(2) reports an error or hang-up on it (a pipe without reader),
    if flushing it fails so, or if it is the same file as a closed one (``2>&1 | head``).
    True if any was, by this call or an earlier one."""
    import select

    global _output_closed

    closed: list[os.stat_result] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            status = os.fstat(fd)
        except (AttributeError, ValueError, OSError):
            continue  # not a file (replaced by a program or a test)
        poll = select.poll()
        poll.register(fd, 0)  # no events asked: POLLERR and POLLHUP are always told
        try:
            gone = bool(poll.poll(0)) or any(os.path.samestat(status, c) for c in closed)
            stream.flush()
        except BrokenPipeError:
            gone = True
        if gone:
            closed.append(status)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
    _output_closed = _output_closed or bool(closed)
    return _output_closed


_output_closed = False


def prepare_process(command: str | None = None) -> None:
    """What a process of the agent's commands does before it imports the rest of the agent
    (issue 11: start-up time); not done by ``import agent``, so that a program using the
    package keeps its own dataclasses module, imports and exit. The dataclasses module
    compiles through the method cache kept between starts (:mod:`agent.methodcache`,
    saved at exit); modules whose code the commands seldom need are imported but not
    run until used (:mod:`agent.lazyimports`): elementpath and urllib.request (before
    anything imports yangson; not for *command* :data:`WITHOUT_YANG`), email.utils (before cryptography.x509 takes parseaddr
    from it), cryptography's serialization package but for its key formats and loaders,
    its OpenSSL backend object (ECDSA asks it only for deterministic signing) and inspect
    (dataclasses asks it only for a class without a docstring); the regular
    expressions of cryptography's RFC 4514 name parser are compiled at their first use;
    selectors, bz2 and lzma (imported by socket and shutil for functions the commands do
    not call) are deferred too, and shutil itself (argparse asks it for the terminal's
    size alone), random (cryptography's RSA module, for one function), ntpath and
    fnmatch (pathlib's, for Windows paths and globbing); so are
    typing_extensions (asyncssh takes ``Self`` alone from it, typing's own) and, for ``cmp``, hashlib and hmac (which load the system's
    OpenSSL; the CMP engine hashes without them)."""
    from agent.lazyimports import (compile_patterns_at_first_use, defer, defer_elementpath,
                                    defer_if_present, defer_openssl_backend,
                                    defer_openssl_hashes, defer_serialization,
                                    defer_shutil)

    if command not in WITHOUT_YANG:
        defer_elementpath()
        defer("urllib.request")
        # asyncssh takes Self alone from typing_extensions, which is typing's own on
        # 3.11+; the package's import also replaces typing's parameter collection with
        # a slower one (cmp imports neither)
        defer("typing_extensions", {"Self": "typing"})
        # asyncio imports ssl for TLS, which the agent does not speak: at its import it
        # takes two exception classes alone (of the C module); any other name runs ssl
        defer("ssl", {"SSLWantReadError": "_ssl", "SSLSyscallError": "_ssl"})
    else:
        defer_openssl_hashes()
    defer("email.utils", {"parseaddr": "agent.lazyimports"})
    defer_serialization()
    defer("inspect")
    defer_openssl_backend()
    # socket imports selectors for sendfile alone; shutil (which tempfile and argparse's
    # help formatter import) imports bz2 and lzma to know whether they are there
    defer("selectors")
    # argparse's help formatter imports shutil for get_terminal_size alone
    defer_shutil()
    # cryptography's RSA module imports random for one function (recovering the primes
    # of a private key); random seeds an instance from os.urandom at its import
    defer("random")
    # pathlib imports ntpath for its Windows flavour (whose import tries six Windows-only
    # modules, each a search of the whole module path) and fnmatch for glob and match
    defer("ntpath")
    defer("fnmatch")
    for name in ("bz2", "lzma"):
        defer_if_present(name, "_" + name)
    compile_patterns_at_first_use("cryptography.x509.name")
    from agent.methodcache import cache_file, install  # after the deferrals

    # a file a command: each reads only the methods its own imports compile
    atexit.register(install(cache_file(command if command in SUBCOMMANDS else None)).save)


def main(argv: Sequence[str] | None = None) -> int:
    # A command's imports make objects that live until it exits (the agent's code too):
    # the cyclic collector is paused while they are made (from the process's preparation
    # on), and they are frozen (gc.freeze) so that neither the collections during the
    # command nor the one at exit walk them again (8 % of `cmp ir`'s instructions, 3 % of
    # the agent's until it listens). The price:
    # the few hundred objects of cyclic garbage the imports leave (about 130 kB for serve)
    # are kept for good. Only as a process's entry point (argv None).
    pause_gc = argv is None and gc.isenabled()
    if pause_gc:
        gc.disable()
    args_in = list(sys.argv[1:] if argv is None else argv)
    # only the chosen subcommand's module is imported: each starts at once
    chosen = next((a for a in args_in if not a.startswith("-")), None)
    if argv is None:  # as a process's entry point, not called by a program
        prepare_process(chosen)
    import argparse  # here, with the collector paused

    parser = argparse.ArgumentParser(prog="cmp-agent", description=plain_text(__doc__))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # when the arguments start with it, nothing but its own parser can be asked for (no
    # option of ours before it: not --help, which lists the others)
    alone = bool(args_in) and args_in[0] == chosen and chosen in SUBCOMMANDS
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if alone and name != chosen:
            continue
        sub_parser = sub.add_parser(name, help=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            sub_parser.description = plain_text(module.__doc__ or "")
            sub_parser.formatter_class = argparse.RawDescriptionHelpFormatter
            module.configure_parser(sub_parser)
    if pause_gc:
        gc.freeze()
        gc.enable()
    args = parser.parse_args(args_in)
    try:
        status = int(importlib.import_module(SUBCOMMANDS[args.command][0]).run(args) or 0)
    except BrokenPipeError:
        # the reader of our output went away (| head): end quietly, as Unix tools do
        if not quiet_closed_output():
            raise  # a socket's, not ours
        return EXIT_OUTPUT_CLOSED
    if argv is None and args.command in END_AT_ONCE:
        end_process(status)  # returns if the streams cannot be flushed
    return status


#: the commands whose process, once the command returned, ends without the interpreter's
#: finalization (:func:`end_process`)
END_AT_ONCE = frozenset({"cmp"})


def end_process(status: int) -> None:
    """End the process with *status* as Python's own exit would for a command that closed
    what it wrote (its files, its connections), without the interpreter's finalization:
    tearing down every module and object the imports made costs `cmp-agent cmp ir` 2 %
    of its instructions (issue 11), and the process's memory goes back at once anyway.
    What the exit does that a program can see is done first, in its order: threading's
    own shutdown (its exit hooks, which tell idle thread-pool workers to stop, then
    every thread that is not a daemon waited for), the atexit functions (logging's
    shutdown, the method cache's save), stdout and stderr flushed. If a flush fails (a
    reader gone), this returns and Python's exit reports it as it always does (the
    shutdowns run again do nothing)."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # what the interpreter's exit calls first (Py_FinalizeEx)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            return
    os._exit(status)
