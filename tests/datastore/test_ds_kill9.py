"""A kill -9 at any moment leaves the old or the new configuration: a real
process commits in a loop and is killed at arbitrary points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from ds_helpers import xp

from agent.datastore import Datastores, SecretBox

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from lxml import etree
    from agent.datastore import Datastores, SecretBox
    from agent import PKI_NS
    from agent.model import Model
    NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
    state = Path(sys.argv[1])
    ds = Datastores(Model.load(), state, SecretBox.open(state))
    n = 0
    while True:
        n += 1
        body = "".join(f"<cmp-session><name>g{n}-{i}</name></cmp-session>" for i in range(50))
        cfg = etree.fromstring(f'<config xmlns="{NC}"><pki xmlns="{PKI_NS}">{body}</pki></config>')
        ds.edit_config("candidate", cfg, default_operation="replace")
        ds.commit()
        if n == 1:
            print("READY", flush=True)
""")


def test_kill_9_during_commits_leaves_a_loadable_configuration(model, tmp_path):
    rng = random.Random(1234)
    state = tmp_path / "state"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(state)],
                                stdout=subprocess.PIPE, env=env)
        try:
            assert proc.stdout.readline().strip() == b"READY"
            time.sleep(rng.uniform(0.05, 0.4))  # lands somewhere in a commit cycle
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        ds = Datastores(model, state, SecretBox.open(state))
        names = xp(ds.get_config("running", "explicit"), "//p:cmp-session/p:name/text()")
        generations = {n.split("-")[0] for n in names}
        assert len(names) == 50 and len(generations) == 1  # one whole commit, never a mix
