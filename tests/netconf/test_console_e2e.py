"""End to end with netconf-console2's command line, as a new user would run it (README walk-through)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nc_helpers import PKI_NS

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / ".venv" / "bin" / "netconf-console2"


def console(agent, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CONSOLE), "--host", "127.0.0.1", "--port", str(agent.port), "-u", "admin",
         "-p", agent.password, *args],
        capture_output=True, text=True, timeout=60)


def test_console_hello(agent):
    result = console(agent, "--hello")
    assert result.returncode == 0, result.stderr
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in result.stdout
    assert "urn:ietf:params:netconf:capability:yang-library:1.1" in result.stdout


def test_console_edit_config_commit_and_get_config(agent, tmp_path):
    # netconf-console2 puts the file's top-level element into <config> itself
    config = tmp_path / "session.xml"
    config.write_text(
        f'<pki xmlns="{PKI_NS}"><cmp-session><name>console-s1</name>'
        "<ca-name>/C=CN/O=Example/CN=Example CA</ca-name>"
        "<server-url><url>http://127.0.0.1:8080/pkix/</url></server-url>"
        "<auto-update><enabled>true</enabled><expire-time>60</expire-time></auto-update>"
        "</cmp-session></pki>")
    result = console(agent, "--db", "candidate", "--edit-config", str(config), "--commit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rpc-error" not in result.stdout
    result = console(agent, "--get-config")
    assert result.returncode == 0, result.stderr
    assert "console-s1" in result.stdout
    assert "<expire-time>60</expire-time>" in result.stdout


def test_console_get_schema(agent):
    result = console(agent, "--get-schema", "cmp-agent-pki")
    assert result.returncode == 0, result.stderr
    assert "module cmp-agent-pki" in result.stdout


def test_console_reports_an_rpc_error(agent, tmp_path):
    config = tmp_path / "bad.xml"
    config.write_text(
        f'<pki xmlns="{PKI_NS}"><cmp-session><name>console-bad</name>'
        "<auto-update><expire-time>5</expire-time></auto-update>"
        "</cmp-session></pki>")
    result = console(agent, "--db", "candidate", "--edit-config", str(config))
    assert "invalid-value" in result.stdout + result.stderr
    assert "expire-time" in result.stdout + result.stderr


def test_console_xpath_typo_exits_non_zero_and_names_the_step(agent):
    result = console(agent, "--get", "-x", "/pki/cmp-sesion")
    assert result.returncode != 0, result.stdout
    assert "<error-tag>invalid-value</error-tag>" in result.stdout
    assert "step 'cmp-sesion'" in result.stdout and "did you mean cmp-session?" in result.stdout
    # an unprefixed path that names real nodes but matches nothing is an empty reply
    empty = console(agent, "--get", "-x", "/pki/cmp-session[name='none']")
    assert empty.returncode == 0, empty.stdout
    assert "rpc-error" not in empty.stdout and "cmp-session" not in empty.stdout


def test_console_xpath_filter(agent):
    result = console(agent, "--get", "-x", "/netconf-state/sessions/session/username")
    assert result.returncode == 0, result.stderr
    assert "<username>admin</username>" in result.stdout
    assert "<session-id>" in result.stdout  # the list key comes along
    assert "<capabilities>" not in result.stdout


def test_console_rpcs_from_standard_input_are_all_answered(agent):
    """netconf-console2's positional file ('-': standard input) of ]]>]]>-delimited RPCs
    without a close-session (it sends the messages and reads the replies)."""
    rpcs = "".join(f'<rpc message-id="{i}" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                   f"{body}</rpc>]]>]]>" for i, body in enumerate(
                       ["<get-config><source><running/></source></get-config>",
                        "<lock><target><candidate/></target></lock>",
                        "<get-config><source><candidate/></source></get-config>"], start=1))
    result = subprocess.run(
        [str(CONSOLE), "--host", "127.0.0.1", "--port", str(agent.port), "-u", "admin",
         "-p", agent.password, "-"], input=rpcs, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("<data") == 2 and result.stdout.count("<ok/>") == 1
