"""A client that sends its requests and then EOF in one go (RFC 6241, RFC 6242).

``ssh -s netconf < requests.xml`` sends the hello, the RPCs and EOF at once.
Every RPC complete before the EOF is answered, in order, even a large one
(parsed in a worker thread) and ones behind a commit; an incomplete trailing
message is dropped without a reply; then the agent ends the session (its lock
released) and closes the channel with EOF and exit-status 0, so ``ssh`` exits 0.
The same with an asyncssh client that half-closes (``write_eof``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess

import pytest
from lxml import etree

from nc_helpers import NC_NS, PKI_NS, RawClient, error_tags

EOM = b"]]>]]>"
BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
#: an edit of this many list entries is a message above 64 KiB (parsed off the event loop)
BIG_EDIT_ENTRIES = 2000


def _hello(*capabilities: str) -> bytes:
    caps = "".join(f"<capability>{c}</capability>" for c in capabilities)
    return f'<hello xmlns="{NC_NS}"><capabilities>{caps}</capabilities></hello>'.encode() + EOM


def _rpc(message_id: int, body: str) -> bytes:
    return f'<rpc message-id="{message_id}" xmlns="{NC_NS}">{body}</rpc>'.encode()


def _frame(data: bytes, chunked: bool) -> bytes:
    return b"\n#%d\n%s\n##\n" % (len(data), data) if chunked else data + EOM


def _edit(*names: str) -> str:
    return (f"<edit-config><target><candidate/></target><config><pki xmlns='{PKI_NS}'>"
            + "".join(f"<cmp-session><name>{n}</name></cmp-session>" for n in names)
            + "</pki></config></edit-config>")


def _requests(tag: str) -> list[tuple[bytes, str]]:
    """(rpc, what its reply holds): lock, get-config, edit, commit, a >64 KiB edit,
    get-config of candidate; no unlock, no close-session."""
    big = _rpc(5, _edit(*(f"{tag}-big-{i}" for i in range(BIG_EDIT_ENTRIES))))
    assert len(big) > 64 * 1024
    return [(_rpc(1, "<lock><target><candidate/></target></lock>"), "ok"),
            (_rpc(2, "<get-config><source><running/></source></get-config>"), "data"),
            (_rpc(3, _edit(f"{tag}-committed")), "ok"),
            (_rpc(4, "<commit/>"), "ok"),
            (big, "ok"),
            (_rpc(6, "<get-config><source><candidate/></source></get-config>"), "data")]


def _replies(stdout: bytes, chunked: bool) -> list[etree._Element]:
    """The rpc-replies after the server's hello (end-of-message framed)."""
    hello, _, rest = stdout.partition(EOM)
    assert b"<session-id>" in hello
    if not chunked:
        return [etree.fromstring(m) for m in rest.split(EOM)[:-1]]
    messages, message, pos = [], b"", 0
    while pos < len(rest):
        header = re.compile(rb"\n#(#|[0-9]+)\n").match(rest, pos)
        assert header is not None, rest[pos:pos + 100]
        pos = header.end()
        if header.group(1) == b"#":
            messages.append(etree.fromstring(message))
            message = b""
        else:
            message += rest[pos:pos + int(header.group(1))]
            pos += int(header.group(1))
    return messages


def _check_replies(replies: list[etree._Element], requests: list[tuple[bytes, str]]) -> None:
    assert [r.get("message-id") for r in replies] == [
        str(i) for i in range(1, len(requests) + 1)]
    for reply, (_, holds) in zip(replies, requests):
        assert reply.find(f"{{{NC_NS}}}{holds}") is not None, etree.tostring(reply)[:500]


def _names(reply: etree._Element) -> list[str]:
    return reply.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI_NS})


async def _lock_candidate_and_names(agent) -> tuple[etree._Element, list[str]]:
    """A new session's answer to a lock of candidate, and the names in running."""
    client = await RawClient.open(agent)
    try:
        lock = await client.rpc("<lock><target><candidate/></target></lock>", "1")
        names = _names(await client.rpc(
            "<get-config><source><running/></source></get-config>", "2"))
        await client.rpc("<unlock><target><candidate/></target></unlock>", "3")
        return lock, names
    finally:
        await client.close()


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client (apt-get install "
                    "openssh-client)")
@pytest.mark.parametrize("chunked", [False, True], ids=["base10", "base11"])
@pytest.mark.parametrize("trailing", [False, True], ids=["complete", "incomplete-tail"])
def test_openssh_with_requests_from_a_file_gets_every_reply_and_exits_0(
        agent, client_key, tmp_path, chunked, trailing):
    tag = f"{'b11' if chunked else 'b10'}-{'t' if trailing else 'c'}"
    requests = _requests(tag)
    stream = _hello(BASE_10, BASE_11) if chunked else _hello(BASE_10)
    stream += b"".join(_frame(rpc, chunked) for rpc, _ in requests)
    if trailing:  # a message cut short: no reply, and not an error either
        stream += _frame(_rpc(99, "<commit/>"), chunked)[:-3]
    path = tmp_path / "requests.xml"
    path.write_bytes(stream)
    with path.open("rb") as stdin:
        done = subprocess.run(
            ["ssh", "-vv", "-F", "/dev/null", "-p", str(agent.port), "-i", str(client_key),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-s", "admin@127.0.0.1", "netconf"],
            stdin=stdin, capture_output=True, timeout=120)
    log = done.stderr.decode(errors="replace")
    assert done.returncode == 0, log
    assert "channel 0: rcvd eof" in log and "rtype exit-status" in log, log
    replies = _replies(done.stdout, chunked)
    _check_replies(replies, requests)
    candidate = _names(replies[-1])
    assert f"{tag}-committed" in candidate and f"{tag}-big-1999" in candidate
    # the session ended: its lock is gone, and so are its uncommitted changes
    # (RFC 6241 section 8.3.5.2: the lock holder's)
    lock, running = asyncio.run(_lock_candidate_and_names(agent))
    assert lock.find(f"{{{NC_NS}}}ok") is not None, etree.tostring(lock)
    assert f"{tag}-committed" in running and f"{tag}-big-1" not in running


@pytest.mark.parametrize("chunked", [False, True], ids=["base10", "base11"])
def test_asyncssh_client_that_half_closes_gets_every_reply(agent, chunked):
    async def scenario() -> tuple[list[etree._Element], int | None]:
        client = await RawClient.open(agent, (BASE_10, BASE_11) if chunked else (BASE_10,))
        try:
            for rpc, _ in requests:
                client.send(rpc)
            client.send_raw(_frame(_rpc(9, "<get/>"), chunked)[:-3])  # incomplete: dropped
            client.writer.write_eof()
            replies = [await client.receive() for _ in requests]
            assert await client.closed()
            await asyncio.wait_for(client.writer.channel.wait_closed(), 30)
            return replies, client.writer.channel.get_exit_status()
        finally:
            await client.close()

    requests = [(_rpc(1, "<get-config><source><running/></source></get-config>"), "data"),
                (_rpc(2, _edit("half-closed")), "ok"),
                (_rpc(3, "<discard-changes/>"), "ok"),
                (_rpc(4, "<get/>"), "data")]
    # more than MAX_PENDING_EVENTS: the agent pauses reading, and sees the EOF later
    requests += [(_rpc(i, "<get-config><source><running/></source></get-config>"), "data")
                 for i in range(5, 150)]
    replies, status = asyncio.run(scenario())
    _check_replies(replies, requests)
    assert status == 0


def test_client_that_disconnects_with_rpcs_pending_is_torn_down(agent):
    """Connection lost, not half-closed: the session ends at once, its lock is
    released (nothing is written to the closed connection)."""
    async def scenario() -> etree._Element:
        client = await RawClient.open(agent)
        await client.rpc("<lock><target><candidate/></target></lock>", "1")
        for message_id in range(2, 40):
            client.send(_rpc(message_id, "<get/>"))
        client.conn.abort()
        for _ in range(300):  # until the agent noticed
            lock, _ = await _lock_candidate_and_names(agent)
            if lock.find(f"{{{NC_NS}}}ok") is not None:
                return lock
            assert error_tags(lock) == ["lock-denied"]
            await asyncio.sleep(0.1)
        return lock

    assert asyncio.run(scenario()).find(f"{{{NC_NS}}}ok") is not None
    assert "Traceback" not in agent.log_text()


def test_asyncssh_exit_status_is_0_after_close_session(agent):
    async def scenario() -> int | None:
        client = await RawClient.open(agent)
        try:
            await client.rpc("<close-session/>", "1")
            await asyncio.wait_for(client.writer.channel.wait_closed(), 30)
            return client.writer.channel.get_exit_status()
        finally:
            await client.close()

    assert asyncio.run(scenario()) == 0

