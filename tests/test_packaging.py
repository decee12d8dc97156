"""The project as a package: a wheel that carries its YANG module and serves.

The wheel is built by pip from the source tree (with the pinned build backend)
and installed without dependencies into a new venv whose only other path is
this environment's site-packages: the dependencies are the test's own, the
agent is the wheel's alone (the source tree is neither the working directory
nor on the path).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from ncclient import manager

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    constraints = str(ROOT / "constraints.txt")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--constraint", constraints,
         "--build-constraint", constraints, "--wheel-dir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    # no build warning (this machine's pip configuration names index folders it lacks: not ours)
    ours = [line for line in build.stderr.splitlines() if "Location 'file:" not in line]
    assert not [line for line in ours if "warning" in line.lower()], build.stderr
    (found,) = out.glob("cmp_agent-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed; dependencies from this environment."""
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    new_site = Path(subprocess.run(
        [str(home / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    # a path line only: the .pth files of this environment (its editable install) stay inactive
    (new_site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(home / "bin" / "python"), "install",
         "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    return home


def test_the_wheel_carries_the_yang_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "agent/yang/cmp-agent-pki.yang" in names
    assert not [n for n in names if n.startswith(("tests/", "tools/"))]


def test_the_installed_wheel_serves_netconf(venv, tmp_path, agent_process):
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import agent; print(agent.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(venv) in where and str(ROOT) not in where
    agent = agent_process(tmp_path / "state", command=[str(venv / "bin" / "cmp-agent")],
                         cwd=tmp_path).start()
    try:
        with manager.connect(host="127.0.0.1", port=agent.port, username="admin",
                             password=agent.password, hostkey_verify=False,
                             allow_agent=False, look_for_keys=False, timeout=30) as m:
            assert "urn:ietf:params:netconf:capability:candidate:1.0" in m.server_capabilities
            assert "<pki" in m.get(("xpath", "/pki")).data_xml
    finally:
        agent.stop()


def test_a_broken_installation_fails_before_the_state_directory_exists(venv, tmp_path):
    module = next((venv / "lib").glob("python3*/site-packages/agent/yang/cmp-agent-pki.yang"))
    kept = module.read_bytes()
    module.unlink()
    try:
        run = subprocess.run([str(venv / "bin" / "cmp-agent"), "serve", "--port", "0",
                              "--state-dir", str(tmp_path / "state")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        module.write_bytes(kept)
    assert run.returncode == 1
    assert "cannot load the YANG model" in run.stderr and "cmp-agent-pki" in run.stderr
    assert "password" not in run.stdout
    assert not (tmp_path / "state").exists()


def test_every_requirement_is_pinned_within_its_range():
    """constraints.txt (tools/lock, which installs the test extra and so clients) pins each
    dependency of the project and of those extras at a version the range in pyproject.toml
    admits; the README's clients are in `clients`."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    extras = project["optional-dependencies"]
    for text in [*project["dependencies"], *extras["clients"], *extras["test"]]:
        requirement = Requirement(text)
        if requirement.name == project["name"]:
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{text} is not in constraints.txt"
        assert requirement.specifier.contains(pinned, prereleases=True), (text, pinned)
    clients = {canonicalize_name(Requirement(r).name) for r in extras["clients"]}
    assert {"ncclient", "netconf-console2", "scrapli-netconf", "ansible"} <= clients
