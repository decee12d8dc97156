"""tests/cmp_agent_command.py: the venv's ``cmp-agent`` only when it runs this checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from cmp_agent_command import ROOT, agent_command, venv_script_runs


def checkout(path: Path) -> Path:
    (path / "agent").mkdir(parents=True)
    (path / "agent" / "__init__.py").write_text("")
    return path


def test_a_venv_installed_from_another_checkout_is_not_used(tmp_path):
    here, other = checkout(tmp_path / "here"), checkout(tmp_path / "other")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (venv / "bin" / "cmp-agent").write_text("#!/bin/sh\n")
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # what ``pip install -e`` leaves: a .pth putting the checkout on the path
    (site / "__editable__.cmp_agent-0.1.0.pth").write_text(f"{other}\n")
    assert not venv_script_runs(here, venv)
    assert venv_script_runs(other, venv)
    (venv / "bin" / "cmp-agent").unlink()
    assert not venv_script_runs(other, venv)  # no script to run


def test_the_command_runs_this_checkout(tmp_path):
    done = subprocess.run([*agent_command(), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: cmp-agent" in done.stdout
    if len(agent_command()) == 1:  # the venv's script: its package is ROOT's
        assert venv_script_runs(ROOT, ROOT / ".venv")
    else:
        assert f"PYTHONPATH={ROOT}" in agent_command()
