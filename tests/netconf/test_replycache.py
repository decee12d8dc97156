"""The serialized ``<get-config>`` reply cache (agent/netconf/replycache.py).

Every way a datastore changes must show in the next ``<get-config>``: edit,
commit, discard-changes, confirmed-commit rollback (timeout, cancel, session
end), copy-config and delete-config of startup. Cached answers are byte for
byte what the uncached path writes, and differ by with-defaults mode and
filter. ``<get>`` is never cached (it carries state data).
"""

from __future__ import annotations

import asyncio

import pytest
from lxml import etree

from agent.netconf.framing import Framing, frame
from agent.netconf.replycache import serialize_in_reply
from agent.netconf.session import RpcReceived, Session
from memory_server import NC, MemoryClient

PKI = "urn:cmp-agent:yang:cmp-agent-pki"


class Client(MemoryClient):
    async def rpc(self, body: str) -> etree._Element:
        """The reply, which must not be an error."""
        reply = await super().rpc(body)
        assert reply.find(f".//{{{NC}}}rpc-error") is None, etree.tostring(reply)
        return reply


def edit(name: str, operation: str = "merge") -> str:
    return (f"<edit-config><target><candidate/></target><config><pki xmlns='{PKI}' "
            f"xmlns:nc='{NC}'><cmp-session nc:operation='{operation}'><name>{name}</name>"
            "</cmp-session></pki></config></edit-config>")


def get_config(source: str = "running", extra: str = "") -> str:
    return f"<get-config><source><{source}/></source>{extra}</get-config>"


async def names(client: Client, source: str = "running") -> list[str]:
    reply = await client.rpc(get_config(source))
    return reply.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI})


def _canonical(reply: bytes) -> tuple:
    """Names (namespace + local), attributes and text of every element; not prefixes."""
    def shape(el: etree._Element) -> tuple:
        return (el.tag, sorted(el.attrib.items()), el.text, [shape(c) for c in el])
    xml = reply[:-6] if reply.endswith(b"]]>]]>") else reply[reply.index(b"<"):-4]  # chunked
    return shape(etree.fromstring(xml))


@pytest.mark.parametrize("base", ["base:1.0", "base:1.1"])
def test_reply_equals_the_uncached_serialization(model, tmp_path, base):
    """The splice in Session.reply gives the bytes that appending the element
    gives, in either framing; with an rpc attribute in another namespace (copied
    onto the reply) lxml may re-prefix appended elements, so there the XML is compared."""
    capability = f"urn:ietf:params:netconf:{base}"
    session = Session(1, [capability])
    session.receive_data(frame(f'<hello xmlns="{NC}"><capabilities><capability>{capability}'
                               "</capability></capabilities></hello>".encode(),
                               Framing.END_OF_MESSAGE))
    assert session.framing.value == base
    data = etree.fromstring(f'<data xmlns="{NC}"><pki xmlns="{PKI}"><cmp-session>'
                            "<name>s&amp;1</name></cmp-session></pki>"
                            '<x xmlns="urn:example">y</x></data>')
    # unqualified attributes are written directly, every character libxml2 escapes
    for value in ("7", "a&amp;b&lt;c&gt;d&quot;e'f&#10;g&#13;h&#9;i \u00e9\u20ac\U0001f600 ]]&gt;"):
        plain = etree.fromstring(f'<rpc xmlns="{NC}" message-id="{value}" x="1"><get-config/>'
                                 "</rpc>")
        request = RpcReceived(plain, plain[0])
        expected = session.reply(request, etree.fromstring(etree.tostring(data)))
        assert session.reply(request, serialize_in_reply(data)) == expected
    odd = etree.fromstring(f'<rpc xmlns="{NC}" xmlns:ex="urn:example" message-id="8" '
                           f'ex:trace="a&lt;ok/&gt;b"><get-config/></rpc>')
    request = RpcReceived(odd, odd[0])
    expected = session.reply(request, etree.fromstring(etree.tostring(data)))
    assert _canonical(session.reply(request, serialize_in_reply(data))) == _canonical(expected)


def test_get_config_sees_every_change_of_a_datastore(server):
    async def scenario():
        a = Client(server)
        assert await names(a) == []
        await a.rpc(edit("one"))
        assert await names(a, "candidate") == ["one"]          # edit of candidate
        assert await names(a) == []                              # running unchanged
        await a.rpc("<commit/>")
        assert await names(a) == ["one"]                         # commit
        await a.rpc(edit("two"))
        assert await names(a, "candidate") == ["one", "two"]
        await a.rpc("<discard-changes/>")
        assert await names(a, "candidate") == ["one"]            # discard-changes
        await a.rpc(edit("one", "delete"))
        await a.rpc("<commit/>")
        assert await names(a) == []                              # delete + commit
        assert await names(a, "startup") == []
        await a.rpc(edit("boot"))
        await a.rpc("<commit/>")
        await a.rpc("<copy-config><target><startup/></target><source><running/></source>"
                    "</copy-config>")
        assert await names(a, "startup") == ["boot"]             # copy-config to startup
        await a.rpc("<delete-config><target><startup/></target></delete-config>")
        assert await names(a, "startup") == []                   # delete-config

    asyncio.run(scenario())


def test_confirmed_commit_rollbacks_show_in_get_config(server):
    async def scenario():
        a, b = Client(server), Client(server)
        await a.rpc(edit("keep"))
        await a.rpc("<commit/>")
        # cancel-commit
        await a.rpc(edit("tentative"))
        await a.rpc("<commit><confirmed/></commit>")
        assert await names(b) == ["keep", "tentative"]
        assert await names(b, "candidate") == ["keep", "tentative"]
        await a.rpc("<cancel-commit/>")
        assert await names(b) == ["keep"]
        assert await names(b, "candidate") == ["keep"]
        # timeout
        await a.rpc(edit("short-lived"))
        await a.rpc("<commit><confirmed/><confirm-timeout>1</confirm-timeout></commit>")
        assert await names(b) == ["keep", "short-lived"]
        while server.confirm is not None:
            await asyncio.sleep(0.05)
        assert await names(b) == ["keep"]
        # the issuing session ends
        await a.rpc(edit("orphan"))
        await a.rpc("<commit><confirmed/></commit>")
        assert await names(b) == ["keep", "orphan"]
        a.close()
        await server.rollback_ended()
        assert await names(b) == ["keep"]

    asyncio.run(scenario())


def test_with_defaults_modes_and_filters_are_separate_entries(server):
    async def scenario():
        a = Client(server)
        await a.rpc(edit("s1"))
        await a.rpc(edit("s2"))
        await a.rpc("<commit/>")
        wd = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
        for _ in range(2):  # the second round is answered from the cache
            full = await a.rpc(get_config())
            explicit = await a.rpc(get_config(extra=f'<with-defaults xmlns="{wd}">explicit'
                                                    "</with-defaults>"))
            assert full.find(f".//{{{PKI}}}file-format") is not None       # a default
            assert explicit.find(f".//{{{PKI}}}file-format") is None
            one = await a.rpc(get_config(extra=(
                f'<filter type="subtree"><pki xmlns="{PKI}"><cmp-session><name>s2</name>'
                "</cmp-session></pki></filter>")))
            assert one.xpath("//p:cmp-session/p:name/text()", namespaces={"p": PKI}) == ["s2"]
            # the same XPath text, different namespace bindings of the prefix
            hit = await a.rpc(get_config(extra=(
                f'<filter xmlns:p="{PKI}" type="xpath" select="/p:pki/p:cmp-session"/>')))
            # (urn:example has no pki: the filter names nothing, an error, not the cached hit)
            miss = etree.fromstring(await a.raw(get_config(extra=(
                '<filter xmlns:p="urn:example" type="xpath" select="/p:pki/p:cmp-session"/>'))))
            assert len(hit.findall(f".//{{{PKI}}}cmp-session")) == 2
            assert miss.find(f".//{{{PKI}}}cmp-session") is None
            assert "names no node of the data model" in miss.findtext(f".//{{{NC}}}error-message")
            # ... also when the prefix is declared on an ancestor of the filter
            for namespace, found in ((PKI, 2), ("urn:example", 0)):
                reply = etree.fromstring(await a.raw(
                    f'<get-config xmlns:p="{namespace}"><source><running/></source>'
                    '<filter type="xpath" select="/p:pki/p:cmp-session"/></get-config>'))
                assert len(reply.findall(f".//{{{PKI}}}cmp-session")) == found
                assert (reply.find(f".//{{{NC}}}rpc-error") is None) == bool(found)

    asyncio.run(scenario())


def test_cached_reply_carries_each_requests_attributes(server):
    async def scenario():
        a = Client(server)
        first = etree.fromstring(await a.raw(get_config(), ' xmlns:ex="urn:example" ex:tag="x"'))
        second = etree.fromstring(await a.raw(get_config(), ' xmlns:ex="urn:example" ex:tag="y"'))
        assert first.get("message-id") == "1" and second.get("message-id") == "2"
        assert first.get("{urn:example}tag") == "x" and second.get("{urn:example}tag") == "y"
        assert etree.tostring(first[0]) == etree.tostring(second[0])

    asyncio.run(scenario())


def test_get_is_not_cached(server):
    calls = []

    def provider():
        calls.append(1)
        el = etree.Element(f"{{{PKI}}}pki", nsmap={None: PKI})
        etree.SubElement(el, f"{{{PKI}}}cmp-statistics")
        return [el]

    server.add_state_provider(provider)

    async def scenario():
        a = Client(server)
        await a.rpc("<get/>")
        await a.rpc("<get/>")
        assert len(calls) == 2
        await a.rpc(get_config())
        assert len(calls) == 2  # get-config never asks state providers

    asyncio.run(scenario())
