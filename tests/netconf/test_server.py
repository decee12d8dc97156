"""NetconfServer over an in-memory transport, with the real model and datastores.

Covers what is awkward to reach through SSH: notifications to subscribers,
the confirmed-commit rollback when the issuing session ends, and the
refusal to lock a candidate that another session changed (RFC 6241 7.5, 8.4).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading

import pytest
from lxml import etree

from agent.datastore import Datastores, SecretBox, steps
from agent.datastore import store as store_module
from agent.netconf.framing import Framing, frame
from agent.netconf.server import NetconfServer, _ChannelTransport
from agent.netconf.session import parse_client_message
from memory_server import NC, MemoryTransport
from memory_server import MemoryClient as Client

PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"


def tag(reply: etree._Element) -> str | None:
    return reply.findtext(f".//{{{NC}}}error-tag")


def edit(name: str) -> str:
    return (f"<edit-config><target><candidate/></target><config><pki xmlns='{PKI}'>"
            f"<cmp-session><name>{name}</name></cmp-session></pki></config></edit-config>")


async def running_names(client: Client) -> list[str]:
    reply = await client.rpc("<get-config><source><running/></source></get-config>")
    return reply.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI})


def test_notification_reaches_subscribers_only(server):
    async def scenario():
        sub, other = Client(server), Client(server)
        reply = await sub.rpc(f'<create-subscription xmlns="{NOTIF}"/>')
        assert reply.find(f"{{{NC}}}ok") is not None
        assert tag(await sub.rpc(f'<create-subscription xmlns="{NOTIF}"/>')) == "in-use"
        before = len(other.transport.sent)
        event = etree.Element("{urn:example}certificate-renewed")
        server.notify(event)
        note = etree.fromstring(sub.transport.sent[-1][:-6])
        assert note.tag == f"{{{NOTIF}}}notification"
        assert note.findtext(f"{{{NOTIF}}}eventTime").endswith("Z")
        assert note.find("{urn:example}certificate-renewed") is not None
        assert len(other.transport.sent) == before

    asyncio.run(scenario())


def test_unconfirmed_commit_rolls_back_when_its_session_ends(server):
    async def scenario():
        a, b = Client(server), Client(server)
        await a.rpc(edit("fragile"))
        assert (await a.rpc("<commit><confirmed/></commit>")).find(f"{{{NC}}}ok") is not None
        assert "fragile" in await running_names(b)
        # only the issuing session may confirm a non-persistent confirmed commit
        assert tag(await b.rpc("<commit/>")) == "in-use"
        a.close()
        await server.rollback_ended()
        assert "fragile" not in await running_names(b)

    asyncio.run(scenario())


def test_lock_refused_on_candidate_changed_by_another_session(server):
    async def scenario():
        a, b = Client(server), Client(server)
        await a.rpc(edit("pending"))
        reply = await b.rpc("<lock><target><candidate/></target></lock>")
        assert tag(reply) == "lock-denied"
        assert reply.findtext(f".//{{{NC}}}session-id") == str(a.record.session_id)
        # the session that made the changes may lock
        reply = await a.rpc("<lock><target><candidate/></target></lock>")
        assert reply.find(f"{{{NC}}}ok") is not None
        # the holder goes away: lock released, its uncommitted changes discarded
        a.close()
        assert (await b.rpc("<lock><target><candidate/></target></lock>")).find(
            f"{{{NC}}}ok") is not None

    asyncio.run(scenario())


def test_state_provider_merges_into_list_entries(server):
    async def scenario():
        a = Client(server)
        await a.rpc(edit("s1"))
        await a.rpc("<commit/>")

        def provider():
            pki = etree.Element(f"{{{PKI}}}pki", nsmap={None: PKI})
            entry = etree.SubElement(pki, f"{{{PKI}}}cmp-session")
            etree.SubElement(entry, f"{{{PKI}}}name").text = "s1"
            stats = etree.SubElement(entry, f"{{{PKI}}}statistics")
            etree.SubElement(stats, f"{{{PKI}}}marker").text = "1"
            return [pki]

        server.add_state_provider(provider)
        reply = await a.rpc("<get/>")
        entries = reply.xpath("//p:cmp-session", namespaces={"p": PKI})
        assert len(entries) == 1
        assert entries[0].find(f"{{{PKI}}}statistics/{{{PKI}}}marker") is not None

    asyncio.run(scenario())


def test_handler_bug_is_operation_failed_and_session_survives(server):
    async def broken(ctx, op):
        raise ZeroDivisionError

    server.register_rpc("urn:example", "broken", broken)

    async def scenario():
        a = Client(server)
        reply = await a.rpc('<broken xmlns="urn:example"/>')
        assert tag(reply) == "operation-failed"
        assert "internal error" in reply.findtext(f".//{{{NC}}}error-message")
        assert (await a.rpc("<get-config><source><running/></source></get-config>")).find(
            f"{{{NC}}}data") is not None

    asyncio.run(scenario())


def test_session_without_hello_is_closed(model, tmp_path):
    server = NetconfServer(model, Datastores(model, tmp_path, SecretBox.open(tmp_path)),
                           hello_timeout=0.01)

    async def scenario():
        transport = MemoryTransport()
        server.open_session("admin", "127.0.0.1", transport)
        while not transport.closed:
            await asyncio.sleep(0.01)
        assert server.sessions == {}
        assert server.statistics.in_bad_hellos == 1

    asyncio.run(scenario())


def test_unlock_of_candidate_discards_uncommitted_changes(server):
    async def scenario():
        a = Client(server)
        await a.rpc("<lock><target><candidate/></target></lock>")
        await a.rpc(edit("uncommitted"))
        await a.rpc("<unlock><target><candidate/></target></unlock>")
        reply = await a.rpc("<get-config><source><candidate/></source></get-config>")
        assert reply.xpath("//p:cmp-session", namespaces={"p": PKI}) == []

    asyncio.run(scenario())


def test_notification_subtree_filter(server):
    async def scenario():
        sub = Client(server)
        await sub.rpc(f'<create-subscription xmlns="{NOTIF}"><filter type="subtree">'
                      '<wanted xmlns="urn:example"/></filter></create-subscription>')
        before = len(sub.transport.sent)
        server.notify(etree.Element("{urn:example}unwanted"))
        assert len(sub.transport.sent) == before
        server.notify(etree.Element("{urn:example}wanted"))
        assert len(sub.transport.sent) == before + 1

    asyncio.run(scenario())


def test_a_rollback_the_disk_refuses_is_retried(server, monkeypatch):
    import agent.netconf.server as server_module

    monkeypatch.setattr(server_module, "CONFIRM_RETRY_SECONDS", 0.2)
    real_write = server.datastores._write
    failures = []

    def full_disk_once(path, data):
        if not failures:
            failures.append(path)
            raise OSError(28, "No space left on device")
        real_write(path, data)

    async def scenario():
        a = Client(server)
        await a.rpc(edit("fragile"))
        reply = await a.rpc("<commit><confirmed/><confirm-timeout>1</confirm-timeout></commit>")
        assert reply.find(f"{{{NC}}}ok") is not None
        monkeypatch.setattr(server.datastores, "_write", full_disk_once)
        for _ in range(60):
            await asyncio.sleep(0.1)
            if server.confirm is None:
                break
        assert failures, "the rollback was never attempted"
        assert server.confirm is None, "the failed rollback was not retried"
        assert "fragile" not in await running_names(a)

    asyncio.run(scenario())


def test_unfinished_input_of_all_sessions_together_is_bounded(model, tmp_path):
    """Issue 9: many sessions each holding a large unfinished message cannot
    grow the agent without bound; the session holding the most is closed with
    resource-denied, the others go on."""
    server = NetconfServer(model, Datastores(model, tmp_path, SecretBox.open(tmp_path)),
                           max_message_size=10_000, max_buffered_input=20_000)

    async def scenario():
        clients = [Client(server) for _ in range(4)]
        for i, client in enumerate(clients[:3]):
            partial = f'<rpc xmlns="{NC}" message-id="x"><get-config>' + " " * (8_000 + i)
            server.data_received(client.record, partial.encode())
        assert server.buffered <= 20_000
        hog = clients[2]
        assert hog.transport.closed
        error = etree.fromstring(hog.transport.sent[-1][:-6])
        assert error.findtext(f".//{{{NC}}}error-tag") == "resource-denied"
        assert not any(c.transport.closed for c in (clients[0], clients[1], clients[3]))
        reply = await clients[3].rpc("<get-config><source><running/></source></get-config>")
        assert reply.find(f"{{{NC}}}data") is not None
        for client in clients[:2]:
            client.close()
        assert server.buffered == 0

    asyncio.run(scenario())


def test_notification_filter_size_is_bounded(server):
    from agent.netconf.filters import MAX_FILTER_NODES

    async def scenario():
        client = Client(server)
        reply = await client.rpc(
            "<create-subscription xmlns='urn:ietf:params:xml:ns:netconf:notification:1.0'>"
            "<filter type='subtree'><pki xmlns='urn:cmp-agent:yang:cmp-agent-pki'>"
            + "<x/>" * MAX_FILTER_NODES + "</pki></filter></create-subscription>")
        assert tag(reply) == "too-big"
        assert client.record.subscription is None

    asyncio.run(scenario())


def test_text_among_an_operations_parameters_is_refused(server):
    """RFC 6241 section 4.1: parameters are elements; text before the first or after
    any of them is bad-element, white space is not text."""
    async def scenario():
        client = Client(server)
        for text, op in (("stray", "<get-config>stray<source><running/></source></get-config>"),
                         ("tail", "<get-config><source><running/></source>tail</get-config>"),
                         ("x", "<get-config>\n <source><running/></source> x </get-config>")):
            reply = await client.rpc(op)
            assert tag(reply) == "bad-element"
            assert reply.findtext(f".//{{{NC}}}error-message") == (
                f"<get-config> takes its parameters as elements; remove the text {text!r}")
        reply = await client.rpc("<get-config>\n  <source><running/></source>\n</get-config>")
        assert tag(reply) is None and reply.find(f"{{{NC}}}data") is not None
        client.close()

    asyncio.run(scenario())


def test_get_config_filter_size_is_bounded(server):
    from agent.netconf.filters import MAX_FILTER_NODES

    async def scenario():
        client = Client(server)
        reply = await client.rpc(
            "<get-config><source><running/></source><filter type='subtree'>"
            "<pki xmlns='urn:cmp-agent:yang:cmp-agent-pki'>" + "<x/>" * MAX_FILTER_NODES
            + "</pki></filter></get-config>")
        error = reply.find(f"{{{NC}}}rpc-error")
        assert tag(reply) == "too-big"
        assert error.findtext(f"{{{NC}}}error-message") == (
            f"the subtree filter has {MAX_FILTER_NODES + 1} elements;"
            f" at most {MAX_FILTER_NODES} are accepted")
        client.close()

    asyncio.run(scenario())


def test_reads_are_logged_at_debug_changes_and_errors_at_info(server, caplog):
    """A poller's successful reads do not flood agent.log (INFO); every change,
    every error, and the session's start and end are logged at INFO."""
    async def scenario():
        client = Client(server)
        await client.rpc("<get-config><source><running/></source></get-config>")
        await client.rpc("<get/>")
        await client.rpc(edit("logged"))
        assert tag(await client.rpc("<get-config><source><nowhere/></source></get-config>"))
        client.close()

    with caplog.at_level(logging.DEBUG, logger="agent.netconf"):
        asyncio.run(scenario())
    rpcs = [(r.levelno, r.getMessage().split(": ")[0].split(" rpc ")[1], r.getMessage())
            for r in caplog.records if " rpc " in r.getMessage()]
    assert [(level, op) for level, op, _ in rpcs] == [
        (logging.DEBUG, "get-config message-id '1'"), (logging.DEBUG, "get message-id '2'"),
        (logging.INFO, "edit-config message-id '3'"), (logging.INFO, "get-config message-id '4'")]
    assert ": error bad-element in " in rpcs[-1][2]
    sessions = [r for r in caplog.records if r.getMessage().startswith("session ")
                and (" opened: " in r.getMessage() or " closed: " in r.getMessage())]
    assert [r.levelno for r in sessions] == [logging.INFO, logging.INFO]


class _RecordingChannel:
    """The part of an asyncssh channel that _ChannelTransport uses, over a real TCP socket."""

    def __init__(self, sock: socket.socket, fail: bool = False):
        self.sock, self.fail, self.corked_during_write = sock, fail, []

    def get_extra_info(self, name: str):
        return self.sock if name == "socket" else None

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.corked_during_write.append(self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))
        if self.fail:
            raise BrokenPipeError
        self.sock.sendall(data)


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")
def test_ssh_transport_corks_each_message_and_always_uncorks():
    """asyncssh sends an SSH_MSG_IGNORE packet before each data packet: the message's
    packets are written corked (one TCP segment, one wake-up of the client), and
    the socket is uncorked afterwards, also when the write fails (else replies
    would wait for the kernel's 200 ms cork timeout)."""
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as sock:
        peer, _ = listener.accept()
        with peer:
            channel = _RecordingChannel(sock)
            _ChannelTransport(channel).send(b"reply")
            assert peer.recv(16) == b"reply"
            failing = _RecordingChannel(sock, fail=True)
            with pytest.raises(BrokenPipeError):
                _ChannelTransport(failing).send(b"lost")
            assert channel.corked_during_write == failing.corked_during_write == [1]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")
def test_ssh_transport_without_ignore_packets_corks_only_messages_of_several_packets():
    """On sshlean's connections a message of one SSH packet is one send(): no cork
    (two system calls saved); a longer one is still written corked."""
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as sock:
        peer, _ = listener.accept()
        with peer:
            channel = _RecordingChannel(sock)
            transport = _ChannelTransport(channel, ignore_packets=False)
            transport.send(b"reply")
            assert peer.recv(16) == b"reply"
            transport.send(b"x" * 40000)
            assert channel.corked_during_write == [0, 1]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0


def big_edit(count: int) -> str:
    return (f"<edit-config><target><candidate/></target><config><pki xmlns='{PKI}'>"
            + "".join(f"<cmp-session><name>s{i}</name></cmp-session>" for i in range(count))
            + "</pki></config></edit-config>")


@pytest.fixture
def sliced(monkeypatch):
    """Computations in steps give the loop back after every step."""
    monkeypatch.setattr(steps, "SLICE_SECONDS", 0.0)


async def start_big_edit(client: Client) -> "asyncio.Future[etree._Element]":
    """An edit-config of 300 entries, sent and begun; its reply to come."""
    editing = asyncio.ensure_future(client.rpc(big_edit(300)))
    await asyncio.sleep(0)
    return editing


async def edit_overlapped(server: NetconfServer) -> tuple:
    """Sessions a and b, a's large edit begun."""
    a, b = Client(server), Client(server)
    return a, b, await start_big_edit(a)


def test_get_config_is_answered_while_a_large_edit_is_applied(server, sliced):
    """Issue 9: an edit-config runs in slices on the event loop (here one list
    entry per slice), so another session's get-config is answered before it."""
    async def scenario():
        a, b, editing = await edit_overlapped(server)
        reply = await b.rpc("<get-config><source><candidate/></source></get-config>")
        assert reply.find(f"{{{NC}}}data") is not None
        assert not editing.done()
        assert (await editing).find(f"{{{NC}}}ok") is not None
        assert len(await candidate_names(b)) == 300

    asyncio.run(scenario())


def test_a_lock_taken_while_an_edit_is_applied_refuses_the_edit(server, sliced):
    """RFC 6241 7.5: the lock is checked again before the edited tree replaces
    candidate; the refused edit changes nothing."""
    async def scenario():
        a, b, editing = await edit_overlapped(server)
        reply = await b.rpc("<lock><target><candidate/></target></lock>")
        assert reply.find(f"{{{NC}}}ok") is not None
        assert tag(await editing) == "in-use"
        assert not server.datastores.candidate_dirty
        assert await candidate_names(b) == []

    asyncio.run(scenario())


COPY_CONFIG = (f"<copy-config><target><candidate/></target><source><config>"
               f"<pki xmlns='{PKI}'><cmp-session><name>copied</name></cmp-session>"
               "</pki></config></source></copy-config>")


def count_edit_passes(monkeypatch) -> list[int]:
    """[passes of the edit engine so far] (one per attempt of an edit; not its
    checks of a copy-config's inline <config>)."""
    passes = [0]
    engine = store_module.apply_edit_steps

    def counting(smap, target, config, **kwargs):
        if etree.QName(config.getparent()).localname == "edit-config":
            passes[0] += 1
        return engine(smap, target, config, **kwargs)

    monkeypatch.setattr(store_module, "apply_edit_steps", counting)
    return passes


def test_candidate_replaced_while_an_edit_is_applied_keeps_both(server, sliced, monkeypatch):
    """An edit that overlaps a change of candidate by another session (here a
    copy-config) is applied again to the new candidate, in slices too (other
    sessions are answered meanwhile): neither change is lost."""
    passes = count_edit_passes(monkeypatch)

    async def scenario():
        a, b, editing = await edit_overlapped(server)
        assert (await b.rpc(COPY_CONFIG)).find(f"{{{NC}}}ok") is not None
        while passes[0] < 2:  # the edit is being done again
            await asyncio.sleep(0)
        assert (await b.rpc("<get-config><source><running/></source></get-config>")).find(
            f"{{{NC}}}data") is not None
        assert not editing.done()
        assert (await editing).find(f"{{{NC}}}ok") is not None
        names = await candidate_names(b)
        assert len(names) == 301 and "copied" in names
        assert passes[0] == 2

    asyncio.run(scenario())


def test_an_edit_whose_target_is_replaced_again_and_again_fails_and_changes_nothing(
        server, sliced, monkeypatch):
    """Bounded: after EDIT_ATTEMPTS passes, each overtaken by another session's
    copy-config, the edit gives up with operation-failed; candidate is what the
    last copy-config made it."""
    passes = count_edit_passes(monkeypatch)

    async def scenario():
        a, b, editing = await edit_overlapped(server)
        while not editing.done():
            assert (await b.rpc(COPY_CONFIG)).find(f"{{{NC}}}ok") is not None
        reply = editing.result()
        assert tag(reply) == "operation-failed"
        assert "send the edit again" in reply.findtext(f".//{{{NC}}}error-message")
        assert passes[0] == store_module.EDIT_ATTEMPTS
        assert await candidate_names(b) == ["copied"]

    asyncio.run(scenario())


def test_readers_see_candidate_before_or_after_an_edit_never_between(server, sliced):
    """Other sessions read candidate while a large edit is applied in slices
    (it updates, deletes and creates entries): each read shows candidate as it
    was before the edit or, once it is answered, after it; an edit that fails
    at its last entry is never seen at all."""
    def state(reply: etree._Element) -> dict[str, str]:
        return {e.findtext(f"{{{PKI}}}name"): e.findtext(f"{{{PKI}}}ca-name")
                for e in reply.iter(f"{{{PKI}}}cmp-session")}

    def sessions(body: str) -> str:
        return (f"<edit-config><target><candidate/></target><config><pki xmlns='{PKI}' "
                f"xmlns:nc='{NC}'>{body}</pki></config></edit-config>")

    def session(name: str, inner: str = "", op: str = "") -> str:
        attr = f" nc:operation='{op}'" if op else ""
        return f"<cmp-session{attr}><name>{name}</name>{inner}</cmp-session>"

    changes = ("".join(session(f"s{i}", "<ca-name>/CN=new</ca-name>") for i in range(30))
               + session("s59", op="delete")
               + "".join(session(f"n{i}", op="create") for i in range(10)))
    failing = changes + session("late", "<auto-update><expire-time>5</expire-time>"
                                        "</auto-update>")
    get = "<get-config><source><candidate/></source></get-config>"

    async def reads_during(a: Client, b: Client, body: str) -> tuple[etree._Element, list]:
        editing = asyncio.ensure_future(a.rpc(sessions(body)))
        await asyncio.sleep(0)
        seen = []
        while not editing.done():
            seen.append(state(await b.rpc(get)))
        return editing.result(), seen

    async def scenario():
        a, b = Client(server), Client(server)
        setup = await a.rpc(sessions("".join(session(f"s{i}", "<ca-name>/CN=old</ca-name>")
                                             for i in range(60))))
        assert setup.find(f"{{{NC}}}ok") is not None
        before = state(await b.rpc(get))
        reply, seen = await reads_during(a, b, failing)
        assert tag(reply) == "invalid-value"
        assert len(seen) > 3 and all(s == before for s in seen)
        assert state(await b.rpc(get)) == before
        reply, seen = await reads_during(a, b, changes)
        assert reply.find(f"{{{NC}}}ok") is not None
        after = state(await b.rpc(get))
        assert after != before and len(after) == 69 and after["s0"] == "/CN=new"
        assert len(seen) > 3 and all(s in (before, after) for s in seen)
        assert seen[0] == before

    asyncio.run(scenario())


async def candidate_names(client: Client) -> list[str]:
    reply = await client.rpc("<get-config><source><candidate/></source></get-config>")
    return reply.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI})


def test_an_edit_of_a_session_that_ends_meanwhile_changes_nothing(server, sliced):
    """The session holding the candidate lock ends while its edit is applied:
    its lock and changes go (RFC 6241 8.3.5.2), the edit does not land after."""
    async def scenario():
        a, b = Client(server), Client(server)
        assert (await a.rpc("<lock><target><candidate/></target></lock>")).find(
            f"{{{NC}}}ok") is not None
        editing = await start_big_edit(a)
        await b.rpc("<get-config><source><running/></source></get-config>")
        a.close()
        # edits run one at a time: once this test-only edit is answered, a's is over
        reply = await b.rpc("<edit-config><target><candidate/></target><test-option>test-only"
                            f"</test-option><config><pki xmlns='{PKI}'/></config></edit-config>")
        assert reply.find(f"{{{NC}}}ok") is not None
        assert not editing.done()  # its reply has nowhere to go
        editing.cancel()
        assert not server.datastores.candidate_dirty
        assert await candidate_names(b) == []

    asyncio.run(scenario())


def big_filter_get_config(message_id: str, name_size: int = 1000) -> bytes:
    """A valid <get-config> of a few MB: its subtree filter asks for 4,000 sessions
    by long names (within the filter's node limit)."""
    names = "".join(f"<cmp-session><name>{i:0{name_size}}</name></cmp-session>"
                    for i in range(4_000))
    return frame(f'<rpc xmlns="{NC}" message-id="{message_id}"><get-config><source><running/>'
                 f"</source><filter type='subtree'><pki xmlns='{PKI}'>{names}</pki></filter>"
                 "</get-config></rpc>".encode(), Framing.END_OF_MESSAGE)


async def reply_count(client: Client, count: int) -> list[etree._Element]:
    while len(client.transport.sent) < count:
        await asyncio.sleep(0.01)
    return [etree.fromstring(m[:-6]) for m in client.transport.sent[:count]]


def test_get_config_is_answered_while_a_large_message_is_parsed(server, monkeypatch):
    """Issue 9: a message of several MB is parsed in a worker thread (here held
    there until the other session has its answer); its bytes count as buffered
    input meanwhile; its reply follows."""
    import agent.netconf.server as server_module
    release, parsed = threading.Event(), []

    def held_parse(data: bytes):
        release.wait(60)
        parsed.append(len(data))
        return parse_client_message(data)

    monkeypatch.setattr(server_module, "parse_client_message", held_parse)

    async def scenario():
        a, b = Client(server), Client(server)
        a.transport.sent.clear()
        big = big_filter_get_config("big")
        assert len(big) > 4_000_000
        server.data_received(a.record, big)
        assert server.buffered >= len(big) - 6
        reply = await b.rpc("<get-config><source><running/></source></get-config>")
        assert reply.find(f"{{{NC}}}data") is not None
        assert a.transport.sent == [] and parsed == []
        release.set()
        (big_reply,) = await reply_count(a, 1)
        assert parsed == [len(big) - 6]
        assert big_reply.get("message-id") == "big"
        assert big_reply.find(f"{{{NC}}}data") is not None
        assert server.buffered == 0

    asyncio.run(scenario())


def test_malformed_large_xml_gets_the_rpc_error_of_malformed_small_xml(server):
    async def scenario():
        a = Client(server)
        a.transport.sent.clear()
        padding = "<x/>" * 500_000
        for body in ("", padding):
            message = f'<rpc xmlns="{NC}" message-id="1"><get-config>{body}</rpc>'.encode()
            server.data_received(a.record, frame(message, Framing.END_OF_MESSAGE))
        small, large = await reply_count(a, 2)
        for reply in (small, large):
            assert tag(reply) == "operation-failed"
            assert reply.findtext(f".//{{{NC}}}error-type") == "rpc"
        assert (re.sub(r"\d+", "N", small.findtext(f".//{{{NC}}}error-message"))
                == re.sub(r"\d+", "N", large.findtext(f".//{{{NC}}}error-message")))
        assert not a.transport.closed
        assert (await a.rpc("<get-config><source><running/></source></get-config>")).find(
            f"{{{NC}}}data") is not None

    asyncio.run(scenario())


def test_replies_keep_their_order_after_a_large_message(server):
    """A large message parsed in a worker thread, then small ones in the same
    read: the replies come in the order of the requests."""
    async def scenario():
        a = Client(server)
        a.transport.sent.clear()
        small = [frame(f'<rpc xmlns="{NC}" message-id="{i}"><get-config><source><running/>'
                       "</source></get-config></rpc>".encode(), Framing.END_OF_MESSAGE)
                 for i in (2, 3)]
        server.data_received(a.record, big_filter_get_config("1", 100) + b"".join(small))
        replies = await reply_count(a, 3)
        assert [r.get("message-id") for r in replies] == ["1", "2", "3"]
        assert all(r.find(f"{{{NC}}}data") is not None for r in replies)

    asyncio.run(scenario())


# --- running.xml written in a worker thread (issue 11: the commit's tail off the loop) ---
def stored_names(server: NetconfServer) -> list[str]:
    """The cmp-session names in running.xml on disk."""
    data = etree.fromstring((server.datastores.state_dir / "running.xml").read_bytes())
    return data.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI})


def temporaries(server: NetconfServer) -> list[str]:
    return [p.name for p in server.datastores.state_dir.iterdir() if p.name.endswith(".tmp")]


async def committed(client: Client, name: str) -> None:
    await client.rpc(edit(name))
    assert (await client.rpc("<commit/>")).find(f"{{{NC}}}ok") is not None


@pytest.mark.parametrize("fault", ["rename", "directory fsync"])
def test_a_commit_whose_file_cannot_be_written_is_an_rpc_error_and_changes_nothing(
        server, monkeypatch, fault):
    """The rename (or the directory fsync after it) fails in the worker thread:
    the client gets operation-failed, running.xml holds the old running again,
    running in memory is unchanged, no temporary file is left, and the next
    commit works once the disk does."""
    import agent.atomic as atomic

    def refuse(*args, **kwargs):
        monkeypatch.undo()  # once: writing the old running back works again
        raise OSError(5, "Input/output error")

    async def scenario():
        a = Client(server)
        await committed(a, "old")
        await a.rpc(edit("new"))
        monkeypatch.setattr(atomic.os if fault == "rename" else atomic,
                            "replace" if fault == "rename" else "fsync_directory", refuse)
        reply = await a.rpc("<commit/>")
        assert tag(reply) == "operation-failed"
        message = reply.findtext(f".//{{{NC}}}error-message")
        assert "running.xml could not be written (Input/output error)" in message
        assert "nothing was committed" in message
        assert stored_names(server) == ["old"]
        assert await running_names(a) == ["old"]
        assert temporaries(server) == []
        assert server.datastores.candidate_dirty
        assert (await a.rpc("<commit/>")).find(f"{{{NC}}}ok") is not None
        assert stored_names(server) == await running_names(a) == ["old", "new"]

    asyncio.run(scenario())


def test_running_xml_written_back_after_a_failed_commit_write_holds_no_session(
        server, monkeypatch):
    """The directory fsync after the rename fails: running.xml, which holds the
    commit, is written back from running in a worker thread, as a commit's own
    write; other sessions are answered meanwhile (and see running as it stays),
    and the client is told operation-failed once the file holds the old running."""
    import agent.atomic as atomic

    real_fsync, faults = atomic.fsync_directory, []

    def fails_once(directory):
        if not faults:
            faults.append(directory)
            raise OSError(5, "Input/output error")
        real_fsync(directory)

    go, threads = threading.Event(), []
    write_back = server.datastores._rewrite_if_holding

    def held(expected, tree):
        threads.append(threading.current_thread())
        loop.call_soon_threadsafe(begun.set)
        assert go.wait(10), "the test never let the write-back go on"
        write_back(expected, tree)

    async def scenario():
        nonlocal loop, begun
        loop, begun = asyncio.get_running_loop(), asyncio.Event()
        a, b = Client(server), Client(server)
        await committed(a, "old")
        await a.rpc(edit("new"))
        monkeypatch.setattr(atomic, "fsync_directory", fails_once)
        monkeypatch.setattr(server.datastores, "_rewrite_if_holding", held)
        reply = asyncio.ensure_future(a.rpc("<commit/>"))
        await begun.wait()
        assert stored_names(server) == ["old", "new"]  # renamed: the fsync after it failed
        assert await running_names(b) == ["old"]
        assert not reply.done()
        go.set()
        assert tag(await reply) == "operation-failed"
        assert threads and threads[0] is not threading.main_thread()
        assert stored_names(server) == await running_names(a) == ["old"]
        assert temporaries(server) == []

    loop = begun = None
    try:
        asyncio.run(scenario())
    finally:
        go.set()


@pytest.fixture
def slow_write(server, monkeypatch):
    """running.xml's write in the worker thread waits while the event is clear
    (the test clears it to hold a commit's write, sets it to let it go on)."""
    go = threading.Event()
    go.set()
    persist = server.datastores._persist

    def held(prepared):
        assert go.wait(10), "the test never let the write go on"
        persist(prepared)

    monkeypatch.setattr(server.datastores, "_persist", held)
    yield go
    go.set()


async def start_commit(client: Client,
                       body: str = "<commit/>") -> "asyncio.Future[etree._Element]":
    """Send *body*; returns once its write is under way in the worker thread."""
    reply = asyncio.ensure_future(client.rpc(body))
    for _ in range(1000):
        await asyncio.sleep(0.001)
        if client.server.datastores._writing.locked():
            return reply
    raise AssertionError("the commit never started writing running.xml")


async def commit_held(server: NetconfServer, go: threading.Event) -> tuple:
    """Sessions a and b; a has committed "old" and now commits "new", whose
    write is held: (a, b, the commit's future reply)."""
    a, b = Client(server), Client(server)
    await committed(a, "old")
    await a.rpc(edit("new"))
    go.clear()
    return a, b, await start_commit(a)


def test_running_is_read_and_edited_while_a_commit_is_written(server, slow_write):
    """Other sessions are answered while running.xml is written; they see the old
    running until it is durable; an edit of candidate meanwhile stays uncommitted."""
    async def scenario():
        a, b, reply = await commit_held(server, slow_write)
        assert await running_names(b) == ["old"]
        assert stored_names(server) == ["old"]
        await b.rpc(edit("later"))
        assert not reply.done()
        slow_write.set()
        assert (await reply).find(f"{{{NC}}}ok") is not None
        assert await running_names(b) == stored_names(server) == ["old", "new"]
        assert server.datastores.candidate_dirty  # "later" is not committed
        assert b.record.session_id in server.candidate_editors

    asyncio.run(scenario())


def test_a_lock_taken_while_a_commit_is_written_refuses_the_commit(server, slow_write):
    async def scenario():
        a, b, reply = await commit_held(server, slow_write)
        assert (await b.rpc("<lock><target><running/></target></lock>")).find(
            f"{{{NC}}}ok") is not None
        slow_write.set()
        assert tag(await reply) == "in-use"
        assert await running_names(b) == stored_names(server) == ["old"]
        assert temporaries(server) == []

    asyncio.run(scenario())


def test_a_confirmed_commit_rolled_back_while_a_commit_is_written_refuses_it(server, slow_write):
    """The confirming commit is written when the confirm-timeout rolls the
    confirmed one back: the rollback stands, on disk too."""
    async def scenario():
        a = Client(server)
        await committed(a, "old")
        await a.rpc(edit("trial"))
        reply = await a.rpc("<commit><confirmed/></commit>")
        assert reply.find(f"{{{NC}}}ok") is not None
        await a.rpc(edit("more"))
        slow_write.clear()
        confirming = await start_commit(a)
        rollback = server.rollback_confirmed_commit("test: timeout")
        slow_write.set()
        assert tag(await confirming) == "in-use"
        await rollback
        assert await running_names(a) == stored_names(server) == ["old"]

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["xpath", "subtree"])
def test_a_filtered_get_works_out_the_filter_once(server, monkeypatch, kind):
    """The filter's type, XPath select (and a subtree filter's size) are read
    once per request, by FilterParam.of; the name check and the evaluation use
    what it carries."""
    import agent.netconf.filters as filters

    calls = []
    real = filters.xpath_select
    monkeypatch.setattr(filters, "xpath_select",
                        lambda el, *size: calls.append(el) or real(el, *size))
    f = ("<filter type='xpath' select='/p:pki/p:cmp-session/p:name' xmlns:p='" + PKI + "'/>"
         if kind == "xpath" else
         f"<filter><pki xmlns='{PKI}'><cmp-session><name/></cmp-session></pki></filter>")

    async def scenario():
        a = Client(server)
        await committed(a, "s1")
        for op in ("get", "get-config"):
            calls.clear()
            source = "<source><running/></source>" if op == "get-config" else ""
            reply = await a.rpc(f"<{op}>{source}{f}</{op}>")
            assert reply.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI}) == ["s1"]
            assert len(calls) == 1, op
        await server.filters.close()

    asyncio.run(scenario())


def test_eof_answers_rpcs_waiting_for_a_datastore_lock_then_ends_the_session(server, sliced):
    """RFC 6242: the RPCs a client completed before its EOF are answered, here one
    parsed in a worker thread and one waiting for another session's edit to end;
    then the session ends (its transport closed after the replies)."""
    async def scenario():
        a, b, editing = await edit_overlapped(server)
        b.record.protocol.inline_parse_limit = 0  # every message parsed in a worker thread
        b.server.data_received(b.record, b"".join(
            frame(f'<rpc xmlns="{NC}" message-id="{i}">{body}</rpc>'.encode(),
                  Framing.END_OF_MESSAGE)
            for i, body in enumerate([edit("after-eof"), "<commit/>"], start=1)))
        hello_only, a_sent = len(b.transport.sent), len(a.transport.sent)
        server.eof_received(b.record)
        assert not editing.done() and b.record.session_id in server.sessions
        while len(b.transport.sent) == hello_only:
            await asyncio.sleep(0)
        assert len(a.transport.sent) > a_sent  # b's edit waited for a's
        while not b.transport.closed:
            await asyncio.sleep(0)
        replies = [etree.fromstring(m[:-6]) for m in b.transport.sent[hello_only:]]
        assert [r.get("message-id") for r in replies] == ["1", "2"]
        assert all(r.find(f"{{{NC}}}ok") is not None for r in replies)
        assert b.record.session_id not in server.sessions
        assert editing.done() and "after-eof" in await running_names(a)
        assert server.statistics.dropped_sessions == 1

    asyncio.run(scenario())


async def waiting_to_write(server: NetconfServer, count: int) -> None:
    """Until *count* commits wait for the write of the one being written."""
    for _ in range(1000):
        await asyncio.sleep(0.001)
        if len(server.datastores._writing._waiters or ()) == count:
            return
    raise AssertionError(f"{count} commits never waited for the write")


async def written(server: NetconfServer, go: threading.Event) -> None:
    """Let the held write go on and wait until the commit is over."""
    go.set()
    for _ in range(5000):
        await asyncio.sleep(0.001)
        if not server.datastores._writing.locked():
            return
    raise AssertionError("the commit never finished")

async def ended(server: NetconfServer, a: Client, b: Client, end: str) -> None:
    """Session a ends: killed by b, or its connection lost."""
    if end == "kill-session":
        reply = await b.rpc(f"<kill-session><session-id>{a.record.session_id}"
                            "</session-id></kill-session>")
        assert reply.find(f"{{{NC}}}ok") is not None
    else:
        server.session_closed(a.record, "connection lost")


@pytest.mark.parametrize("end", ["kill-session", "connection lost"])
def test_a_confirmed_commit_whose_session_ends_while_it_is_written_is_not_made(
        server, slow_write, caplog, end):
    """RFC 6241 section 8.4.1: the end of the session rolls a confirmed commit
    back; a session that ends while the commit's file is written (killed, or
    its connection lost) leaves running as it was, on disk too, and no
    confirmed commit pending."""
    async def scenario():
        a, b = Client(server), Client(server)
        await committed(a, "old")
        await a.rpc(edit("trial"))
        slow_write.clear()
        await start_commit(a, "<commit><confirmed/></commit>")
        assert server.confirm is not None
        await ended(server, a, b, end)
        await written(server, slow_write)
        await server.rollback_ended()
        assert server.confirm is None
        assert await running_names(b) == stored_names(server) == ["old"]
        assert temporaries(server) == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # the agent goes on: b commits
        await committed(b, "after")
        assert await running_names(b) == stored_names(server) == ["old", "after"]

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())


def test_a_confirmed_commit_waiting_for_another_commit_s_write_snapshots_running_after_it(
        server, slow_write):
    """A confirmed commit sent while another commit is written: its rollback
    (here cancel-commit) restores running as that commit left it, not as it
    was before it (the other commit stays made)."""
    async def scenario():
        a, b = Client(server), Client(server)
        await committed(a, "old")
        await a.rpc(edit("new"))
        slow_write.clear()
        first = await start_commit(a)
        await b.rpc(edit("trial"))
        second = asyncio.ensure_future(b.rpc("<commit><confirmed/></commit>"))
        await waiting_to_write(server, 1)
        assert not first.done() and not second.done()
        await written(server, slow_write)
        assert (await first).find(f"{{{NC}}}ok") is not None
        assert (await second).find(f"{{{NC}}}ok") is not None
        assert await running_names(b) == ["old", "new", "trial"]
        assert (await b.rpc("<cancel-commit/>")).find(f"{{{NC}}}ok") is not None
        assert await running_names(b) == stored_names(server) == ["old", "new"]

    asyncio.run(scenario())


def test_an_agent_shutdown_while_a_confirmed_commit_is_written_leaves_running_xml_as_before(
        server, slow_write):
    """serve's shutdown ends the sessions (rolling the confirmed commit back)
    and then cancels the commit's task while its write runs in the worker
    thread: once the thread is done, running.xml holds running as it was, so
    the restart does not load the commit that was rolled back."""
    async def scenario():
        a = Client(server)
        await committed(a, "old")
        await a.rpc(edit("trial"))
        slow_write.clear()
        await start_commit(a, "<commit><confirmed/></commit>")
        worker = a.record.worker
        server.close()
        worker.cancel()
        await asyncio.sleep(0.01)
        assert not worker.done()  # it waits for the worker thread
        slow_write.set()
        with pytest.raises(asyncio.CancelledError):
            await worker
        await server.rollback_ended()  # as serve's shutdown does
        assert server.confirm is None
        assert stored_names(server) == ["old"]
        assert temporaries(server) == []
        assert not server.datastores._writing.locked()

    asyncio.run(scenario())
    restarted = Datastores(server.model, server.datastores.state_dir, server.datastores.secrets)
    assert restarted.get_config("running").xpath(
        "//p:cmp-session/p:name/text()", namespaces={"p": PKI}) == ["old"]


DISCARDS = {"discard-changes": "<discard-changes/>",
            "copy-config": "<copy-config><target><candidate/></target>"
                           "<source><running/></source></copy-config>"}


@pytest.mark.parametrize("discard", DISCARDS)
def test_candidate_set_to_running_while_a_commit_is_written_is_the_committed_running(
        server, slow_write, discard):
    """discard-changes (or copy-config running to candidate) while a commit is
    written: candidate becomes running as the commit leaves it, not running
    before it, whose next commit would silently undo the commit."""
    async def scenario():
        a, b, reply = await commit_held(server, slow_write)
        assert (await b.rpc(DISCARDS[discard])).find(f"{{{NC}}}ok") is not None
        await written(server, slow_write)
        assert (await reply).find(f"{{{NC}}}ok") is not None
        assert await running_names(b) == stored_names(server) == ["old", "new"]
        assert await candidate_names(b) == ["old", "new"]
        assert (await b.rpc("<commit/>")).find(f"{{{NC}}}ok") is not None
        assert await running_names(b) == stored_names(server) == ["old", "new"]

    asyncio.run(scenario())


def test_candidate_discarded_while_a_refused_commit_is_written_is_running(server, slow_write):
    """The commit is refused after its write (a lock taken meanwhile): the
    discard-changes made meanwhile leaves candidate equal to running."""
    async def scenario():
        a, b, reply = await commit_held(server, slow_write)
        assert (await b.rpc("<lock><target><running/></target></lock>")).find(
            f"{{{NC}}}ok") is not None
        assert (await b.rpc("<discard-changes/>")).find(f"{{{NC}}}ok") is not None
        await written(server, slow_write)
        assert tag(await reply) == "in-use"
        assert await running_names(b) == stored_names(server) == ["old"]
        assert await candidate_names(b) == ["old"]
        assert not server.datastores.candidate_dirty

    asyncio.run(scenario())


@pytest.mark.parametrize("end", ["kill-session", "connection lost"])
def test_the_committing_lock_holder_ending_while_its_commit_is_written(
        server, slow_write, end):
    """RFC 6241 sections 7.9 and 8.3.5.2: the candidate lock holder's session
    ends while its commit is written: the commit in process stops (running and
    running.xml as before) and its changes are discarded from candidate."""
    async def scenario():
        a, b = Client(server), Client(server)
        await committed(a, "old")
        assert (await a.rpc("<lock><target><candidate/></target></lock>")).find(
            f"{{{NC}}}ok") is not None
        await a.rpc(edit("new"))
        slow_write.clear()
        await start_commit(a)
        await ended(server, a, b, end)
        await written(server, slow_write)
        assert await running_names(b) == stored_names(server) == ["old"]
        assert await candidate_names(b) == ["old"]
        assert not server.datastores.candidate_dirty
        assert temporaries(server) == []

    asyncio.run(scenario())


def test_two_confirmed_commits_waiting_for_a_write_the_second_is_refused(server, slow_write):
    """Sessions b and c both send a confirmed commit while a's commit is written
    (none pending when they are checked): b's begins, c's is refused (in-use)
    and b's pending confirmed commit stays b's."""
    async def scenario():
        a, b, first = await commit_held(server, slow_write)
        c = Client(server)
        second = asyncio.ensure_future(b.rpc("<commit><confirmed/></commit>"))
        third = asyncio.ensure_future(c.rpc("<commit><confirmed/></commit>"))
        await waiting_to_write(server, 2)
        await written(server, slow_write)
        assert (await first).find(f"{{{NC}}}ok") is not None
        assert (await second).find(f"{{{NC}}}ok") is not None
        assert tag(await third) == "in-use"
        assert server.confirm is not None and server.confirm.session_id == b.record.session_id
        assert (await b.rpc("<commit/>")).find(f"{{{NC}}}ok") is not None
        assert server.confirm is None

    asyncio.run(scenario())


def test_a_commit_that_waited_for_another_s_write_is_prepared_again_in_slices(
        server, slow_write, monkeypatch):
    """The first commit changed running while the second waited for its write:
    the second's preparation (copy, validation, diff, file) is done again in
    slices between other sessions' RPCs, not at once on the event loop."""
    async def scenario():
        a, b, first = await commit_held(server, slow_write)
        await b.rpc(edit("second"))
        second = asyncio.ensure_future(b.rpc("<commit/>"))
        await waiting_to_write(server, 1)

        def at_once(*args):
            raise AssertionError("prepared at once on the event loop")

        monkeypatch.setattr(server.datastores, "_prepare", at_once)
        await written(server, slow_write)
        assert (await first).find(f"{{{NC}}}ok") is not None
        assert (await second).find(f"{{{NC}}}ok") is not None
        assert await running_names(b) == stored_names(server) == ["old", "new", "second"]
        assert temporaries(server) == []

    asyncio.run(scenario())


# --- confirmed-commit rollback made as a commit is (RFC 6241 section 8.4) ---------------
GET_RUNNING = "<get-config><source><running/></source></get-config>"


async def running_data(client: Client) -> bytes:
    """Running's <data>, as get-config gives it."""
    return etree.tostring((await client.rpc(GET_RUNNING)).find(f"{{{NC}}}data"))


def not_at_once(*args, **kwargs):
    raise AssertionError("the rollback was made at once on the event loop")


async def confirmed_big_change(server: NetconfServer) -> tuple:
    """Sessions a and b; a committed "old", then confirmed a commit of 300 more
    entries (with <persist>): (a, b, running's get-config reply before that commit)."""
    a, b = Client(server), Client(server)
    await committed(a, "old")
    before = await running_data(a)
    await a.rpc(big_edit(300))
    reply = await a.rpc("<commit><confirmed/><persist>p1</persist></commit>")
    assert reply.find(f"{{{NC}}}ok") is not None
    return a, b, before


def test_the_rollback_of_a_large_change_lets_other_sessions_be_answered(
        server, sliced, monkeypatch):
    """cancel-commit of a confirmed commit of 300 entries: the change, the view
    and the copies are made in slices (here a list entry each), running.xml in a
    worker thread; another session's get-config is answered meanwhile and sees
    running as the confirmed commit left it (the rollback is one change); then
    running and candidate are exactly as before the confirmed commit, on disk too."""
    async def scenario():
        a, b, before = await confirmed_big_change(server)
        monkeypatch.setattr(store_module, "diff", not_at_once)
        monkeypatch.setattr(server.datastores, "restore_running", not_at_once)
        cancel = asyncio.ensure_future(a.rpc("<cancel-commit><persist-id>p1</persist-id>"
                                             "</cancel-commit>"))
        await asyncio.sleep(0)
        assert len(await running_names(b)) == 301
        assert not cancel.done()
        assert (await cancel).find(f"{{{NC}}}ok") is not None
        assert await running_data(a) == before
        assert stored_names(server) == await candidate_names(b) == ["old"]
        assert server.confirm is None and not server.datastores.candidate_dirty

    asyncio.run(scenario())


def test_a_confirming_commit_sent_while_the_rollback_is_made_is_refused(server, sliced):
    """The confirm-timeout's rollback is under way when another session confirms
    (<persist-id>): the rollback stands, the commit is refused (in-use) and
    changes nothing; an edit of candidate made meanwhile is undone with it."""
    async def scenario():
        a, b, before = await confirmed_big_change(server)
        rollback = server._confirm_timeout("test: the timeout passed")
        await asyncio.sleep(0)
        assert (await b.rpc(edit("meanwhile"))).find(f"{{{NC}}}ok") is not None
        confirming = await b.rpc("<commit><persist-id>p1</persist-id></commit>")
        assert tag(confirming) == "in-use"
        assert not rollback.done()
        await rollback
        assert server.confirm is None
        assert await running_names(b) == stored_names(server) == await candidate_names(b) \
            == ["old"]

    asyncio.run(scenario())


# --- the confirmed-commit backup written off the event loop (RFC 6241 section 8.4) ------
BACKUP = "unconfirmed-commit-rollback.xml"


class HeldInThread:
    """Wraps *call*: made in a worker thread, it waits there until :attr:`go` is
    set, having set :attr:`begun` on the loop; :attr:`threads`: where it ran."""

    def __init__(self, call):
        self.call, self.go, self.threads = call, threading.Event(), []
        self.loop, self.begun = asyncio.get_running_loop(), asyncio.Event()

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread())
        self.loop.call_soon_threadsafe(self.begun.set)
        assert self.go.wait(10), "the test never let the call go on"
        return self.call(*args, **kwargs)

    def off_the_loop(self) -> bool:
        return bool(self.threads) and threading.main_thread() not in self.threads


def names_in(path) -> list[str]:
    return etree.fromstring(path.read_bytes()).xpath(
        "//p:cmp-session/p:name/text()", namespaces={"p": PKI})


def backup_failed(reply: etree._Element, threads: list, *says: str) -> None:
    """*reply* is operation-failed naming the backup and saying *says*; the
    failure (in *threads*) came in a worker thread."""
    assert tag(reply) == "operation-failed"
    assert threads and threads[0] is not threading.main_thread()
    message = reply.findtext(f".//{{{NC}}}error-message")
    for part in (f"{BACKUP} (the copy of running", *says):
        assert part in message


def hold_backup_write(server: NetconfServer, monkeypatch) -> HeldInThread:
    """The write of the confirmed-commit backup (not of other files), held."""
    real = store_module.atomic_write
    held = HeldInThread(real)
    backup = server.confirm_backup
    monkeypatch.setattr(store_module, "atomic_write",
                        lambda path, *a, **k: (held if path == backup else real)(path, *a, **k))
    return held


async def killed_while_held(server: NetconfServer, a: Client, b: Client,
                            held: HeldInThread) -> None:
    """Session a, whose commit's write is *held*, killed by b: the commit is
    refused once the write goes on, then the rollback made; running is "old" in
    memory and on disk, and no backup or confirmed commit is left."""
    try:
        await ended(server, a, b, "kill-session")
        assert server.confirm is not None and server.confirm.rollback is not None
        await written(server, held.go)
    finally:
        held.go.set()
    await server.rollback_ended()
    assert server.confirm is None and not server.confirm_backup.exists()
    assert await running_names(b) == stored_names(server) == ["old"]
    assert temporaries(server) == []


async def confirmed_commit_held(server: NetconfServer, monkeypatch) -> tuple:
    """Sessions a and b; a committed "old", edited "trial" and sent a confirmed
    commit, whose backup write is now held: (a, b, the HeldInThread, the reply)."""
    a, b = Client(server), Client(server)
    await committed(a, "old")
    await a.rpc(edit("trial"))
    held = hold_backup_write(server, monkeypatch)
    reply = asyncio.ensure_future(a.rpc("<commit><confirmed/></commit>"))
    await held.begun.wait()
    return a, b, held, reply


def test_the_confirmed_commit_backup_is_written_while_other_sessions_are_answered(
        server, model, tmp_path, monkeypatch):
    """The backup of running that a confirmed commit writes is serialised and
    written in a worker thread: another session's get-config is answered
    meanwhile (running as it was); the commit is answered ok only once the backup
    is written, running.xml after it; an agent stopping then rolls back at start."""
    server.confirm_backup = tmp_path / BACKUP

    async def scenario():
        a, b, held, reply = await confirmed_commit_held(server, monkeypatch)
        try:
            assert await running_names(b) == stored_names(server) == ["old"]
            assert not (tmp_path / BACKUP).exists()
            assert not reply.done()
        finally:
            held.go.set()
        assert (await reply).find(f"{{{NC}}}ok") is not None
        assert held.off_the_loop()
        assert names_in(tmp_path / BACKUP) == ["old"]
        assert await running_names(b) == stored_names(server) == ["old", "trial"]

    asyncio.run(scenario())
    # the agent stopped before the commit was confirmed: its next start rolls back
    restarted = NetconfServer(model, Datastores(model, tmp_path, SecretBox.open(tmp_path)),
                              confirm_backup=tmp_path / BACKUP)
    restarted.recover_unconfirmed_commit()
    assert stored_names(restarted) == ["old"]
    assert not (tmp_path / BACKUP).exists()


def test_a_confirmed_commit_whose_backup_cannot_be_written_is_not_made(
        server, tmp_path, monkeypatch):
    """The backup's write fails in its worker thread: operation-failed naming the
    file, nothing committed (running in memory and on disk, no confirmed commit
    pending, no backup, no temporary file); the next confirmed commit works."""
    backup = server.confirm_backup = tmp_path / BACKUP
    real, threads = store_module.atomic_write, []

    def refuse_once(path, *args, **kwargs):
        if path == backup and not threads:
            threads.append(threading.current_thread())
            raise OSError(28, "No space left on device")
        real(path, *args, **kwargs)

    async def scenario():
        a, b = Client(server), Client(server)
        await committed(a, "old")
        await a.rpc(edit("trial"))
        monkeypatch.setattr(store_module, "atomic_write", refuse_once)
        backup_failed(await a.rpc("<commit><confirmed/></commit>"), threads,
                      "(No space left on device); nothing was committed")
        assert server.confirm is None and not (tmp_path / BACKUP).exists()
        assert await running_names(b) == stored_names(server) == ["old"]
        assert temporaries(server) == []
        assert (await a.rpc("<commit><confirmed/></commit>")).find(f"{{{NC}}}ok") is not None
        assert names_in(tmp_path / BACKUP) == ["old"]
        assert await running_names(b) == stored_names(server) == ["old", "trial"]

    asyncio.run(scenario())


def test_a_confirmed_commit_whose_session_ends_while_its_backup_is_written_is_not_made(
        server, tmp_path, monkeypatch):
    """RFC 6241 section 8.4.1: the session ends (killed) while the backup is
    written: the commit is refused, its rollback then changes nothing; running is
    as before, in memory and on disk, and no backup or confirmed commit is left."""
    server.confirm_backup = tmp_path / BACKUP

    async def scenario():
        a, b, held, _ = await confirmed_commit_held(server, monkeypatch)  # never answered
        await killed_while_held(server, a, b, held)

    asyncio.run(scenario())


# --- the confirming commit answered once the backup's removal is durable (RFC 6241 8.4) ----
async def pending_confirmed(server: NetconfServer, change: bool) -> tuple:
    """Sessions a and b; a committed "old", then "trial" in a confirmed commit
    (pending), then, if *change*, edited "more": (a, b)."""
    a, b = Client(server), Client(server)
    await committed(a, "old")
    await a.rpc(edit("trial"))
    assert (await a.rpc("<commit><confirmed/></commit>")).find(f"{{{NC}}}ok") is not None
    if change:
        await a.rpc(edit("more"))
    return a, b


def restarted_names(model, state_dir) -> list[str]:
    """running.xml's names after a fresh server's start on *state_dir* (a crash, then)."""
    restarted = NetconfServer(model, Datastores(model, state_dir, SecretBox.open(state_dir)),
                              confirm_backup=state_dir / BACKUP)
    restarted.recover_unconfirmed_commit()
    assert not (state_dir / BACKUP).exists()
    return sorted(stored_names(restarted))


@pytest.mark.parametrize("change", [True, False], ids=["with a change", "without"])
def test_a_confirming_commit_is_answered_once_the_backup_s_removal_is_durable(
        server, model, tmp_path, monkeypatch, change):
    """The confirming commit removes the backup and fsyncs its directory in a
    worker thread: held there, another session's get-config is answered (running
    as it was, the confirmed commit pending) and the commit is not; ok comes once
    the removal is durable, and a restart then keeps the confirmed running."""
    backup = server.confirm_backup = tmp_path / BACKUP
    confirmed = sorted(["old", "trial", "more"] if change else ["old", "trial"])

    async def scenario():
        a, b = await pending_confirmed(server, change)
        held = HeldInThread(store_module.fsync_directory)
        monkeypatch.setattr(store_module, "fsync_directory", held)
        reply = asyncio.ensure_future(a.rpc("<commit/>"))
        await held.begun.wait()
        try:
            assert not backup.exists()  # unlinked; the unlink not durable yet
            assert sorted(await running_names(b)) == ["old", "trial"]
            assert sorted(stored_names(server)) == confirmed  # running.xml durable first
            assert server.confirm is not None and not reply.done()
        finally:
            held.go.set()
        assert (await reply).find(f"{{{NC}}}ok") is not None
        assert held.off_the_loop()
        assert server.confirm is None and not backup.exists()
        assert sorted(await running_names(b)) == sorted(stored_names(server)) == confirmed

    asyncio.run(scenario())
    assert restarted_names(model, tmp_path) == confirmed


def test_a_confirming_commit_whose_backup_s_removal_fails_is_not_made(
        server, model, tmp_path, monkeypatch):
    """The directory fsync after the backup's unlink fails: operation-failed (not
    ok) saying the confirmed commit is still pending; running.xml written back,
    the backup put back, the confirmed commit pending, in memory as on disk: a
    restart then rolls back (as the timeout would); confirmed again, it is made."""
    import shutil

    backup = server.confirm_backup = tmp_path / BACKUP
    real, threads = store_module.fsync_directory, []

    def fails_once(directory):
        if not threads:
            threads.append(threading.current_thread())
            raise OSError(5, "Input/output error")
        real(directory)

    async def scenario():
        a, b = await pending_confirmed(server, True)
        monkeypatch.setattr(store_module, "fsync_directory", fails_once)
        backup_failed(await a.rpc("<commit/>"), threads,
                      "(Input/output error); the commit was not confirmed",
                      "the confirmed commit is still pending")
        assert server.confirm is not None and server.confirm.timer is not None
        assert names_in(backup) == ["old"]
        assert sorted(await running_names(b)) == sorted(stored_names(server)) == ["old", "trial"]
        assert temporaries(server) == []
        shutil.copytree(tmp_path, tmp_path / "crashed", ignore=shutil.ignore_patterns("crashed"))
        assert (await a.rpc("<commit/>")).find(f"{{{NC}}}ok") is not None
        assert server.confirm is None and not backup.exists()
        assert sorted(stored_names(server)) == ["more", "old", "trial"]

    asyncio.run(scenario())
    assert restarted_names(model, tmp_path / "crashed") == ["old"]  # as the client was told
    assert restarted_names(model, tmp_path) == ["more", "old", "trial"]


def test_a_confirming_commit_whose_session_ends_while_the_backup_is_removed_is_not_made(
        server, tmp_path, monkeypatch):
    """RFC 6241 section 8.4.1: the session ends while the backup's removal is held:
    the rollback begun then wins; the backup is put back and running.xml written
    back, then the rollback restores running; no backup or confirmed commit left."""
    server.confirm_backup = tmp_path / BACKUP

    async def scenario():
        a, b = await pending_confirmed(server, True)
        held = HeldInThread(store_module.fsync_directory)
        monkeypatch.setattr(store_module, "fsync_directory", held)
        asyncio.ensure_future(a.rpc("<commit/>"))  # never answered
        await held.begun.wait()
        await killed_while_held(server, a, b, held)

    asyncio.run(scenario())


# --- copy-config and delete-config of startup written off the event loop (RFC 6241 7.3, 7.4)
COPY_TO_STARTUP = ("<copy-config><target><startup/></target><source><running/></source>"
                   "</copy-config>")
DELETE_STARTUP = "<delete-config><target><startup/></target></delete-config>"


def copy_inline_to_startup(name: str) -> str:
    return (f"<copy-config><target><startup/></target><source><config><pki xmlns='{PKI}'>"
            f"<cmp-session><name>{name}</name></cmp-session></pki></config></source>"
            "</copy-config>")


async def startup_names(client: Client) -> list[str]:
    reply = await client.rpc("<get-config><source><startup/></source></get-config>")
    return reply.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI})


def startup_file_names(server: NetconfServer) -> list[str] | None:
    """The cmp-session names in startup.xml, None if there is no such file."""
    path = server.datastores.state_dir / "startup.xml"
    return names_in(path) if path.exists() else None


def ok(reply: etree._Element) -> bool:
    return reply.find(f"{{{NC}}}ok") is not None


async def startup_saved(server: NetconfServer) -> tuple:
    """Sessions a, b and c; running "old" saved to startup, then "new" committed."""
    a, b, c = Client(server), Client(server), Client(server)
    await committed(a, "old")
    assert ok(await a.rpc(COPY_TO_STARTUP))
    await committed(a, "new")
    return a, b, c


async def startup_write_held(server: NetconfServer, monkeypatch, client: Client,
                             rpc: str) -> tuple:
    """startup.xml's write (or removal) held in its worker thread, once *client*
    has sent *rpc*: (the HeldInThread, the future reply)."""
    held = HeldInThread(server.datastores._put_startup)
    monkeypatch.setattr(server.datastores, "_put_startup", held)
    reply = asyncio.ensure_future(client.rpc(rpc))
    await held.begun.wait()
    return held, reply


def test_copy_config_to_startup_is_written_while_other_sessions_are_answered(
        server, monkeypatch):
    """startup.xml is written in a worker thread: another session reads startup
    meanwhile (as it was: the copy shows once durable); a second copy to startup
    sent meanwhile waits for its turn, then is made over the first, so startup in
    memory and on disk is the later copy."""
    async def scenario():
        a, b, c = await startup_saved(server)
        held, first = await startup_write_held(server, monkeypatch, a, COPY_TO_STARTUP)
        try:
            second = asyncio.ensure_future(c.rpc(copy_inline_to_startup("other")))
            assert await startup_names(b) == startup_file_names(server) == ["old"]
            assert await running_names(b) == ["old", "new"]
            assert not first.done() and not second.done()
            assert len(held.threads) == 1  # the second copy waits for its turn
        finally:
            held.go.set()
        assert ok(await first) and ok(await second)
        assert held.off_the_loop() and len(held.threads) == 2
        assert await startup_names(b) == startup_file_names(server) == ["other"]
        assert temporaries(server) == []

    asyncio.run(scenario())


def test_delete_config_of_startup_is_made_while_other_sessions_are_answered(
        server, monkeypatch):
    """startup.xml is removed (and its directory fsync'ed) in a worker thread:
    another session still reads startup meanwhile; it is empty once the file is gone."""
    async def scenario():
        a, b, _ = await startup_saved(server)
        held, reply = await startup_write_held(server, monkeypatch, a, DELETE_STARTUP)
        try:
            assert await startup_names(b) == startup_file_names(server) == ["old"]
            assert not reply.done()
        finally:
            held.go.set()
        assert ok(await reply) and held.off_the_loop()
        assert await startup_names(b) == []
        assert startup_file_names(server) is None

    asyncio.run(scenario())


@pytest.mark.parametrize("rpc,fault", [(COPY_TO_STARTUP, "rename"),
                                       (COPY_TO_STARTUP, "directory fsync"),
                                       (DELETE_STARTUP, "directory fsync")])
def test_a_startup_write_that_fails_is_an_rpc_error_and_changes_nothing(
        server, monkeypatch, rpc, fault):
    """The rename (or the directory fsync after the rename or the removal) fails
    in the worker thread: operation-failed naming startup.xml; the file is put back
    if it had changed, so startup in memory and on disk stays "old"; the same
    request works once the disk does."""
    import agent.atomic as atomic

    faults = []

    def fails_once(real):
        def call(*args):
            if not faults:
                faults.append(threading.current_thread())
                raise OSError(5, "Input/output error")
            return real(*args)
        return call

    async def scenario():
        a, b, _ = await startup_saved(server)
        if fault == "rename":
            monkeypatch.setattr(atomic.os, "replace", fails_once(atomic.os.replace))
        else:
            monkeypatch.setattr(atomic, "fsync_directory", fails_once(atomic.fsync_directory))
            monkeypatch.setattr(store_module, "fsync_directory",
                                fails_once(store_module.fsync_directory))
        reply = await a.rpc(rpc)
        assert tag(reply) == "operation-failed"
        message = reply.findtext(f".//{{{NC}}}error-message")
        done = "removed" if rpc == DELETE_STARTUP else "written"
        assert f"startup.xml could not be {done} (Input/output error)" in message
        assert "startup was not changed" in message
        assert faults and faults[0] is not threading.main_thread()
        assert await startup_names(b) == startup_file_names(server) == ["old"]
        assert temporaries(server) == []
        assert ok(await a.rpc(rpc))
        assert await startup_names(b) == (startup_file_names(server) or []) == (
            [] if rpc == DELETE_STARTUP else ["old", "new"])

    asyncio.run(scenario())


def test_a_lock_of_startup_taken_while_a_copy_is_written_refuses_it_and_puts_the_file_back(
        server, monkeypatch):
    """RFC 6241 section 7.5: another session locks startup while the copy's file
    is written: the copy is refused (in-use) once the file is written, and the
    file is put back, so startup is "old" in memory and on disk."""
    async def scenario():
        a, b, _ = await startup_saved(server)
        held, reply = await startup_write_held(server, monkeypatch, a, COPY_TO_STARTUP)
        try:
            assert ok(await b.rpc("<lock><target><startup/></target></lock>"))
        finally:
            held.go.set()
        assert tag(await reply) == "in-use"
        assert len(held.threads) == 2  # the write, then the file put back
        assert await startup_names(b) == startup_file_names(server) == ["old"]
        assert temporaries(server) == []

    asyncio.run(scenario())
