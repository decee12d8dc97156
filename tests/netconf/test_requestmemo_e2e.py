"""The repeated-request memo end to end: the real server, in this process, over SSH
(asyncssh clients, base:1.0 and base:1.1 framing). With the memo on and off the replies
are byte for byte the same and so are the counters; a memo hit still sees every change
of running and of access control; the memo stays within its bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest

from agent.datastore import Datastores, SecretBox
from agent.netconf import session as session_module
from agent.netconf.nacm import Nacm, bootstrap
from agent.netconf.server import NetconfServer, start_ssh_server
from agent.netconf.users import NO_PASSWORD, UserEntry, UserStore

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
WD = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
BASE_1_0, BASE_1_1 = "urn:ietf:params:netconf:base:1.0", "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
USERS = {"admin": (), "oper": ("operators",), "reader": ("readers",), "nogc": ("nogc",)}

GET = "<get-config><source><running/></source>{}</get-config>"
PKI_FILTER = f'<filter type="subtree"><pki xmlns="{PKI}"><file-format/></pki></filter>'
SMALL = f'<rpc message-id="{{id}}" xmlns="{NC}">{GET.format(PKI_FILTER)}</rpc>'


class Client:
    """One NETCONF session over SSH, framing its messages itself (RFC 6242)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, writer, reader, chunked: bool):
        self.conn, self.writer, self.reader, self.chunked = conn, writer, reader, chunked

    async def request(self, message: bytes) -> bytes:
        """Send *message*; the bytes of the reply, framing removed."""
        if self.chunked:
            self.writer.write(b"\n#%d\n%s\n##\n" % (len(message), message))
            parts = []
            while True:
                assert await asyncio.wait_for(self.reader.readuntil(b"\n#"), 30) == b"\n#"
                line = await asyncio.wait_for(self.reader.readuntil(b"\n"), 30)
                if line == b"#\n":
                    return b"".join(parts)
                parts.append(await asyncio.wait_for(self.reader.readexactly(int(line)), 30))
        self.writer.write(message + EOM)
        return (await asyncio.wait_for(self.reader.readuntil(EOM), 30))[:-len(EOM)]

    async def ok(self, body: str) -> bytes:
        reply = await self.request(f'<rpc message-id="0" xmlns="{NC}">{body}</rpc>'.encode())
        assert b"<rpc-error>" not in reply, reply
        return reply


class Agent:
    """A NetconfServer served over SSH in this process, with the users of :data:`USERS`."""

    def __init__(self, model, state_dir: Path, memo_entries: int):
        state_dir.mkdir()
        self.state_dir = state_dir
        datastores = Datastores(model, state_dir, SecretBox.open(state_dir))
        bootstrap(datastores)
        users = UserStore(state_dir)
        users.write({name: UserEntry(name, NO_PASSWORD, groups) for name, groups in USERS.items()})
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        users.keys_dir.mkdir(mode=0o700)
        for name in USERS:
            (users.keys_dir / name).write_bytes(self.key.export_public_key())
        self.users = users
        self.server = NetconfServer(model, datastores, memo_entries=memo_entries,
                                    nacm=Nacm(model, datastores, groups_of=users.groups,
                                              users_version=users.version))
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        (state_dir / "host_key").write_bytes(host_key.export_private_key())

    @asynccontextmanager
    async def serving(self):
        acceptor = await start_ssh_server(self.server, self.users, "127.0.0.1", 0,
                                          [str(self.state_dir / "host_key")])
        self.port = acceptor.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            acceptor.close()

    @asynccontextmanager
    async def session(self, user: str = "admin", base: str = BASE_1_0):
        async with asyncssh.connect("127.0.0.1", self.port, username=user,
                                    client_keys=[self.key], known_hosts=None,
                                    agent_path=None) as conn:
            writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
            await asyncio.wait_for(reader.readuntil(EOM), 30)
            writer.write(f'<hello xmlns="{NC}"><capabilities><capability>{base}</capability>'
                         f"</capabilities></hello>".encode() + EOM)
            yield Client(conn, writer, reader, base == BASE_1_1)


def _run(model, tmp_path: Path, memo_entries: int,
         scenario: Callable[[Agent], Awaitable[object]]) -> object:
    agent = Agent(model, tmp_path / f"memo-{memo_entries}", memo_entries)

    async def main():
        async with agent.serving():
            return await scenario(agent)

    return asyncio.run(main())


@pytest.fixture
def parses(monkeypatch) -> list[int]:
    """Counts the messages the sessions parse (a memo hit is not parsed)."""
    count = [0]
    parse = session_module.parse_client_message

    def counted(data):
        count[0] += 1
        return parse(data)

    monkeypatch.setattr(session_module, "parse_client_message", counted)
    return count


# --- the same replies and counters with the memo on and off --------------------------------------
def _get(attributes: str, body: str = GET.format(PKI_FILTER), rpc: str = "rpc") -> str:
    return f"<{rpc} {attributes}>{body}</{rpc}>"


CORPUS = [
    # each with "{id}" where the message-ids go; sent with the ids of IDS, in turn
    SMALL,
    _get(f"xmlns='{NC}' message-id='{{id}}'"),                                  # single quotes
    _get(f'xmlns:nc="{NC}" message-id="{{id}}"',
         f'<nc:get-config><nc:source><nc:running/></nc:source><nc:filter type="subtree">'
         f'<pki xmlns="{PKI}"><file-format/></pki></nc:filter></nc:get-config>', "nc:rpc"),
    _get(f'xmlns="{NC}" xmlns:ex="urn:example" ex:trace="t" message-id="{{id}}"'),
    _get(f'xmlns="{NC}" xmlns:ex="urn:example" ex:trace="t&lt;1" message-id="{{id}}"'),
    _get(f'xmlns="{NC}" note=\'message-id="x"\' message-id="{{id}}"'),
    _get(f'xmlns="{NC}" note=\'a message-id="{{id}}"\' message-id="5"'),         # not the id
    _get(f'xmlns="{NC}" a="x>y" message-id="{{id}}" b=\'"\''),
    '<?xml version="1.0" encoding="UTF-8"?>\n' + SMALL,
    "\n  " + _get(f'\n message-id =\t"{{id}}"  xmlns="{NC}" '),
    _get(f'message-id="{{id}}" xmlns="{NC}"', GET.format("")),                  # no filter
    _get(f'message-id="{{id}}" xmlns="{NC}"',
         GET.format(f'<filter type="subtree"><nacm xmlns="{NACM}"/></filter>')),
    _get(f'message-id="{{id}}" xmlns="{NC}"',
         GET.format(f'<filter xmlns:n="{NACM}" type="xpath" select="/n:nacm/n:groups"/>')),
    _get(f'message-id="{{id}}" xmlns="{NC}"', GET.format(
        f'<with-defaults xmlns="{WD}">report-all-tagged</with-defaults>')),
    _get(f'message-id="{{id}}" xmlns="{NC}"', GET.format(f'<with-defaults xmlns="{WD}">trim'
                                                         "</with-defaults>" + PKI_FILTER)),
    _get(f'message-id="{{id}}" xmlns="{NC}"',
         GET.format(f'<filter type="subtree"><pki xmlns="{PKI}"><nope/></pki></filter>')),
    _get(f'message-id="{{id}}" xmlns="{NC}"', "<get-config><source><url/></source></get-config>"),
    _get(f'message-id="{{id}}" xmlns="{NC}"', "<get-config><source><running/></source>"
                                               "text</get-config>"),
    _get(f'message-id="{{id}}" message-id="{{id}}" xmlns="{NC}"'),             # duplicate
    _get(f'xmlns:nc="{NC}" xmlns="{NC}" nc:message-id="{{id}}"'),             # no message-id
    _get(f'message-id="{{id}}" xmlns="{NC}"', f"<get>{PKI_FILTER}</get>"),
]
#: safe ids (memo hits after the first), and ids the memo does not take
IDS = ["1", "2", "x.Y:z-_9", "1", "a b", "&lt;7&gt;", "\u00e9", "", "1" * 65, "3"]


async def _corpus(agent: Agent) -> tuple[list[bytes], list[tuple], tuple]:
    replies, counters = [], []
    for base in (BASE_1_0, BASE_1_1):
        async with agent.session(base=base) as client:
            for message in CORPUS:
                for mid in IDS:
                    replies.append(await client.request(message.replace("{id}", mid).encode()))
            [record] = agent.server.sessions.values()
            c = record.protocol.counters
            counters.append((c.in_rpcs, c.in_bad_rpcs, c.out_rpc_errors))
        while agent.server.sessions:
            await asyncio.sleep(0.01)
    st, nacm = agent.server.statistics, agent.server.nacm.counters
    return replies, counters, (st.in_rpcs, st.in_bad_rpcs, st.out_rpc_errors,
                               nacm.denied_operations)


def test_replies_and_counters_are_the_same_with_the_memo_on_and_off(model, tmp_path, parses):
    on = _run(model, tmp_path, 256, _corpus)
    on_parses, parses[0] = parses[0], 0
    off = _run(model, tmp_path, 0, _corpus)
    assert on == off
    replies, _, _ = on
    assert sum(b"<rpc-error>" in r for r in replies) and sum(b"<data" in r for r in replies)
    assert b'message-id="x.Y:z-_9"' in replies[2] and b'message-id="a b"' in replies[4]
    # the memo answered many without parsing them
    assert parses[0] - on_parses > len(CORPUS) * 2


# --- a hit sees what changed ------------------------------------------------------------------------
def _names(reply: bytes) -> list[bytes]:
    import re
    return re.findall(rb"<name>([^<]*)</name>", reply)


async def _commit(client: Client, config: str) -> None:
    await client.ok(f"<edit-config><target><candidate/></target><config>{config}</config>"
                    "</edit-config>")
    await client.ok("<commit/>")


SESSION = f'<pki xmlns="{PKI}"><cmp-session><name>{{}}</name></cmp-session></pki>'
SESSIONS = _get(f'message-id="{{}}" xmlns="{NC}"', GET.format(
    f'<filter type="subtree"><pki xmlns="{PKI}"><cmp-session/></pki></filter>'))


def _rules(group: str, rule: str) -> str:
    """A rule-list of one *rule* for *group*."""
    return (f'<nacm xmlns="{NACM}"><rule-list><name>{group}</name><group>{group}</group>'
            f"<rule><name>r</name>{rule}</rule></rule-list></nacm>")


def test_a_hit_sees_commits_and_access_control(model, tmp_path, parses):
    async def scenario(agent: Agent) -> None:
        async with agent.session() as admin, agent.session("oper", BASE_1_1) as oper, \
                agent.session("reader") as reader, agent.session("nogc") as nogc:
            for mid in (1, 11):  # kept the second time it is answered
                assert _names(await admin.request(SESSIONS.format(mid).encode())) == []
            await _commit(admin, SESSION.format("s1"))
            before = parses[0]
            assert _names(await admin.request(SESSIONS.format(2).encode())) == [b"s1"]
            assert parses[0] == before  # a hit, and the commit shows
            # another user's session: the same bytes, that user's view
            await _commit(admin, _rules("readers", f'<path xmlns:pki="{PKI}">/pki:pki</path>'
                                        "<access-operations>read</access-operations>"
                                        "<action>deny</action>"))
            before = parses[0]
            assert _names(await oper.request(SESSIONS.format(3).encode())) == [b"s1"]
            assert _names(await reader.request(SESSIONS.format(4).encode())) == []
            assert parses[0] == before
            # a rule change: the next hit of oper's shows it
            await _commit(admin, _rules("operators", "<module-name>cmp-agent-pki</module-name>"
                                        "<access-operations>read</access-operations>"
                                        "<action>deny</action>"))
            assert _names(await oper.request(SESSIONS.format(5).encode())) == []
            assert _names(await admin.request(SESSIONS.format(6).encode())) == [b"s1"]
            # may not invoke get-config: the full path's access-denied, counted once
            await _commit(admin, _rules("nogc", "<module-name>ietf-netconf</module-name>"
                                        "<rpc-name>get-config</rpc-name><action>deny</action>"))
            denied = agent.server.nacm.counters.denied_operations
            reply = await nogc.request(SESSIONS.format("7").encode())
            assert b"<error-tag>access-denied</error-tag>" in reply
            assert b'message-id="7"' in reply
            assert agent.server.nacm.counters.denied_operations == denied + 1
            [record] = [r for r in agent.server.sessions.values() if r.user == "nogc"]
            assert (record.protocol.counters.in_rpcs, record.protocol.counters.out_rpc_errors
                    ) == (1, 1)

    _run(model, tmp_path, 256, scenario)


# --- bounds ---------------------------------------------------------------------------------------
def test_the_memo_stays_within_its_bounds(model, tmp_path, parses):
    async def scenario(agent: Agent) -> None:
        memo = agent.server.request_memo
        assert memo is not None
        async with agent.session() as client:
            for n in range(12):
                for mid in (n, 100 + n):  # kept the second time it is answered
                    await client.request(_get(f'message-id="{mid}" xmlns="{NC}" poll="{n}"')
                                         .encode())
                assert len(memo) == min(n + 1, 4)
            large = _get(f'message-id="{{}}" xmlns="{NC}" pad="{"x" * 4096}"')
            before = parses[0]
            for n in range(3):
                reply = await client.request(large.format(n).encode())
                assert b"<data" in reply
            assert parses[0] == before + 3 and len(memo) == 4
            assert all(len(key[0]) + len(key[1]) < 4096 for key in memo._entries)

    _run(model, tmp_path, 4, scenario)


def test_a_hit_whose_answer_fails_runs_the_query_once(model, tmp_path, monkeypatch):
    """An XPath filter over its time budget on a memo hit (the data grew since) is
    answered with that error as the full path answers it, without a second evaluation."""
    from agent.netconf import filterrun

    calls: list[str] = []
    evaluate = filterrun.FilterRunner._xpath

    async def budgeted(self, data, select, namespaces):
        calls.append(select)
        if len(calls) > 2:  # the budget runs out from the third request on
            raise filterrun.too_expensive(f"XPath evaluation exceeded {self.xpath_seconds:g} s")
        return await evaluate(self, data, select, namespaces)

    monkeypatch.setattr(filterrun.FilterRunner, "_xpath", budgeted)
    message = (f'<rpc message-id="{{id}}" xmlns="{NC}">'
               + GET.format(f'<filter xmlns:n="{NACM}" type="xpath" select="/n:nacm/n:groups"/>')
               + "</rpc>")

    def scenario(memo_entries: int) -> tuple[int, list[bytes], int]:
        calls.clear()

        async def run(agent: Agent):
            async with agent.session() as client:
                replies = []
                for i in range(4):
                    agent.server.config_replies._entries.clear()  # as after a change of running
                    replies.append(await client.request(message.replace("{id}", str(i)).encode()))
                return replies, len(agent.server.request_memo or ())

        replies, kept = _run(model, tmp_path, memo_entries, run)
        return len(calls), replies, kept

    evaluations, replies, kept = scenario(256)
    assert kept == 1  # the second answer kept it: the third and fourth are hits
    assert evaluations == 4  # one per request: a failed hit is not evaluated again
    assert (evaluations, replies) == scenario(0)[:2]  # the very replies of the full path
    assert [b"<rpc-error>" in r for r in replies] == [False, False, True, True]
    assert b'message-id="3"' in replies[3] and b"exceeded" in replies[3]
