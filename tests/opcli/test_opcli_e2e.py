"""``cmp-agent cli`` end to end: a real agent, tools/testca, the CLI as a subprocess and on a pty."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pexpect
import pytest
from lxml import etree

from agent.netconf.client import NetconfClient
from opcli_helpers import ROOT, cli_command
from testca_process import run_testca

GOLDEN = Path(__file__).resolve().parent / "golden"
PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NS = {"p": PKI}


@pytest.fixture
def ca(tmp_path):
    with run_testca(tmp_path / "ca") as running:
        yield running


def cli(agent, *args: str, stdin: str | None = None, password: str | None = None,
        state_dir: Path | None = None):
    """``cmp-agent cli`` to *agent*, trusting the host key of its state directory (it runs
    on loopback: the local agent's key), unless *state_dir* names another."""
    env = {**os.environ, "CMP_AGENT_PASSWORD": password if password is not None else agent.password}
    return subprocess.run([*cli_command(), "--port", str(agent.port), "--state-dir",
                           str(state_dir or agent.state_dir), *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def running_pki(agent, datastore: str = "running") -> etree._Element:
    async def fetch():
        client = await NetconfClient.connect("127.0.0.1", agent.port, "admin", agent.password)
        try:
            reply = await client.rpc(f'<get-config><source><{datastore}/></source>'
                                     f'<filter type="subtree"><pki xmlns="{PKI}"/></filter>'
                                     "</get-config>")
        finally:
            await client.close()
        return reply

    return asyncio.run(fetch())


def test_the_seed_procedure_replayed_from_a_file_enrols_a_certificate(fresh_agent, ca, tmp_path):
    seed = (GOLDEN / "seed-procedure.txt").read_text().replace("http://192.0.2.10:8080/pkix/", ca.url)
    commands = tmp_path / "seed.txt"
    commands.write_text(seed)
    done = cli(fresh_agent, str(commands))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # the guide's order: the request comes before commit and runs right after it
    waited = out.index("Info: Session s1 has uncommitted configuration: the CMP initial request (IR)"
                       " will be sent after the next commit.")
    sent = out.index("Info: Sending the CMP initial request (IR) of session s1 that waited")
    assert waited < sent < out.index("Info: The CMP initial request (IR) of session s1 succeeded.")
    assert "Info: Certificate saved as s1-local.pem (serial " in out
    assert "Info: CA certificates saved as s1-ca1.pem." in out
    # display pki cmp statistics session s1: the counts of one IR transaction
    table = out[out.index("CMP statistics of session s1"):]
    for label, value in (("IR", 1), ("CR", 0), ("KUR", 0), ("CertConf", 1), ("IP", 1),
                         ("PKIConf", 1), ("Accepted", 1), ("Rejection", 0), ("Transport", 0),
                         ("P10CR", 0), ("RR", 0), ("GENM", 0), ("RP", 0), ("GENP", 0),
                         ("CertificateRejected", 0)):
        assert re.search(rf"^\s*(?:\w[\w ]*?\s{{2,}})?{label}\s+{value}$", table, re.M), (label, table)
    assert re.search(r"^Messages sent\s+IR\s+1$", table, re.M)
    assert re.search(r"Result\s+success$", table, re.M)
    # the secret was configured, but never shown
    assert ca.secret not in done.stdout + done.stderr
    assert (fresh_agent.state_dir / "pki" / "public" / "s1-local.pem").read_bytes().startswith(
        b"-----BEGIN CERTIFICATE")

    config = running_pki(fresh_agent)
    session = config.xpath("//p:cmp-session[p:name='s1']", namespaces=NS)[0]
    assert session.findtext("p:ca-name", namespaces=NS) == "/C=CN/O=cmp-agent/CN=cmp-agent test CA"
    assert session.findtext("p:server-url/p:url", namespaces=NS) == ca.url
    assert session.findtext("p:auto-update/p:expire-time", namespaces=NS) == "60"
    assert config.xpath("string(//p:entity[p:name='e1']/p:organization)", namespaces=NS) == \
        "Example Inc"

    # the overall statistics, from stdin this time
    total = cli(fresh_agent, stdin="display pki cmp statistics\n")
    assert total.returncode == 0, total.stderr
    assert re.search(r"^s1\s+1\s+0\s+0\s+1\s+0\s+success$", total.stdout, re.M), total.stdout


def test_a_request_the_ca_refuses_is_an_error_with_the_cas_answer(fresh_agent, tmp_path):
    with run_testca(tmp_path / "refusing-ca", "--reject", "quota exceeded") as refusing:
        commands = tmp_path / "seed.txt"
        commands.write_text((GOLDEN / "seed-procedure.txt").read_text().replace(
            "http://192.0.2.10:8080/pkix/", refusing.url))
        done = cli(fresh_agent, str(commands))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Error: The CMP initial request (IR) of session s1 failed: rejected: the CA refused" \
        in done.stderr
    assert "PKIFailureInfo=badRequest; text='quota exceeded'" in done.stderr
    assert "succeeded" not in done.stdout


def test_undo_forms_and_the_first_failed_command_ends_the_run(fresh_agent):
    script = "\n".join([
        "system-view",
        "pki cmp session s2",
        " cmp-request ca-name /C=CN/O=Example/CN=Example CA",
        " source 192.0.2.1",
        " cmp-request message-authentication-code 77 other-secret",
        " commit",
        " undo source",
        " undo cmp-request ca-name",
        " quit",
        "commit",
        "pki cmp initial-request session s2",  # line 11: s2 lacks a URL, a key pair, an entity
        "pki file-format der",
        "commit",
    ]) + "\n"
    done = cli(fresh_agent, stdin=script)
    assert done.returncode == 1
    assert "Error: session s2: no server-url" in done.stderr
    assert "stdin, line 11: [cmp-agent]pki cmp initial-request session s2" in done.stderr
    assert "other-secret" not in done.stdout + done.stderr
    config = running_pki(fresh_agent)
    session = config.xpath("//p:cmp-session[p:name='s2']", namespaces=NS)[0]
    assert session.find("p:source-address", namespaces=NS) is None
    assert session.find("p:ca-name", namespaces=NS) is None
    assert session.findtext("p:message-authentication-code/p:reference-value", namespaces=NS) == "77"
    # nothing after the failed line ran
    assert config.findtext(".//p:file-format", namespaces=NS) != "der"


def test_entering_an_existing_sessions_view_or_undoing_a_change_is_not_uncommitted(fresh_agent):
    """As on the device, only commands that change the configuration leave it uncommitted."""
    created = cli(fresh_agent, stdin="system-view\npki cmp session s1\n"
                                     " cmp-request ca-name /C=CN/CN=Example CA\n quit\ncommit\n")
    assert created.returncode == 0, created.stderr
    visit = cli(fresh_agent, stdin="system-view\npki cmp session s1\n"
                                   " cmp-request ca-name /C=CN/CN=Example CA\n quit\n"
                                   "pki file-format der\nundo pki file-format\n"
                                   "pki cmp keyupdate-request session s1\n")
    # the request was sent at once (and refused by the agent: s1 has no server URL)
    assert "uncommitted" not in visit.stdout + visit.stderr
    assert "Error: session s1: no server-url" in visit.stderr
    clean = cli(fresh_agent, stdin="system-view\npki cmp session s1\n quit\nreturn\n")
    assert clean.returncode == 0 and clean.stderr == "", clean.stderr
    # a real change still is one
    changed = cli(fresh_agent, stdin="system-view\npki cmp session s1\n"
                                     " cmp-request ca-name /C=CN/CN=Other CA\n quit\n"
                                     "pki cmp keyupdate-request session s1\n")
    assert changed.returncode == 1
    assert "Info: Session s1 has uncommitted configuration: the CMP key update request (KUR)" \
        in changed.stdout


def test_a_bad_command_a_value_the_agent_refuses_or_a_bad_password_fail(fresh_agent, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("system-view\npki cmp session s1\n cmp-request entty e1\ncommit\n")
    done = cli(fresh_agent, str(bad))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{bad}, line 3:",
        "[cmp-agent-pki-cmp-session-s1] cmp-request entty e1",
        "                                           ^",
        "Error: Unrecognized command found at '^' position.",
        "Info: The uncommitted configuration of this run was discarded.",
    ]
    # nothing half-done is left in the candidate for the next commit
    assert not running_pki(fresh_agent, "candidate").xpath("//p:cmp-session", namespaces=NS)

    refused = cli(fresh_agent, stdin="system-view\npki cmp session s1\n"
                                     "cmp-request ca-name no-slashes\n")
    assert refused.returncode == 1 and refused.stderr.startswith("Error: ")
    assert "stdin, line 3: [cmp-agent-pki-cmp-session-s1]cmp-request ca-name no-slashes" \
        in refused.stderr

    waiting = cli(fresh_agent, stdin="system-view\npki cmp session s1\nquit\n"
                                     "pki cmp initial-request session s1\n")
    assert waiting.returncode == 1
    assert "Error: The configuration was not committed (no 'commit' after it); never sent: the" \
           " CMP initial request (IR) of session s1." in waiting.stderr
    assert not running_pki(fresh_agent, "candidate").xpath("//p:cmp-session", namespaces=NS)

    # another session's uncommitted changes: the replay does not mix its edits with them
    async def edit_elsewhere():
        client = await NetconfClient.connect("127.0.0.1", fresh_agent.port, "admin",
                                             fresh_agent.password)
        await client.rpc(f'<edit-config><target><candidate/></target><config><pki xmlns="{PKI}">'
                         "<file-format>der</file-format></pki></config></edit-config>")
        reading = cli(fresh_agent, stdin="display pki cmp statistics\n")  # no edit, no lock
        busy = cli(fresh_agent, stdin="system-view\npki file-format pem\ncommit\n")
        candidate = await client.rpc("<get-config><source><candidate/></source></get-config>")
        await client.rpc("<discard-changes/>")
        await client.close()
        return reading, busy, candidate

    reading, busy, candidate = asyncio.run(edit_elsewhere())
    assert reading.returncode == 0, reading.stderr
    assert busy.returncode == 1
    # the other session's change is still there: the failed replay discarded nothing of it
    assert candidate.findtext(".//p:file-format", namespaces=NS) == "der"
    assert "Info: The uncommitted configuration of this run was discarded" not in busy.stderr
    assert "Error: the candidate datastore has uncommitted changes made by session" in busy.stderr

    denied = cli(fresh_agent, stdin="display pki cmp statistics\n", password="wrong")
    assert denied.returncode == 1 and "Error: cannot connect to 127.0.0.1:" in denied.stderr


def test_interactive_prompt_help_completion_and_commands(fresh_agent):
    env = {k: v for k, v in os.environ.items() if k != "CMP_AGENT_PASSWORD"}
    env["TERM"] = "dumb"
    command = cli_command()
    child = pexpect.spawn(command[0], [*command[1:], "--port", str(fresh_agent.port),
                                       "--state-dir", str(fresh_agent.state_dir)], env=env,
                          cwd=str(ROOT), encoding="utf-8", timeout=30, dimensions=(40, 200))
    try:
        child.expect_exact("password: ")
        child.sendline(fresh_agent.password)
        child.expect_exact("<cmp-agent>")
        child.send("sys\t")                     # tab completes the keyword
        child.expect_exact("system-view ")
        child.send("\r")
        child.expect_exact("Enter system view, return user view with return command.")
        child.expect_exact("[cmp-agent]")
        child.send("pki ?")                     # ? answers at once, without Enter
        child.expect(r"cmp\s+Certificate Management Protocol version 2")
        child.expect(r"entity\s+PKI entity")
        child.expect(r"file-format\s+File format in which certificates are stored")
        child.expect_exact("[cmp-agent]pki ")   # the line is given back
        child.send("cmp sess\t")
        child.expect_exact("session ")
        child.send("s1\r")
        child.expect_exact("[cmp-agent-pki-cmp-session-s1]")
        child.send("cmp-request entty e1\r")
        child.expect(r"\n {42}\^\s*\r?\nError: Unrecognized command found at '\^' position\.")
        child.expect_exact("[cmp-agent-pki-cmp-session-s1]")
        child.send("cmp-request message-authentication-code 1234\r")
        child.expect_exact("Enter the secret value (empty: leave it unchanged): ")
        child.sendline("typed-secret")          # asked without echo, like the device
        child.expect_exact("[cmp-agent-pki-cmp-session-s1]")
        assert "typed-secret" not in child.before
        child.send("commit\r")
        child.expect_exact("[cmp-agent-pki-cmp-session-s1]")
        child.send("quit\r")
        child.expect_exact("[cmp-agent]")
        child.send("display pki cmp statistics session s1\r")
        child.expect(r"Messages sent\s+IR\s+0")
        child.expect_exact("[cmp-agent]")
        child.send("pki cmp session s1\r")       # committed: entering its view changes nothing
        child.expect_exact("[cmp-agent-pki-cmp-session-s1]")
        child.send("return\r")                 # so the device does not ask
        child.expect_exact("<cmp-agent>")
        child.send("system-view\r")
        child.expect_exact("[cmp-agent]")
        child.send("pki file-format der\r")
        child.expect_exact("[cmp-agent]")
        ask = "Are you sure to commit them before exiting? [Y(yes)/N(no)/C(cancel)]:"
        child.send("return\r")                 # uncommitted: the device asks
        child.expect_exact(ask)
        child.send("c\r")                      # cancel: stay in the system view
        child.expect_exact("[cmp-agent]")
        child.send("return\r")
        child.expect_exact(ask)
        child.send("y\r")                      # commit, then leave
        child.expect_exact("<cmp-agent>")
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    config = running_pki(fresh_agent)
    assert config.xpath("string(//p:cmp-session[p:name='s1']/p:message-authentication-code/"
                        "p:reference-value)", namespaces=NS) == "1234"
    assert config.findtext(".//p:file-format", namespaces=NS) == "der"
    secret = config.xpath("string(//p:cmp-session[p:name='s1']/p:message-authentication-code/"
                          "p:secret-value)", namespaces=NS)
    assert secret and secret != "typed-secret"  # configured, and shown only encrypted


def test_the_agents_host_key_is_checked_as_openssh_does(fresh_agent, tmp_path):
    """No password is sent to a host whose key no known_hosts lists (unknown: refused with
    how to trust it; --accept-new-host-key adds it) or lists otherwise (changed: refused,
    with or without that option); on loopback the local state directory's key is trusted."""
    import asyncssh

    def line_for(key_path: Path) -> str:
        public = asyncssh.read_private_key(key_path).export_public_key().decode().split()[:2]
        return f"[127.0.0.1]:{fresh_agent.port} {' '.join(public)}\n"

    def failed_logins() -> int:
        return (fresh_agent.state_dir / "agent.log").read_text().count("authentication failed")

    display = "display pki cmp statistics\n"
    elsewhere = tmp_path / "no-state"  # not the agent's: its key is not trusted from there
    known = tmp_path / "known_hosts"
    agent_key = asyncssh.read_private_key(fresh_agent.state_dir / "ssh_host_ed25519_key")
    # the local agent's key: trusted on loopback without a known_hosts entry
    assert cli(fresh_agent, "--known-hosts", str(known), stdin=display).returncode == 0
    assert not known.exists()

    # unknown, with a wrong password: refused before the password is sent
    unknown = cli(fresh_agent, "--known-hosts", str(known), stdin=display, password="wrong",
                  state_dir=elsewhere)
    assert unknown.returncode == 1
    assert f"the host key of [127.0.0.1]:{fresh_agent.port} is not known" in unknown.stderr
    assert agent_key.get_fingerprint() in unknown.stderr
    assert "--accept-new-host-key" in unknown.stderr
    assert f"ssh-keyscan -t ed25519 -p {fresh_agent.port} 127.0.0.1 >> {known}" in unknown.stderr
    assert failed_logins() == 0
    # an entry for the same address without a port is another server's (sshd on 22)
    other = tmp_path / "other_key"
    other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    known.write_text(line_for(other).replace(f"[127.0.0.1]:{fresh_agent.port}", "127.0.0.1"))
    again = cli(fresh_agent, "--known-hosts", str(known), stdin=display, state_dir=elsewhere)
    assert again.returncode == 1 and "is not known" in again.stderr

    # accept-new: trusted, added (after the last line, which had no newline), said so
    known.write_text(known.read_text().rstrip("\n"))
    accepted = cli(fresh_agent, "--known-hosts", str(known), "--accept-new-host-key",
                   stdin=display, state_dir=elsewhere)
    assert accepted.returncode == 0, accepted.stderr
    assert "Permanently added" in accepted.stderr and "CMP statistics" in accepted.stdout
    assert known.read_text().splitlines()[1] == line_for(fresh_agent.state_dir /
                                                         "ssh_host_ed25519_key").strip()
    listed = cli(fresh_agent, "--known-hosts", str(known), stdin=display, state_dir=elsewhere)
    assert listed.returncode == 0 and "Permanently added" not in listed.stderr

    # changed: refused loudly, accept-new or not, nothing sent
    known.write_text(line_for(other))
    for options in ((), ("--accept-new-host-key",)):
        changed = cli(fresh_agent, "--known-hosts", str(known), *options, stdin=display,
                      password="wrong", state_dir=elsewhere)
        assert changed.returncode == 1
        assert "WARNING: THE AGENT'S HOST KEY HAS CHANGED!" in changed.stderr
        assert f"ssh-keygen -R '[127.0.0.1]:{fresh_agent.port}' -f {known}" in changed.stderr
    assert known.read_text() == line_for(other)
    assert failed_logins() == 0


def test_the_seed_procedure_typed_at_the_prompt_enrols_a_certificate(fresh_agent, ca):
    """The whole procedure typed on a pty, as an operator at the device would."""
    seed = (GOLDEN / "seed-procedure.txt").read_text().replace("http://192.0.2.10:8080/pkix/",
                                                                 ca.url)
    lines = [line.strip() for line in seed.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    env = {**os.environ, "CMP_AGENT_PASSWORD": fresh_agent.password, "TERM": "dumb"}
    command = cli_command()
    child = pexpect.spawn(command[0], [*command[1:], "--port", str(fresh_agent.port),
                                       "--state-dir", str(fresh_agent.state_dir)], env=env,
                          cwd=str(ROOT), encoding="utf-8", timeout=60, dimensions=(40, 200))
    prompt = r"(<cmp-agent>|\[cmp-agent[^\]]*\])"
    transcript = []
    try:
        child.expect(prompt)
        for line in lines:
            child.send(line + "\r")
            child.expect(prompt)
            transcript.append(child.before)
        child.send("return\r")
        child.expect_exact("<cmp-agent>")
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    text = "".join(transcript)
    assert "Error:" not in text, text
    assert "will be sent after the next commit" in text
    assert "The CMP initial request (IR) of session s1 succeeded." in text
    assert re.search(r"Messages sent\s+IR\s+1", text)
    assert (fresh_agent.state_dir / "pki" / "public" / "s1-local.pem").exists()


def test_a_replay_whose_output_is_closed_stops_as_at_a_failure(fresh_agent, tmp_path):
    """``cmp-agent cli FILE | head`` where head quits after the first line: no traceback,
    status 141, and the run's edits are discarded and the candidate unlocked, as at any
    failed command."""
    import fcntl
    import termios
    import time

    first = b"Enter system view, return user view with return command.\n"
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # one page
    # the pipe is full once the first line is in: the next one waits for the reader
    os.write(write_end, b"#" * (4096 - len(first)))
    commands = tmp_path / "edits.txt"
    commands.write_text("system-view\npki cmp session s1\n cmp-request ca-name /C=CN/CN=Example CA\n"
                        " quit\npki cmp initial-request session s1\ncommit\n")
    env = {**os.environ, "CMP_AGENT_PASSWORD": fresh_agent.password}
    replay = subprocess.Popen([*cli_command(), "--port", str(fresh_agent.port), "--state-dir",
                               str(fresh_agent.state_dir), str(commands)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    os.close(write_end)
    try:
        def buffered() -> int:
            return int.from_bytes(fcntl.ioctl(read_end, termios.FIONREAD, b"\0" * 4), "little")

        deadline = time.monotonic() + 120
        while buffered() < 4096 and replay.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # until the first line is written (no timing asserted)
    finally:
        os.close(read_end)  # head quits: the request's line, after the edits, finds no reader
    stderr = replay.communicate(timeout=120)[1]
    assert replay.returncode == 141, stderr
    assert stderr == "Info: The uncommitted configuration of this run was discarded.\n"
    assert not running_pki(fresh_agent, "candidate").xpath("//p:cmp-session", namespaces=NS)
    # not locked: the next replay edits and commits
    after = cli(fresh_agent, stdin="system-view\npki file-format der\ncommit\n")
    assert after.returncode == 0, after.stderr
