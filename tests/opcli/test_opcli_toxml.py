"""``cmp-agent cli --to-xml``: the NETCONF a command file becomes (golden output)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from agent.opcli.toxml import ToXmlError, to_xml
from opcli_helpers import ROOT, cli_command

GOLDEN = Path(__file__).resolve().parent / "golden"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
PKI = "urn:cmp-agent:yang:cmp-agent-pki"


def rpcs(text: str) -> list[etree._Element]:
    """The <rpc> elements of --to-xml output (comments between them)."""
    root = etree.fromstring(f"<all>{text}</all>")
    return [el for el in root if isinstance(el.tag, str)]


def test_the_seed_procedure_becomes_one_edit_a_commit_the_request_and_a_get_in_a_lock():
    source = (GOLDEN / "seed-procedure.txt").read_text().splitlines(keepends=True)
    text = to_xml(source, "seed-procedure.txt")
    assert text == (GOLDEN / "seed-procedure.xml").read_text()
    ops = [etree.QName(rpc[0]).localname for rpc in rpcs(text)]
    # locked before the first edit and unlocked at the end, as the replay of the file does
    assert ops == ["lock", "edit-config", "commit", "cmp-initial-request", "get", "unlock"]
    assert [rpc.get("message-id") for rpc in rpcs(text)] == ["1", "2", "3", "4", "5", "6"]
    # the secret is in the XML (it has to be configured) but not in the comments
    assert text.count("cmp-secret") == 1
    assert "<secret-value>cmp-secret</secret-value>" in text


def test_the_command_line_prints_the_same_without_connecting():
    # port 9 (discard) is never contacted: --to-xml does not connect
    done = subprocess.run([*cli_command(), "--port", "9", "--to-xml",
                           str(GOLDEN / "seed-procedure.txt")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (GOLDEN / "seed-procedure.xml").read_text()
    piped = subprocess.run([*cli_command(), "--to-xml"], input="system-view\ncommit\n",
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert piped.returncode == 0 and "<commit/>" in piped.stdout


def test_edits_that_cannot_be_merged_stay_separate_in_order():
    text = to_xml(["system-view", "pki cmp session s1", "cmp-request server url http://a/",
                   "cmp-request server url http://b/", "undo cmp-request entity",
                   "cmp-request entity e2", "source interface Eth0", "source 192.0.2.1", "commit"])
    edits = [rpc[0] for rpc in rpcs(text) if etree.QName(rpc[0]).localname == "edit-config"]
    sessions = [e.find(f".//{{{PKI}}}cmp-session") for e in edits]
    assert [s.findtext(f"{{{PKI}}}server-url/{{{PKI}}}url") for s in sessions] == \
        ["http://a/", "http://b/", None]
    assert sessions[1].find(f"{{{PKI}}}entity").get(f"{{{NC}}}operation") == "remove"
    assert sessions[2].findtext(f"{{{PKI}}}entity") == "e2"
    # the later case of the source choice wins, as it would on the server
    assert sessions[2].findtext(f"{{{PKI}}}source-address") == "192.0.2.1"
    assert sessions[2].find(f"{{{PKI}}}source-interface") is None


def test_a_bad_line_or_a_request_without_commit_is_an_error():
    with pytest.raises(ToXmlError) as err:
        to_xml(["system-view", "pki file-fromat der"], "f.txt")
    assert str(err.value).splitlines() == [
        "f.txt, line 2:", "[cmp-agent]pki file-fromat der", "               ^",
        "Error: Unrecognized command found at '^' position."]
    with pytest.raises(ToXmlError, match="never sent: CMP initial request"):
        to_xml(["system-view", "pki cmp session s1", "cmp-request entity e1", "quit",
                "pki cmp initial-request session s1"])
    done = subprocess.run([*cli_command(), "--to-xml"], input="system-view\nbogus\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1 and "Unrecognized command" in done.stderr and not done.stdout


def closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone (``| head`` that has quit)."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


def test_a_closed_output_ends_the_command_quietly_with_status_141():
    import os

    for stderr_too in (False, True):  # | head, and 2>&1 | head
        out = closed_pipe()
        try:
            done = subprocess.run([*cli_command(), "--to-xml", str(GOLDEN / "seed-procedure.txt")],
                                  stdout=out, stderr=out if stderr_too else subprocess.PIPE,
                                  cwd=ROOT, timeout=120)
        finally:
            os.close(out)
        assert done.returncode == 141, done.stderr
        assert not done.stderr  # no traceback, no "[Errno 32] Broken pipe" (None: 2>&1)
