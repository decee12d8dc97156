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
