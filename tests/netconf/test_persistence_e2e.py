"""Committed configuration survives a restart and a kill -9 (issue 2, section 3)."""

from __future__ import annotations

import stat

from nc_helpers import connect, session_config, session_names, wait_until


def _commit_session(agent, name: str) -> None:
    with connect(agent) as m:
        m.edit_config(target="candidate", config=session_config(name, ca_name="/CN=Persist"))
        m.commit()


def _running(agent) -> list[str]:
    with connect(agent) as m:
        return session_names(m.get_config("running").data_xml)


def test_first_start_creates_state_dir_with_private_files(fresh_agent):
    state = fresh_agent.state_dir
    for name in ("initial-admin-password", "users", "ssh_host_ed25519_key", "agent.log"):
        mode = stat.S_IMODE((state / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    password = fresh_agent.password
    # stdout is a pipe (a service's is a journal others read): the file is named, the
    # password is not printed (printed on a terminal: tests/test_serve.py)
    assert password and password not in fresh_agent.log_text()
    assert f"its password is in {state / 'initial-admin-password'}" in fresh_agent.log_text()
    assert password not in (state / "agent.log").read_text()
    assert password not in (state / "users").read_text()


def test_restart_keeps_committed_config_and_password(fresh_agent):
    _commit_session(fresh_agent, "survivor")
    password = fresh_agent.password
    fresh_agent.restart()
    assert fresh_agent.password == password
    assert password not in fresh_agent.log_text()  # not printed again
    assert "survivor" in _running(fresh_agent)


def test_kill_9_keeps_committed_config(fresh_agent):
    _commit_session(fresh_agent, "before-crash")
    fresh_agent.kill9()
    fresh_agent.start()
    assert "before-crash" in _running(fresh_agent)


def test_log_has_session_rpc_and_commit_lines_without_secrets(fresh_agent):
    with connect(fresh_agent) as m:
        secret_config = session_config("logged").replace(
            "<name>logged</name>",
            "<name>logged</name><message-authentication-code><reference-value>ref1"
            "</reference-value><secret-value>TopSecret-123</secret-value>"
            "</message-authentication-code>")
        m.edit_config(target="candidate", config=secret_config)
        m.commit()
        sid = m.session_id
    log_file = fresh_agent.state_dir / "agent.log"
    assert wait_until(lambda: f"session {sid} closed" in log_file.read_text())
    log = log_file.read_text()
    assert f"session {sid} opened: user admin" in log
    assert f"session {sid} rpc edit-config" in log
    assert f"session {sid} (admin) commit:" in log
    assert "TopSecret-123" not in log
    assert "TopSecret-123" not in fresh_agent.log_text()


def test_unconfirmed_commit_is_undone_after_a_crash(fresh_agent):
    """RFC 6241 section 8.4.1: a reboot before the confirming commit restores running."""
    _commit_session(fresh_agent, "kept")
    m = connect(fresh_agent)
    m.edit_config(target="candidate", config=session_config("unconfirmed"))
    m.commit(confirmed=True, timeout="600", persist="p1")
    assert "unconfirmed" in session_names(m.get_config("running").data_xml)
    fresh_agent.kill9()
    fresh_agent.start()
    names = _running(fresh_agent)
    assert "kept" in names and "unconfirmed" not in names
    assert "not confirmed before the agent stopped" in fresh_agent.log_text()
    assert not (fresh_agent.state_dir / "unconfirmed-commit-rollback.xml").exists()


def test_a_port_in_use_is_a_clear_error(agent, tmp_path):
    import subprocess

    from cmp_agent_command import agent_command

    result = subprocess.run([*agent_command(), "serve", "--port", str(agent.port),
                             "--state-dir", str(tmp_path / "second")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{agent.port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_orphan_temporary_files_are_removed_at_start(fresh_agent):
    """Issue 9: a crash in the middle of an atomic write leaves .running.xml.*.tmp."""
    fresh_agent.stop()
    orphan = fresh_agent.state_dir / ".running.xml.q8w_e7r2.tmp"
    orphan.write_bytes(b"<data><pki")
    fresh_agent.start()
    assert not orphan.exists()
    assert f"removed {orphan}" in (fresh_agent.state_dir / "agent.log").read_text()
