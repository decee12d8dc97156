"""Issue 9: nothing one client sends stalls the agent for the others.

Each reproducer of the issue is sent on one session while a second session's
``<get-config>`` must still be answered (within a generous 5 s: the bound
only tells "answered" from "stalled behind the hostile request"); then the
hostile request gets its own prompt, clear answer.
"""

from __future__ import annotations

import asyncio

import pytest

from nc_helpers import NC_NS, PKI_NS, RawClient, error_tags
from test_filterrun import RUNAWAY

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
GET_CONFIG = "<get-config><source><running/></source></get-config>"
#: the agent of this module gives an XPath filter 2 s (the default is 10 s)
AGENT_ARGS = ("--xpath-filter-seconds", "2")


def run(coro):
    return asyncio.run(coro)


async def assert_other_session_answers(other: RawClient, message_id: str = "other") -> None:
    """The second session's get-config is answered while the first one's request runs."""
    other.send(f'<rpc xmlns="{NC_NS}" message-id="{message_id}">{GET_CONFIG}</rpc>')
    reply = await asyncio.wait_for(other.receive(), 5)
    assert reply.get("message-id") == message_id
    assert reply.find(f"{{{NC_NS}}}data") is not None


def test_rpc_with_100000_attributes_is_refused_without_stalling_others(agent):
    async def scenario():
        hostile = await RawClient.open(agent, (BASE_10, BASE_11))
        other = await RawClient.open(agent, (BASE_10, BASE_11))
        attrs = " ".join(f'a{i}="v"' for i in range(100_000))
        hostile.send(f'<rpc xmlns="{NC_NS}" message-id="1" {attrs}>{GET_CONFIG}</rpc>')
        await assert_other_session_answers(other)
        reply = await hostile.receive()
        assert error_tags(reply) == ["malformed-message"]
        assert "attributes" in reply.findtext(f".//{{{NC_NS}}}error-message")
        reply = await hostile.rpc(GET_CONFIG, "2")  # the session goes on
        assert reply.find(f"{{{NC_NS}}}data") is not None
        await hostile.close()
        await other.close()

    run(scenario())


def filter_rpc(message_id: str, operation: str, filter_xml: str) -> str:
    source = "<source><running/></source>" if operation == "get-config" else ""
    return (f'<rpc xmlns="{NC_NS}" message-id="{message_id}"><{operation}>{source}'
            f"{filter_xml}</{operation}></rpc>")


@pytest.mark.parametrize("operation", ["get", "get-config"])
def test_backtracking_regex_in_an_xpath_filter_is_refused(agent, operation):
    """EXSLT is off: re:test, which stalled everything 19 s, is not a function."""
    async def scenario():
        hostile = await RawClient.open(agent, (BASE_10, BASE_11))
        other = await RawClient.open(agent, (BASE_10, BASE_11))
        hostile.send(filter_rpc("1", operation, (
            '<filter type="xpath" xmlns:re="http://exslt.org/regular-expressions" select="'
            "/*[re:test('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!','^(a+)+$')]\"/>")))
        await assert_other_session_answers(other)
        reply = await asyncio.wait_for(hostile.receive(), 5)
        assert error_tags(reply) == ["invalid-value"]
        assert "EXSLT" in reply.findtext(f".//{{{NC_NS}}}error-message")
        await hostile.close()
        await other.close()

    run(scenario())


@pytest.mark.parametrize("operation", ["get", "get-config"])
def test_runaway_xpath_filter_is_stopped_while_others_are_served(agent, operation):
    async def scenario():
        hostile = await RawClient.open(agent, (BASE_10, BASE_11))
        other = await RawClient.open(agent, (BASE_10, BASE_11))
        hostile.send(filter_rpc("1", operation, f'<filter type="xpath" select="{RUNAWAY}"/>'))
        for n in range(3):  # during the whole budget
            await assert_other_session_answers(other, f"other-{n}")
            await asyncio.sleep(0.3)
        reply = await asyncio.wait_for(hostile.receive(), 30)
        assert error_tags(reply) == ["operation-failed"]
        assert "filter too expensive" in reply.findtext(f".//{{{NC_NS}}}error-message")
        hostile.send(filter_rpc("2", operation,
                                f'<filter type="xpath" xmlns:p="{PKI_NS}" select="/p:pki"/>'))
        reply = await asyncio.wait_for(hostile.receive(), 30)
        assert reply.find(f"{{{NC_NS}}}data") is not None  # the session goes on
        await hostile.close()
        await other.close()

    run(scenario())


def test_subtree_filter_with_a_million_siblings_is_refused(agent):
    async def scenario():
        hostile = await RawClient.open(agent, (BASE_10, BASE_11))
        other = await RawClient.open(agent, (BASE_10, BASE_11))
        hostile.send(filter_rpc("1", "get-config", (
            f'<filter type="subtree"><pki xmlns="{PKI_NS}">' + "<a/>" * 1_000_000
            + "</pki></filter>")))
        await assert_other_session_answers(other)
        reply = await asyncio.wait_for(hostile.receive(), 30)
        assert error_tags(reply) == ["too-big"]
        await hostile.close()
        await other.close()

    run(scenario())


@pytest.mark.parametrize("body,tag", [
    (f'<key-pair-create xmlns="{PKI_NS}"><name>k1</name>junk</key-pair-create>', "bad-element"),
    (f'<key-pair-create xmlns="{PKI_NS}">junk<name>k1</name></key-pair-create>', "bad-element"),
    ("<lock>junk<target><candidate/></target></lock>", "bad-element"),
    ("<kill-session><session-id>\u00b2</session-id></kill-session>", "invalid-value"),
])
def test_junk_in_rpc_input_is_a_client_error(agent, body, tag):
    async def scenario():
        client = await RawClient.open(agent, (BASE_10, BASE_11))
        reply = await client.rpc(body)
        assert error_tags(reply) == [tag]
        assert "internal error" not in reply.findtext(f".//{{{NC_NS}}}error-message")
        await client.close()

    run(scenario())
