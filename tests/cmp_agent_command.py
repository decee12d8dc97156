"""The ``cmp-agent`` command the tests start: always this checkout's code.

``tools/_setup.sh`` installs the project editable into ``.venv``; with one venv shared
by several git worktrees (a symlinked ``.venv``) that install points at whichever
checkout installed last, and ``.venv/bin/cmp-agent`` would silently run another
checkout's code. :func:`agent_command` uses the venv's script only when the venv's
``agent`` package is this checkout's; otherwise ``python -m agent`` with PYTHONPATH=ROOT
set for that process only (never in the test process: tests/test_packaging.py checks
that an installed wheel does not see the source tree), whatever the caller's cwd and
environment. Not a failure: with a shared venv, reinstalling would only re-point the
other worktrees' runs.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def installed_agent_dir(python: Path) -> Path | None:
    """Where *python* imports ``agent`` from outside any checkout (cwd ``/``, ``-I``:
    no PYTHONPATH, no cwd on the path), or None if it does not."""
    found = subprocess.run(
        [str(python), "-I", "-c",
         "import importlib.util as u; s = u.find_spec('agent'); print(s.origin if s else '')"],
        cwd="/", capture_output=True, text=True, timeout=60)
    origin = found.stdout.strip()
    return Path(origin).resolve().parent if found.returncode == 0 and origin else None


def venv_script_runs(root: Path, venv: Path) -> bool:
    """Whether *venv*'s ``cmp-agent`` script imports the ``agent`` package of *root*."""
    python = venv / "bin" / "python"
    if not ((venv / "bin" / "cmp-agent").exists() and python.exists()):
        return False
    return installed_agent_dir(python) == (root / "agent").resolve()


def agent_command() -> list[str]:
    """``.venv/bin/cmp-agent`` when the venv runs this checkout, else this checkout's
    ``agent`` run by this python (decided once per test process)."""
    return list(_command())


@functools.cache
def _command() -> tuple[str, ...]:
    if venv_script_runs(ROOT, ROOT / ".venv"):
        return (str(ROOT / ".venv" / "bin" / "cmp-agent"),)
    # the venv is another checkout's (or has no script): this python with ROOT first on
    # the path, set in the agent's environment only (so that its own children, e.g. the
    # XPath filter worker, import the same code), whatever env the caller passes
    return ("/usr/bin/env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "agent")
