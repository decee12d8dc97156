"""Heavy work of <copy-config>, <validate> and a failed <commit> made in slices on
the event loop or in a worker thread, other sessions answered meanwhile, and no
datastore ever seen half-changed (RFC 6241 sections 7.3, 8.3.4.1 and 8.6; RFC 8341
section 3.2.6).

Each test holds the heavy computation in a worker thread at a point (a step that
asks for a call, :mod:`agent.datastore.steps`): a computation made at once on the
event loop would make that call there, and the test's other session would never
be answered before the test lets it go on."""

from __future__ import annotations

import asyncio
import threading

import pytest
from lxml import etree

from agent.datastore import store as store_module
from agent.netconf.nacm import NACM_NS, Access
from agent.netconf.server import NetconfServer
from memory_server import NC
from memory_server import MemoryClient as Client

PKI = "urn:cmp-agent:yang:cmp-agent-pki"
COUNT = 300
#: oper may do anything, but not as a bypass: the first rule matches no data node,
#: so each node of a copy is checked against the rules (RFC 8341 section 3.4.5)
OPER_RULES = (
    f"<nacm xmlns='{NACM_NS}'><groups><group><name>operators</name><user-name>oper</user-name>"
    "</group></groups><rule-list><name>operators</name><group>operators</group>"
    "<rule><name>no-clear</name><module-name>cmp-agent-pki</module-name>"
    "<rpc-name>clear-statistics</rpc-name><action>deny</action></rule>"
    "<rule><name>all</name><module-name>*</module-name><access-operations>*"
    "</access-operations><action>permit</action></rule></rule-list></nacm>")


def entries(count: int, prefix: str = "s") -> str:
    return "".join(f"<cmp-session><name>{prefix}{i}</name></cmp-session>" for i in range(count))


def edit(body: str) -> str:
    return f"<edit-config><target><candidate/></target><config>{body}</config></edit-config>"


def ok(reply: etree._Element) -> bool:
    return reply.find(f"{{{NC}}}ok") is not None


def tag(reply: etree._Element) -> str | None:
    return reply.findtext(f".//{{{NC}}}error-tag")


async def names(client: Client, source: str) -> list[str]:
    reply = await client.rpc(f"<get-config><source><{source}/></source></get-config>")
    return reply.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI})


class Hold:
    """A call a computation in steps asks for: made in a worker thread, it waits
    there until :attr:`go` is set, having set :attr:`begun` on the loop."""

    def __init__(self):
        self.permits, self.threads = threading.Semaphore(0), []
        self.loop, self.begun = asyncio.get_running_loop(), asyncio.Event()

    def __call__(self) -> None:
        self.threads.append(threading.current_thread())
        self.loop.call_soon_threadsafe(self.begun.set)
        assert self.permits.acquire(timeout=10), "the test never let the computation go on"

    def go(self, times: int = 1000) -> None:
        """Let the computation go on (*times* calls of it)."""
        self.permits.release(times)

    async def started(self) -> None:
        """Until the computation asked for this call (else the test fails)."""
        await asyncio.wait_for(self.begun.wait(), 10)

    def off_the_loop(self) -> bool:
        return bool(self.threads) and threading.main_thread() not in self.threads


def held_after(monkeypatch, owner, name: str, hold: Hold) -> None:
    """*owner*'s steps method *name* asks for *hold* once it has its result."""
    real = getattr(owner, name)

    def steps(*args):
        result = yield from real(*args)
        yield hold
        return result

    monkeypatch.setattr(owner, name, steps)


async def seen_while_held(hold: Hold, pending: asyncio.Future, other: Client,
                          source: str) -> list[str]:
    """Once the computation is held: the names *other*'s get-config of *source*
    is answered with while *pending* (the heavy RPC's reply) still waits; then
    the computation goes on, *pending* is ok and the held call was made off the
    event loop."""
    await hold.started()
    seen = await names(other, source)
    assert not pending.done()
    hold.go()
    assert ok(await pending)
    assert hold.off_the_loop()
    return seen


def not_at_once(*args, **kwargs):
    raise AssertionError("made at once on the event loop")


async def configured(server: NetconfServer) -> tuple[Client, Client]:
    """admin and oper; running and candidate hold COUNT entries and oper's rules."""
    admin = Client(server)
    assert ok(await admin.rpc(edit(OPER_RULES)))
    assert ok(await admin.rpc(edit(f"<pki xmlns='{PKI}'>{entries(COUNT)}</pki>")))
    assert ok(await admin.rpc("<commit/>"))
    return admin, Client(server, "oper")


@pytest.mark.parametrize("step", ["prune_steps", "check_write_steps"])
def test_a_copy_of_running_to_candidate_checked_by_nacm_lets_other_sessions_be_answered(
        server, monkeypatch, step):
    """oper's copy of running to candidate: the copy of running, the prune of what
    oper may not read and the write check are made in slices; held after the
    prune (or the write check), another session's get-config is answered and sees
    candidate as it was; then candidate is the copy, at once."""
    async def scenario():
        admin, oper = await configured(server)
        assert ok(await admin.rpc(edit(f"<pki xmlns='{PKI}'><cmp-session><name>extra</name>"
                                       "</cmp-session></pki>")))
        monkeypatch.setattr(Access, "prune", not_at_once)
        monkeypatch.setattr(Access, "check_write", not_at_once)
        hold = Hold()
        held_after(monkeypatch, Access, step, hold)
        copy = asyncio.ensure_future(oper.rpc(
            "<copy-config><target><candidate/></target><source><running/></source>"
            "</copy-config>"))
        seen = await seen_while_held(hold, copy, admin, "candidate")
        assert len(seen) == COUNT + 1  # not half-copied
        assert await names(admin, "candidate") == await names(admin, "running")
        assert len(await names(admin, "candidate")) == COUNT

    asyncio.run(scenario())


def test_a_refused_copy_keeps_its_error(server, monkeypatch):
    """The write check in slices refuses as it did at once: access-denied naming the
    node, candidate unchanged."""
    async def scenario():
        admin = Client(server)
        rules = OPER_RULES.replace(
            "<rule><name>all</name>",
            "<rule><name>no-s7</name><module-name>cmp-agent-pki</module-name>"
            f"<path xmlns:pki='{PKI}'>/pki:pki/pki:cmp-session[pki:name='s7']</path>"
            "<access-operations>delete</access-operations><action>deny</action></rule>"
            "<rule><name>all</name>")
        assert ok(await admin.rpc(edit(rules)))
        assert ok(await admin.rpc(edit(f"<pki xmlns='{PKI}'>{entries(COUNT)}</pki>")))
        assert ok(await admin.rpc("<commit/>"))
        oper = Client(server, "oper")
        inline = (f"<copy-config><target><candidate/></target><source><config>{OPER_RULES}"
                  f"<pki xmlns='{PKI}'>{entries(5)}</pki></config></source></copy-config>")
        reply = await oper.rpc(inline)
        assert tag(reply) == "access-denied"
        assert reply.findtext(f".//{{{NC}}}error-path").strip().endswith(
            "/pki:cmp-session[pki:name='s7']")
        assert "may not delete" in reply.findtext(f".//{{{NC}}}error-message")
        assert len(await names(admin, "candidate")) == COUNT

    asyncio.run(scenario())


def test_a_large_inline_config_is_checked_while_other_sessions_are_answered(
        server, monkeypatch):
    """A copy-config of an inline <config> of COUNT entries: its conversion and check
    (as an edit's) in slices; another session is answered meanwhile; an invalid value
    in it is the same rpc-error as before."""
    monkeypatch.setattr(server.datastores, "_inline", not_at_once)

    async def scenario():
        admin, b = Client(server), Client(server)
        hold = Hold()
        held_after(monkeypatch, server.datastores, "_inline_steps", hold)
        inline = (f"<copy-config><target><candidate/></target><source><config>"
                  f"<pki xmlns='{PKI}'>{entries(COUNT, 'n')}</pki></config></source>"
                  "</copy-config>")
        copy = asyncio.ensure_future(admin.rpc(inline))
        assert await seen_while_held(hold, copy, b, "candidate") == []
        assert len(await names(b, "candidate")) == COUNT
        bad = inline.replace("<name>n7</name>",
                             "<name>n7</name><auto-update><enabled>1</enabled></auto-update>")
        reply = await admin.rpc(bad)
        assert tag(reply) == "invalid-value"
        assert "n7" in reply.findtext(f".//{{{NC}}}error-path")

    asyncio.run(scenario())


def test_a_copy_redone_when_candidate_is_replaced_meanwhile(server, monkeypatch):
    """An edit of candidate lands while the copy is held: the copy is made again on
    the edited candidate (the write check compared against it), and wins, being last;
    after EDIT_ATTEMPTS such overtakings it gives up and changes nothing."""
    async def scenario():
        admin, oper = await configured(server)
        hold = Hold()
        held_after(monkeypatch, Access, "prune_steps", hold)
        copy = asyncio.ensure_future(oper.rpc(
            "<copy-config><target><candidate/></target><source><running/></source>"
            "</copy-config>"))
        await hold.started()
        other = Client(server)
        assert ok(await other.rpc(edit(
            f"<pki xmlns='{PKI}'><cmp-session><name>meanwhile</name></cmp-session></pki>")))
        assert "meanwhile" in await names(admin, "candidate")
        hold.go()
        assert ok(await copy)
        assert len(hold.threads) == 2
        assert "meanwhile" not in await names(admin, "candidate")

        hold = Hold()
        held_after(monkeypatch, Access, "prune_steps", hold)
        copy = asyncio.ensure_future(oper.rpc(
            "<copy-config><target><candidate/></target><source><running/></source>"
            "</copy-config>"))
        for attempt in range(store_module.EDIT_ATTEMPTS):
            await hold.started()
            hold.begun.clear()
            assert ok(await other.rpc(edit(f"<pki xmlns='{PKI}'><cmp-session><name>again"
                                           f"{attempt}</name></cmp-session></pki>")))
            hold.go(1)
        reply = await copy
        assert tag(reply) == "operation-failed"
        assert "send the copy-config again" in reply.findtext(f".//{{{NC}}}error-message")
        assert "again2" in await names(admin, "candidate")

    asyncio.run(scenario())


def test_candidate_set_back_to_running_after_a_failed_commit_lets_others_be_answered(
        server, monkeypatch):
    """discard-changes while a commit is written sets candidate to the commit's
    tree; the commit's write fails: candidate is copied from running in slices,
    another session answered meanwhile (seeing candidate whole), then replaced at
    once; the client is told operation-failed as before."""
    async def scenario():
        a, b = Client(server), Client(server)
        assert ok(await a.rpc(edit(f"<pki xmlns='{PKI}'>{entries(COUNT)}</pki>")))
        assert ok(await a.rpc("<commit/>"))
        assert ok(await a.rpc(edit(f"<pki xmlns='{PKI}'><cmp-session><name>new</name>"
                                   "</cmp-session></pki>")))
        loop, written = asyncio.get_running_loop(), asyncio.Event()
        write_go = threading.Event()

        def failing_write(prepared):
            loop.call_soon_threadsafe(written.set)
            assert write_go.wait(10)
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(server.datastores, "_persist", failing_write)
        commit = asyncio.ensure_future(a.rpc("<commit/>"))
        await asyncio.wait_for(written.wait(), 10)
        assert ok(await b.rpc("<discard-changes/>"))
        assert "new" in await names(b, "candidate")  # the tree being written
        hold = Hold()
        real_copy = store_module.copy_steps

        def held_copy(el, *args, **kwargs):
            result = yield from real_copy(el, *args, **kwargs)
            if el is server.datastores._trees["running"] and not hold.threads:
                yield hold
            return result

        monkeypatch.setattr(store_module, "copy_steps", held_copy)
        write_go.set()
        await hold.started()
        assert len(await names(b, "candidate")) == COUNT + 1  # the commit's, whole
        assert not commit.done()
        hold.go()
        reply = await commit
        monkeypatch.undo()
        assert tag(reply) == "operation-failed"
        assert "nothing was committed" in reply.findtext(f".//{{{NC}}}error-message")
        assert hold.off_the_loop()
        assert len(await names(b, "candidate")) == COUNT
        assert "new" not in await names(b, "candidate")
        assert not server.datastores.candidate_dirty

    asyncio.run(scenario())


@pytest.mark.parametrize("source", ["candidate", "inline"])
def test_validate_lets_other_sessions_be_answered(server, monkeypatch, source):
    """<validate> (RFC 6241 section 8.6) of candidate or of an inline <config>: the
    full validation in a worker thread (an inline config converted in slices
    first), held there while another session's get-config is answered; an invalid
    configuration is the same data-missing naming the node as before."""
    async def scenario():
        a, b = Client(server), Client(server)
        body = f"<pki xmlns='{PKI}'>{entries(COUNT)}</pki>"
        assert ok(await a.rpc(edit(body)))
        request = ("<validate><source><candidate/></source></validate>" if source == "candidate"
                   else f"<validate><source><config>{body}</config></source></validate>")
        hold = Hold()
        real = store_module.validate_tree

        def held(*args):
            hold()
            return real(*args)

        monkeypatch.setattr(store_module, "validate_tree", held)
        monkeypatch.setattr(server.datastores, "_inline", not_at_once)
        validating = asyncio.ensure_future(a.rpc(request))
        assert await seen_while_held(hold, validating, b, "running") == []
        bad = (f"<pki xmlns='{PKI}'><cmp-session><name>s7</name>"
               "<entity>nope</entity></cmp-session></pki>")
        assert ok(await a.rpc(edit(bad)))
        reply = await a.rpc(request if source == "candidate" else
                            f"<validate><source><config>{bad}</config></source></validate>")
        assert tag(reply) == "data-missing"
        assert "s7" in reply.findtext(f".//{{{NC}}}error-path")

    asyncio.run(scenario())


def test_discard_changes_lets_other_sessions_be_answered(server, monkeypatch):
    """<discard-changes> (RFC 6241 section 8.3.4.2): the copy of running made in
    slices, held in a worker thread while another session's get-config is answered
    and sees candidate whole (as edited); then candidate is running, not modified."""
    async def scenario():
        a, b = Client(server), Client(server)
        assert ok(await a.rpc(edit(f"<pki xmlns='{PKI}'>{entries(COUNT)}</pki>")))
        assert ok(await a.rpc("<commit/>"))
        assert ok(await a.rpc(edit(f"<pki xmlns='{PKI}'>{entries(3, 'x')}</pki>")))
        hold = Hold()
        real_copy = store_module.copy_steps

        def held_copy(el, *args, **kwargs):
            result = yield from real_copy(el, *args, **kwargs)
            if el is server.datastores._trees["running"]:
                yield hold
            return result

        monkeypatch.setattr(store_module, "copy_steps", held_copy)
        discard = asyncio.ensure_future(a.rpc("<discard-changes/>"))
        assert len(await seen_while_held(hold, discard, b, "candidate")) == COUNT + 3
        assert await names(b, "candidate") == await names(b, "running")
        assert not server.datastores.candidate_dirty and not server.candidate_editors

    asyncio.run(scenario())


@pytest.mark.parametrize("request_body", [
    "<get-config><source><running/></source></get-config>",
    "<get><filter type='subtree'><pki xmlns='urn:cmp-agent:yang:cmp-agent-pki'/></filter></get>",
])
def test_a_restricted_user_s_read_is_pruned_while_others_are_answered(
        server, monkeypatch, request_body):
    """oper's get-config or get (RFC 8341 section 3.4.5): its copy of running and
    the prune of what oper may not read made in slices, held after the prune while
    the admin's get-config is answered; oper's reply then has every entry."""
    async def scenario():
        admin, oper = await configured(server)
        monkeypatch.setattr(Access, "prune", not_at_once)
        hold = Hold()
        held_after(monkeypatch, Access, "prune_steps", hold)
        reading = asyncio.ensure_future(oper.rpc(request_body))
        await hold.started()
        assert len(await names(admin, "running")) == COUNT
        assert not reading.done()
        hold.go()
        reply = await reading
        assert hold.off_the_loop()
        assert len(reply.xpath("//p:cmp-session", namespaces={"p": PKI})) == COUNT

    asyncio.run(scenario())
