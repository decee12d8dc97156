"""Issue 9: nothing one client sends stalls the agent for the others.

Each reproducer of the issue is sent on one session while a second session's
``<get-config>`` must still be answered (within a generous 5 s: the bound
only tells "answered" from "stalled behind the hostile request"); then the
hostile request gets its own prompt, clear answer.
"""

from __future__ import annotations

import asyncio

from lxml import etree

from nc_helpers import NC_NS, RawClient, error_tags

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
GET_CONFIG = "<get-config><source><running/></source></get-config>"


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
