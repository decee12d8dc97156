"""What agent/lazyimports.py defers stays transparent: the real module, complete, once
asked for. Each check runs in a new interpreter, since this one has imported everything
the other tests use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def printed(code: str, path: Path | None = None):
    """The JSON that *code* prints last, run in a new interpreter (with *path* before the
    agent's on its module path, if given)."""
    env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{ROOT}"} if path else None
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True, env=env)
    return json.loads(done.stdout.splitlines()[-1])


def test_urllib_request_is_deferred_and_complete_when_asked(tmp_path):
    """yangson's xml.sax.saxutils imports urllib.request, whose code (http.client, email's
    parser) runs only when a name of it is used (agent/lazyimports.py defer); then it is
    the real module, run once also when threads ask at once."""
    page = tmp_path / "page.txt"
    page.write_text("read through urllib")
    code = f"""
import json, sys, threading
import agent.cli
agent.cli.prepare_process()  # as the cmp-agent command does
import agent.serve, agent.netconf.server, xml.sax.saxutils
unrun = [m for m in ("http.client", "email.parser") if m in sys.modules]
import urllib.request
classes = []
threads = [threading.Thread(target=lambda: classes.append(urllib.request.Request))
           for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
from urllib.request import urlopen
with urlopen({page.as_uri()!r}) as reply:
    text = reply.read().decode()
print(json.dumps([unrun, len(set(map(id, classes))), classes[0] is urllib.request.Request,
                  xml.sax.saxutils.urllib.request is sys.modules["urllib.request"], text]))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    unrun, distinct, same, shared, text = json.loads(done.stdout.splitlines()[-1])
    assert unrun == []
    assert distinct == 1 and same and shared
    assert text == "read through urllib"


def test_deferred_module_waits_for_its_code_in_other_threads(tmp_path):
    """While one thread runs a deferred module's code, another asking a name the code
    defines later waits for it (as the import system makes it wait) rather than getting
    an AttributeError from the partly run module; the code's own import of a submodule
    sees the partly run package; a module's own __getattr__ stays its own."""
    package = tmp_path / "slowpkg"
    package.mkdir()
    (package / "sub.py").write_text("VALUE = 'sub'\n")
    (package / "__init__.py").write_text(
        "import __main__\n"
        "from . import sub\n"
        "__main__.started.set()\n"
        "__main__.proceed.wait()\n"
        "LATE = 'late'\n"
        "def __getattr__(attr):\n"
        "    return 'own ' + attr\n")
    code = """
import json, sys, threading
from agent.lazyimports import defer
started, proceed = threading.Event(), threading.Event()
defer("slowpkg")
import slowpkg
seen = {}
def ask(who):
    try:
        seen[who] = slowpkg.LATE
    except AttributeError as error:
        seen[who] = repr(error)
first = threading.Thread(target=ask, args=("first",))
first.start()
started.wait()
second = threading.Thread(target=ask, args=("second",))
second.start()
second.join(0.2)  # it should be waiting for the first thread's run of the code
proceed.set()
first.join(); second.join()
print(json.dumps([seen, slowpkg.sub.VALUE, slowpkg.other]))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    seen, sub, other = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"first": "late", "second": "late"}
    assert sub == "sub" and other == "own other"


def test_deferred_module_whose_code_fails_raises_as_an_import_does(tmp_path):
    """A deferred module whose code raises passes the error to the first asker and
    leaves sys.modules as a failed import does, so importing it again raises again."""
    (tmp_path / "brokenmod.py").write_text("EARLY = 1\nraise RuntimeError('broken at import')\n")
    code = """
import json, sys
from agent.lazyimports import defer
defer("brokenmod")
import brokenmod
errors = []
try:
    brokenmod.EARLY
except RuntimeError as error:
    errors.append(str(error))
errors.append("brokenmod" in sys.modules)
try:
    import brokenmod
except RuntimeError as error:
    errors.append(str(error))
print(json.dumps(errors))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert json.loads(done.stdout.splitlines()[-1]) == [
        "broken at import", False, "broken at import"]


def test_an_early_name_not_where_expected_comes_from_the_module_run(tmp_path):
    """An upgrade of the package that moved a name *early* points to: the name comes
    from the module's code, run, instead of failing the import that asked for it."""
    code = """
import json, sys
from agent.lazyimports import defer
defer("movedmod", {"Moved": "movedmod_gone.somewhere", "Other": "json"})
from movedmod import Moved, Other
print(json.dumps([Moved.__module__, Other is None]))
"""
    (tmp_path / "movedmod.py").write_text("class Moved(Exception):\n    pass\nOther = None\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert json.loads(done.stdout.splitlines()[-1]) == ["movedmod", True]


def test_rfc4514_patterns_compiled_at_first_use_parse_as_compiled_at_import():
    """cryptography.x509.name's RFC 4514 parser patterns are compiled at their first use
    in a process of the command (agent/lazyimports.py): none at import, and names parse,
    print and fail as with the patterns compiled at import."""
    code = r"""
import json, re
{prelude}
from cryptography import x509
from cryptography.x509.name import _RFC4514NameParser as parser
compiled = sorted(name for name, value in vars(parser).items() if isinstance(value, re.Pattern))
results = []
for text in ("CN=a\\2Cb,O=Ex\\+ample", "1.2.3=#0403616263", "CN=\u00e9t\u00e9 \\e2\\82\\ac",
             "CN=a+OU=b,C=DE", "CN=#zz", "=x", "CN=x\\", "foo=bar", ""):
    try:
        name = x509.Name.from_rfc4514_string(text)
        results.append([name.rfc4514_string(), repr(name)])
    except ValueError as error:
        results.append(["ValueError", str(error)])
print(json.dumps([compiled, results]))
"""
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("", "import agent.cli\nagent.cli.prepare_process()"))
    assert plain[0] == ["_DESCR_RE", "_HEXSTRING_RE", "_OID_RE", "_PAIR_MULTI_RE", "_STRING_RE"]
    assert command[0] == []  # none compiled at import
    assert command[1] == plain[1]
    assert sum(result[0] == "ValueError" for result in plain[1]) >= 3


def test_patterns_at_first_use_are_the_named_modules_own(tmp_path):
    """Only the named module's own re.compile calls wait for first use: a module its code
    imports, and the code run after its import, compile at once; re.compile is itself
    again after it; a bad pattern raises re.error at its first use."""
    (tmp_path / "inner.py").write_text("import re\nPATTERN = re.compile('a+')\n")
    (tmp_path / "outer.py").write_text(
        "import re\nimport inner\nPATTERN = re.compile('(b+)', re.I)\nBAD = re.compile('(')\n"
        "class Holder:\n    PATTERN = re.compile('c')\n")
    code = """
import json, re
from agent.lazyimports import compile_patterns_at_first_use
compile_patterns_at_first_use("outer")
import outer, inner
kinds = [type(p).__name__ for p in (inner.PATTERN, outer.PATTERN, outer.Holder.PATTERN)]
match = outer.PATTERN.match("BBx").group(1)
try:
    outer.BAD.match("x")
except re.error as error:
    bad = str(error)
print(json.dumps([kinds, match, outer.PATTERN.flags & re.I != 0, bad,
                  type(re.compile("d")).__name__]))
"""
    kinds, match, ignorecase, bad, after = printed(code, tmp_path)
    assert kinds == ["Pattern", "_PatternAtFirstUse", "_PatternAtFirstUse"]
    assert match == "BB" and ignorecase
    assert "missing )" in bad
    assert after == "Pattern"


def test_email_utils_is_deferred_and_rfc822_names_check_as_before():
    """cryptography.x509 takes parseaddr from email.utils at its import; in a process of
    the command that module is not run until parseaddr is called (an RFC822Name made),
    and RFC822Names are accepted and refused as with the module run at import; a
    ``from`` import of the deferred module does not run it (the import system's
    ``__path__`` question is answered)."""
    code = """
import json, sys
{prelude}
from cryptography import x509
unrun = sys.modules["email.utils"].__dict__.get("formatdate") is None
results = []
for value in ("router@example.net", "Router <router@example.net>", "", "a@b@c", "@", "x"):
    try:
        results.append(x509.RFC822Name(value).value)
    except ValueError as error:
        results.append(str(error))
from email.utils import formatdate
print(json.dumps([unrun, results, formatdate(0, usegmt=True)]))
"""
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("import email.utils",
                                      "import agent.cli\nagent.cli.prepare_process()"))
    assert command[0] is True and plain[0] is False
    assert command[1:] == plain[1:]
    assert "Invalid rfc822name value" in command[1]


def test_serialization_is_deferred_and_the_same_when_asked():
    """In a process of the command, cryptography's serialization package gives its key
    formats and PEM/DER loaders from the modules that define them without running its
    ``__init__`` (nor importing its OpenSSH module); the first other name runs it, and
    every name is then the real package's, the earlier ones the same objects."""
    code = """
import json, sys
import agent.cli
agent.cli.prepare_process()
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
early = [serialization.Encoding, serialization.PublicFormat, serialization.PrivateFormat,
         serialization.NoEncryption, serialization.load_pem_private_key,
         serialization.load_der_public_key]
key = ec.generate_private_key(ec.SECP256R1())
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())
loaded = serialization.load_pem_private_key(pem, None).private_numbers() == key.private_numbers()
unrun = "cryptography.hazmat.primitives.serialization.ssh" not in sys.modules
ssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                    serialization.PublicFormat.OpenSSH)
same = serialization.load_ssh_public_key(ssh).public_numbers() == key.public_key().public_numbers()
names = [serialization.Encoding, serialization.PublicFormat, serialization.PrivateFormat,
         serialization.NoEncryption, serialization.load_pem_private_key,
         serialization.load_der_public_key]
print(json.dumps([loaded, unrun, same, all(a is b for a, b in zip(early, names)),
                  "ssh_key_fingerprint" in serialization.__all__]))
"""
    assert printed(code) == [True, True, True, True, True]


def test_inspect_is_deferred_and_dataclasses_document_as_before():
    """In a process of the command inspect's code runs only when a name of it is used: a
    dataclass with a docstring does not ask it, one without gets the same generated doc
    (its signature) as with inspect run at import."""
    code = """
import json, sys
{prelude}
import dataclasses
@dataclasses.dataclass(frozen=True)
class Documented:
    '''Said.'''
    a: int
unrun = "ast" not in sys.modules
@dataclasses.dataclass
class Undocumented:
    a: int
    b: "list[str]" = dataclasses.field(default_factory=list)
import inspect
print(json.dumps([unrun, Documented.__doc__, Undocumented.__doc__,
                  str(inspect.signature(Undocumented))]))
"""
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("import inspect",
                                      "import agent.cli\nagent.cli.prepare_process()"))
    assert command[0] is True and plain[0] is False
    assert command[1:] == plain[1:]
    assert command[2].startswith("Undocumented(a: int, b:")


def test_openssl_backend_is_deferred_and_answers_as_before():
    """In a process of the command ECDSA signatures are made and checked (and certificate
    paths validated) without running cryptography's OpenSSL backend module; the backend
    object that ``from cryptography.hazmat.backends.openssl import backend`` gives
    (asyncssh's way) answers as the real one, deterministic ECDSA runs the module, and
    the backend is then the real one everywhere."""
    code = """
import datetime, json, sys
{prelude}
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
key = ec.generate_private_key(ec.SECP384R1())
name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "root")])
now = datetime.datetime.now(datetime.timezone.utc)
root = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                     False), critical=True)
        .sign(key, hashes.SHA384()))
signature = key.sign(b"data", ec.ECDSA(hashes.SHA256()))
key.public_key().verify(signature, b"data", ec.ECDSA(hashes.SHA256()))
verifier = PolicyBuilder().store(Store([root])).time(now).build_client_verifier()
try:
    verifier.verify(root, [])
except Exception as error:  # a CA as leaf: refused the same way either way
    refused = type(error).__name__
unrun = "cryptography.hazmat.bindings.openssl.binding" not in sys.modules
from cryptography.hazmat.backends.openssl import backend
answers = [backend.ed25519_supported(), backend.poly1305_supported(),
           backend.openssl_version_text()]
deterministic = ec.ECDSA(hashes.SHA256(), deterministic_signing=True).deterministic_signing
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.backends.openssl.backend import Backend
print(json.dumps([unrun, refused, answers, deterministic,
                  isinstance(default_backend(), Backend)]))
"""
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("import cryptography.hazmat.backends.openssl",
                                      "import agent.cli\nagent.cli.prepare_process()"))
    assert command[0] is True and plain[0] is False
    assert command[1:] == plain[1:]
    assert command[3] is True and command[4] is True


def test_selectors_bz2_lzma_are_deferred_and_work_when_asked():
    """In a process of the command, socket's selectors and shutil's bz2 and lzma are
    imported but not run (their native modules not loaded); shutil knows the same
    archive formats, and each works once used."""
    code = """
import json, sys
{prelude}
import shutil, socket, tempfile
unrun = sorted(m for m in ("_bz2", "_lzma", "select") if m not in sys.modules)
import bz2, lzma, selectors
with selectors.DefaultSelector() as chosen:
    kind = type(chosen).__name__
print(json.dumps([unrun, shutil.get_archive_formats(), shutil.get_unpack_formats(),
                  bz2.decompress(bz2.compress(b"x")).decode(),
                  lzma.decompress(lzma.compress(b"y")).decode(), kind]))
"""
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("", "import agent.cli\nagent.cli.prepare_process('cmp')"))
    assert command[0] == ["_bz2", "_lzma", "select"] and plain[0] == []
    assert command[1:] == plain[1:]
    assert ["bztar", "bzip2'ed tar-file"] in command[1]


def test_a_module_whose_package_is_not_installed_is_not_deferred():
    """defer leaves alone a module whose package is missing, as one not installed: the
    process's preparation does not fail where a dependency is absent; importing it then
    fails as it would have."""
    code = """
import json, sys
from agent.lazyimports import defer
defer("no_such_package_here.module")
try:
    import no_such_package_here.module
except ModuleNotFoundError as error:
    failed = error.name
print(json.dumps(["no_such_package_here.module" in sys.modules, failed]))
"""
    assert printed(code) == [False, "no_such_package_here"]


def test_the_loader_cache_search_answers_as_ctypes_first_step():
    """agent.lazyimports.loader_cache_search runs `ldconfig -p` once for all the names
    and answers each as ctypes.util._findSoname_ldconfig (find_library's first step)."""
    import ctypes.util

    import pytest

    from agent import lazyimports

    first_step = getattr(ctypes.util, "_findSoname_ldconfig", None)
    if first_step is None:
        pytest.skip("no ldconfig step in this ctypes")
    runs = []
    real_popen = subprocess.Popen

    def counting_popen(*args, **kwargs):
        runs.append(args[0])
        return real_popen(*args, **kwargs)

    search = lazyimports.loader_cache_search()
    names = ["c", "m", "crypto", "ssl", "z", "nettle", "oqs", "liboqs", "no-such-library",
             "c.so", "stdc++", "ffi"]
    subprocess.Popen = counting_popen
    try:
        answers = [search(name) for name in names]
    finally:
        subprocess.Popen = real_popen
    assert answers == [first_step(name) for name in names]
    assert answers[0] and answers[0].startswith("libc.so")
    assert runs == [["/sbin/ldconfig", "-p"]]


def test_shutil_is_deferred_and_argparse_sizes_its_help_as_before():
    """argparse imports shutil in each help formatter for ``get_terminal_size`` alone: in a
    process of the command shutil is not run for it, the size is shutil's own for each of
    COLUMNS and LINES set, unset, bad or not positive, and the help is formatted the same;
    any other name of shutil runs it."""
    code = """
import json, os, sys
{prelude}
import argparse, shutil
sizes = []
for columns, lines in ((None, None), ("100", "40"), ("x", "0"), ("-3", "7"), ("52", None)):
    for name, value in (("COLUMNS", columns), ("LINES", lines)):
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value
    sizes.append(list(shutil.get_terminal_size()) + list(shutil.get_terminal_size((33, 9))))
    parser = argparse.ArgumentParser(prog="x", description="word " * 40)
    parser.add_argument("--option", help="help " * 30)
    sizes.append(parser.format_help())
unrun = "copyfile" not in sys.modules["shutil"].__dict__
print(json.dumps([unrun, sizes, shutil.which("sh") is not None]))
"""
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("", "import agent.cli\nagent.cli.prepare_process('cmp')"))
    assert command[0] is True and plain[0] is False
    assert command[1:] == plain[1:]
    assert [100, 40, 100, 40] in command[1]


def test_random_is_deferred_and_rsa_recovers_primes_as_before():
    """cryptography's RSA module imports random for rsa_recover_prime_factors alone: in a
    process of the command random is not run by the imports, the primes are recovered as
    with random run at import, and random works when asked."""
    code = """
import json, sys
{prelude}
import agent.cmp.cli
from cryptography.hazmat.primitives.asymmetric import rsa
unrun = "randint" not in sys.modules["random"].__dict__
numbers = rsa.generate_private_key(65537, 1024).private_numbers()
found = rsa.rsa_recover_prime_factors(numbers.public_numbers.n, numbers.public_numbers.e,
                                      numbers.d)
import random
print(json.dumps([unrun, sorted(found) == sorted([numbers.p, numbers.q]),
                  0 <= random.random() < 1]))
"""
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("", "import agent.cli\nagent.cli.prepare_process('cmp')"))
    assert command[0] is True and plain[0] is False
    assert command[1:] == plain[1:] == [True, True]


def test_ntpath_and_fnmatch_are_deferred_and_pathlib_works_as_before(tmp_path):
    """pathlib imports ntpath (its Windows flavour) and fnmatch (glob and match): in a
    process of the command neither is run by the command's imports, and Windows paths,
    globbing and matching give what they give with both run at import."""
    (tmp_path / "a.pem").write_text("x")
    (tmp_path / "b.key").write_text("y")
    code = """
import json, sys
{prelude}
import agent.cmp.cli
from pathlib import Path, PurePath, PureWindowsPath
unrun = [m for m, name in (("ntpath", "normcase"), ("fnmatch", "translate"))
         if name not in sys.modules[m].__dict__]
w = PureWindowsPath("C:/Keys\\\\Agent/new.KEY")
results = [str(w), w.drive, w.name, w.suffix, str(w.parent), w.match("*.key"),
           sorted(p.name for p in Path(%r).glob("*.pem")), PurePath("x/y.pem").match("*.pem")]
import fnmatch, ntpath
results += [fnmatch.fnmatch("a.pem", "*.pem"), ntpath.join("a", "b")]
print(json.dumps([unrun, results]))
""" % str(tmp_path)
    plain, command = (printed(code.format(prelude=prelude))
                      for prelude in ("", "import agent.cli\nagent.cli.prepare_process('cmp')"))
    assert command[0] == ["ntpath", "fnmatch"] and plain[0] == []
    assert command[1:] == plain[1:]
    assert command[1][:3] == ["C:\\Keys\\Agent\\new.KEY", "C:", "new.KEY"]
