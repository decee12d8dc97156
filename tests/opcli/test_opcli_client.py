"""agent/netconf/client.py against the real agent over SSH."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest
from lxml import etree

from agent.netconf.client import CAP_BASE_11, NetconfClient, NetconfError, NetconfRpcError

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
PKI = "urn:cmp-agent:yang:cmp-agent-pki"


def run(coro):
    return asyncio.run(coro)


def test_hello_chunked_framing_and_rpcs(agent):
    async def scenario():
        client = await NetconfClient.connect("127.0.0.1", agent.port, "admin", agent.password)
        try:
            assert CAP_BASE_11 in client.server_capabilities
            assert client.session_id and client.session_id.isdigit()
            # RFC 6242 4.1: both sides said base:1.1, so messages are chunked from now on
            assert client.framing.value == "base:1.1"
            replies = []
            for _ in range(3):
                replies.append(await client.rpc("<get-config><source><running/></source></get-config>"))
            assert [r.get("message-id") for r in replies] == ["1", "2", "3"]
            assert all(r.find(f"{{{NC}}}data") is not None for r in replies)
            big = "x" * 70000  # more than one SSH packet each way
            with pytest.raises(NetconfRpcError):
                await client.rpc(f'<edit-config><target><candidate/></target><config>'
                                 f'<pki xmlns="{PKI}"><cmp-session><name>{big}</name>'
                                 f"</cmp-session></pki></config></edit-config>")
            ok = await client.rpc(etree.fromstring(f'<discard-changes xmlns="{NC}"/>'))
            assert ok.find(f"{{{NC}}}ok") is not None
        finally:
            await client.close()

    run(scenario())


def test_rpc_errors_are_typed_with_their_fields(agent):
    async def scenario():
        client = await NetconfClient.connect("127.0.0.1", agent.port, "admin", agent.password)
        try:
            with pytest.raises(NetconfRpcError) as err:
                await client.rpc(f'<cmp-initial-request xmlns="{PKI}"><session-name>nope'
                                 "</session-name></cmp-initial-request>")
            (e,) = err.value.errors
            assert e.tag == "invalid-value" and e.type == "application" and e.severity == "error"
            assert "nope" in e.message and "commit" in e.message
            assert e.path and "nope" in e.path and e.path_namespaces == {"pki": PKI}
            assert err.value.reply.tag == f"{{{NC}}}rpc-reply"
            # the session is still usable
            await client.rpc("<get-config><source><running/></source></get-config>")
        finally:
            await client.close()

    run(scenario())


def test_a_wrong_password_or_a_closed_session_is_reported(agent):
    with pytest.raises(asyncssh.PermissionDenied):
        run(NetconfClient.connect("127.0.0.1", agent.port, "admin", "wrong-password"))

    async def closed():
        client = await NetconfClient.connect("127.0.0.1", agent.port, "admin", agent.password)
        await client.close()
        with pytest.raises((NetconfError, OSError, asyncssh.Error)):
            await client.rpc("<get-config><source><running/></source></get-config>", timeout=10)

    run(closed())
