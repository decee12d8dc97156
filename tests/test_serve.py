"""``cmp-agent serve`` set-up: the agent's own log and accept errors (issue 9)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.serve import PrivateRotatingFileHandler, _quiet_accept_errors, initial_admin_password


def test_log_is_rotated_by_size_and_stays_private(tmp_path):
    old = os.umask(0)
    try:
        handler = PrivateRotatingFileHandler(tmp_path / "agent.log", maxBytes=1000,
                                             backupCount=2, encoding="utf-8")
        logger = logging.getLogger("test.rotation")
        logger.propagate = False
        logger.addHandler(handler)
        for i in range(200):
            logger.warning("line %d of a flood", i)
        handler.close()
    finally:
        os.umask(old)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["agent.log", "agent.log.1", "agent.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_accept_errors_are_logged_once_per_interval(caplog):
    async def scenario():
        loop = asyncio.get_running_loop()
        _quiet_accept_errors(loop)
        for _ in range(500):  # what asyncio reports per failed accept()
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    accept = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(accept) == 1
    assert "Too many open files" in accept[0].getMessage()
    assert accept[0].exc_info is None  # no traceback


# --- issue 9, section 5: the state directory under a careless umask ---------------
def _modes(root):
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")
            if p.is_dir()}


def test_directories_get_explicit_modes_under_umask_000(tmp_path):
    from agent.datastore import Datastores, SecretBox
    from agent.model import Model
    from agent.pki.service import PkiService
    from agent.serve import prepare_state_dir

    state = tmp_path / "new" / "state"
    old = os.umask(0)
    try:
        prepare_state_dir(state)
        datastores = Datastores(Model.load(), state, SecretBox.open(state))
        PkiService(datastores, state, datastores.secrets)
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert _modes(state) == {"pki": 0o755, "pki/public": 0o755, "pki/private": 0o700}
    assert not any(stat.S_IMODE(p.stat().st_mode) & 0o022 for p in state.rglob("*"))
    prepare_state_dir(state)  # its own tree passes the check at the next start


def test_a_state_directory_others_can_write_is_refused(tmp_path):
    import subprocess
    import sys

    from agent.atomic import InsecurePermissions, check_private_tree
    from agent.serve import prepare_state_dir

    state = tmp_path / "state"
    prepare_state_dir(state)
    public = state / "pki" / "public"
    public.mkdir(parents=True)
    os.chmod(public, 0o777)
    with pytest.raises(InsecurePermissions, match="pki/public \\(mode 0777\\).*chmod -R go-w"):
        check_private_tree(state)
    result = subprocess.run([sys.executable, "-m", "agent", "serve", "--port", "0",
                             "--state-dir", str(state)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "chmod -R go-w" in result.stderr and "Traceback" not in result.stderr
    os.chmod(public, 0o755)
    (state / "users").chmod(0o620)  # a group-writable key file
    with pytest.raises(InsecurePermissions, match="users \\(mode 0620\\)"):
        check_private_tree(state)


def test_authorized_keys_others_can_write_are_not_used(tmp_path):
    from agent.netconf.users import UserStore

    keys = tmp_path / "authorized_keys"
    keys.mkdir(mode=0o700)
    (keys / "alice").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice\n")
    os.chmod(keys / "alice", 0o600)
    users = UserStore(tmp_path)
    assert users.authorized_keys("alice") == str(keys / "alice")
    os.chmod(keys / "alice", 0o666)
    assert users.authorized_keys("alice") is None
    os.chmod(keys / "alice", 0o600)
    os.chmod(keys, 0o777)
    assert users.authorized_keys("alice") is None


def test_temporaries_of_interrupted_writes_are_removed(tmp_path):
    from agent.atomic import atomic_write, remove_temporaries

    atomic_write(tmp_path / "running.xml", b"<data/>")
    orphans = [tmp_path / ".running.xml.k2j4_x9a.tmp", tmp_path / "pki" / ".k1.pem.abcdefgh.tmp"]
    for orphan in orphans:
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"partial")
    keep = [tmp_path / "running.xml", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for path in keep[1:]:
        path.write_bytes(b"mine")
    assert sorted(remove_temporaries(tmp_path)) == sorted(orphans)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in orphans)


def test_temporary_files_are_named_and_made_as_mkstemp_makes_them(tmp_path, monkeypatch):
    """atomic_write's temporary file (agent/atomic.py, without tempfile since issue 11):
    ".NAME.XXXXXXXX.tmp" as tempfile.mkstemp names it (what remove_temporaries finds
    after a crash), created exclusively and mode 0600 (then the asked mode), never
    through a symbolic link; a name taken is passed over."""
    import os
    import stat

    from agent import atomic

    target = tmp_path / "running.xml"
    tmp = atomic.write_temporary(target, b"<data/>", 0o640)
    assert tmp.parent == tmp_path and tmp.is_absolute()
    assert re.match(atomic._TEMPORARY, tmp.name) and tmp.name.startswith(".running.xml.")
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o640 and tmp.read_bytes() == b"<data/>"
    atomic.install_temporary(tmp, target)
    assert target.read_bytes() == b"<data/>" and not tmp.exists()

    # the first names drawn are taken (one by a file, one by a link to elsewhere)
    draws = iter([b"\x00" * 8, b"\x01" * 8, b"\x02" * 8])
    monkeypatch.setattr(atomic.os, "urandom", lambda n: next(draws))
    (tmp_path / ".running.xml.aaaaaaaa.tmp").write_bytes(b"other")
    os.symlink(tmp_path / "elsewhere", tmp_path / ".running.xml.bbbbbbbb.tmp")
    fd, name = atomic._create_temporary(tmp_path, ".running.xml.", ".tmp")
    os.close(fd)
    assert name == str(tmp_path / ".running.xml.cccccccc.tmp")
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    assert not (tmp_path / "elsewhere").exists()
    assert (tmp_path / ".running.xml.aaaaaaaa.tmp").read_bytes() == b"other"
    monkeypatch.setattr(atomic.os, "urandom", lambda n: b"\x00" * 8)
    monkeypatch.setattr(atomic, "_NAME_TRIES", 3)
    with pytest.raises(FileExistsError):
        atomic._create_temporary(tmp_path, ".running.xml.", ".tmp")


def test_the_readme_limits_name_real_options():
    """README, "Limits": every serve option it names exists."""
    import argparse
    import re
    from pathlib import Path

    from agent.serve import configure_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Limits", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(--[a-z-]+)`", section))
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    known = {option for action in parser._actions for option in action.option_strings}
    assert named and named <= known, named - known


def test_the_initial_admin_password_never_begins_with_a_dash():
    """A password an operator passes as ``-p PASSWORD`` must not read as an option."""
    draws = iter(["-looks-like-an-option", "-again", "Fine_password-1"])
    asked = []

    def draw(nbytes: int) -> str:
        asked.append(nbytes)
        return next(draws)

    assert initial_admin_password(draw) == "Fine_password-1"
    assert asked == [15, 15, 15]
    assert not any(initial_admin_password().startswith("-") for _ in range(500))


def test_the_agent_makes_no_core_dump(agent):
    """A core dump would copy what the agent holds in clear (MAC secrets, private keys) to
    wherever the system keeps crashes: the agent's limit is 0 and it is not dumpable."""
    limits = Path(f"/proc/{agent.process.pid}/limits").read_text()
    (line,) = [line for line in limits.splitlines() if line.startswith("Max core file size")]
    assert line.split()[4:6] == ["0", "0"], line
    code = ("import ctypes, resource; from agent.serve import no_core_dumps; no_core_dumps();"
            " print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.split(None, 1) == ["0", "(0, 0)\n"]  # PR_GET_DUMPABLE


def test_the_first_password_is_printed_only_on_a_terminal(tmp_path, agent_process):
    """On a terminal the operator sees the password; elsewhere (systemd's journal, readable
    by group adm) stdout only names the 0600 file it is in. Both first starts are real."""
    import pexpect

    piped = agent_process(tmp_path / "piped-state").start()  # stdout read from a pipe
    try:
        out = piped.log_text()
    finally:
        piped.stop()
    path = piped.state_dir / "initial-admin-password"
    assert piped.password not in out
    assert f"its password is in {path}, mode 0600" in out
    # every start names its host key, for a client to compare (cmp-agent cli, ssh-keyscan)
    import asyncssh

    key = asyncssh.read_private_key(piped.state_dir / "ssh_host_ed25519_key")
    assert f"SSH host key: ED25519 {key.get_fingerprint()}\n" in out
    state = tmp_path / "tty-state"
    command = agent_process(state).command
    child = pexpect.spawn(command[0], [*command[1:], "serve", "--port", "0", "--state-dir",
                                       str(state)], encoding="utf-8", timeout=120)
    try:
        child.expect("listening on ")
        shown = child.before
    finally:
        child.terminate(force=True)
    password = (state / "initial-admin-password").read_text().strip()
    assert f"created user 'admin' with password {password}" in shown


def test_a_taken_port_is_reported_before_the_model_is_loaded(tmp_path):
    """An agent still running on the port: the error comes before the start-up work
    (no compiled model written, no state directory made), worded as listening words it."""
    import socket

    from agent.serve import MODEL_CACHE, check_address_free

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        state = tmp_path / "state"
        result = subprocess.run([sys.executable, "-m", "agent", "serve", "--port", str(port),
                                 "--state-dir", str(state)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 1
        assert result.stderr == (
            f"cmp-agent: cannot listen on 127.0.0.1:{port}: error while attempting to bind on"
            f" address ('127.0.0.1', {port}): address already in use"
            " (another agent running? choose another --port)\n")
        assert not (state / MODEL_CACHE).exists() and not state.exists()

        async def listen() -> None:
            await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", port)

        with pytest.raises(OSError) as checked:
            check_address_free("127.0.0.1", port)
        with pytest.raises(OSError) as listening:
            asyncio.run(listen())
        assert (checked.value.errno, checked.value.strerror) == (
            listening.value.errno, listening.value.strerror)
    check_address_free("127.0.0.1", port)  # free again, and left free by the check
    check_address_free("127.0.0.1", port)
    check_address_free("127.0.0.1", 0)
