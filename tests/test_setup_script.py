"""``tools/_setup.sh``: install into the checkout's own venv, never into a shared one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: a stand-in for the venv's python that notes each call (pip is what is looked for)
RECORDING_PYTHON = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/../calls"
"""


def checkout(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    (root / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "_setup.sh", root / "tools" / "_setup.sh")
    for pinned in ("pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / pinned, root / pinned)
    return root


def venv(at: Path) -> Path:
    (at / "bin").mkdir(parents=True)
    python = at / "bin" / "python"
    python.write_text(RECORDING_PYTHON)
    python.chmod(0o755)
    return at


def source_setup(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", 'source tools/_setup.sh test "[test]"'], cwd=root,
                          capture_output=True, text=True, timeout=60)


def test_a_checkout_with_its_own_venv_is_installed_into_it(tmp_path):
    root = checkout(tmp_path, "main")
    own = venv(root / ".venv")
    done = source_setup(root)
    assert done.returncode == 0, done.stderr
    calls = (own / "calls").read_text()
    assert "pip install" in calls and f"-e {root}[test]" in calls
    assert (own / ".installed-test").exists()


def test_a_linked_shared_venv_is_left_as_it_is(tmp_path):
    # a git worktree whose .venv links to the main checkout's: installing the worktree
    # editable would re-point the install for every checkout that shares it
    shared = venv(tmp_path / "main" / ".venv")
    worktree = checkout(tmp_path, "worktree")
    os.symlink(shared, worktree / ".venv")
    done = source_setup(worktree)
    assert done.returncode == 0, done.stderr
    assert not (shared / "calls").exists()
    assert not (shared / ".installed-test").exists()
    assert "shared venv: not reinstalling" in done.stderr
