"""What agent/lazyimports.py defers stays transparent: the real module, complete, once
asked for. Each check runs in a new interpreter, since this one has imported everything
the other tests use."""

from __future__ import annotations

import json
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
