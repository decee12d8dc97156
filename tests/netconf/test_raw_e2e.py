"""End to end at the message level: framing, base:1.0-only clients, bad messages (RFC 6242, 6241)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
from lxml import etree

from nc_helpers import NC_NS, PKI_NS, RawClient, error_field, error_tags

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"


def run(coro):
    return asyncio.run(coro)


def test_base10_only_client_uses_end_of_message_framing(agent):
    async def scenario():
        client = await RawClient.open(agent, (BASE_10,))
        hello = etree.fromstring(client.server_hello)
        assert hello.findtext(f"{{{NC_NS}}}session-id").isdigit()
        reply = await client.rpc("<get-config><source><running/></source></get-config>", "101")
        assert reply.tag == f"{{{NC_NS}}}rpc-reply"
        assert reply.get("message-id") == "101"
        assert reply.find(f"{{{NC_NS}}}data/{{{PKI_NS}}}pki") is not None
        reply = await client.rpc("<close-session/>", "102")
        assert reply.find(f"{{{NC_NS}}}ok") is not None
        assert await client.closed()
        await client.close()

    run(scenario())


def test_base11_client_gets_chunked_replies_and_attributes_back(agent):
    async def scenario():
        client = await RawClient.open(agent, (BASE_10, BASE_11))
        client.send(f'<rpc xmlns="{NC_NS}" xmlns:ex="urn:example" message-id="7" ex:tag="x">'
                    "<get-config><source><running/></source></get-config></rpc>")
        reply = await client.receive()
        # RFC 6241 section 4.2: every attribute of <rpc> comes back on <rpc-reply>
        assert reply.get("message-id") == "7"
        assert reply.get("{urn:example}tag") == "x"
        await client.close()

    run(scenario())


def test_malformed_xml_answers_malformed_message_and_session_goes_on(agent):
    async def scenario():
        client = await RawClient.open(agent, (BASE_10, BASE_11))
        client.send(b"<rpc message-id='1' xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'><get>")
        reply = await client.receive()
        assert error_tags(reply) == ["malformed-message"]
        assert error_field(reply, "error-type") == "rpc"
        reply = await client.rpc("<get-config><source><running/></source></get-config>", "2")
        assert reply.find(f"{{{NC_NS}}}data") is not None
        await client.close()

    run(scenario())


def test_doctype_and_entities_are_refused(agent):
    async def scenario():
        client = await RawClient.open(agent, (BASE_10, BASE_11))
        client.send(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
                    b'<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                    b"<get>&a;</get></rpc>")
        reply = await client.receive()
        assert error_tags(reply) == ["malformed-message"]
        assert "DOCTYPE" in error_field(reply, "error-message")
        await client.close()

    run(scenario())


def test_missing_message_id_is_missing_attribute(agent):
    async def scenario():
        client = await RawClient.open(agent, (BASE_10,))
        client.send(f'<rpc xmlns="{NC_NS}"><get-config><source><running/></source></get-config></rpc>')
        reply = await client.receive()
        assert error_tags(reply) == ["missing-attribute"]
        assert error_field(reply, "error-type") == "rpc"
        info = reply.find(f".//{{{NC_NS}}}error-info")
        assert info.findtext(f"{{{NC_NS}}}bad-attribute") == "message-id"
        assert info.findtext(f"{{{NC_NS}}}bad-element") == "rpc"
        await client.close()

    run(scenario())


def test_broken_chunk_framing_closes_the_session(agent):
    async def scenario():
        client = await RawClient.open(agent, (BASE_10, BASE_11))
        client.send_raw(b"\n#xyz\n<rpc/>\n##\n")
        reply = await client.receive()
        assert error_tags(reply) == ["malformed-message"]
        assert "chunk" in error_field(reply, "error-message")
        assert await client.closed()
        await client.close()

    run(scenario())


def test_rpc_before_hello_closes_the_session(agent):
    async def scenario():
        import asyncssh

        conn = await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                      password=agent.password, known_hosts=None,
                                      client_keys=None, agent_path=None)
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        await reader.readuntil(b"]]>]]>")
        writer.write(f'<rpc xmlns="{NC_NS}" message-id="1"><get/></rpc>]]>]]>'.encode())
        rest = await asyncio.wait_for(reader.read(), 30)
        assert b"rpc-reply" not in rest
        conn.close()

    run(scenario())


def test_wrong_password_is_refused(agent):
    async def scenario():
        import asyncssh
        import pytest

        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                   password="not-the-password", known_hosts=None,
                                   client_keys=None, agent_path=None)

    run(scenario())


def test_public_key_authentication(agent):
    async def scenario():
        import asyncssh

        key = asyncssh.generate_private_key("ssh-ed25519")
        keys_dir = agent.state_dir / "authorized_keys"
        keys_dir.mkdir(exist_ok=True)
        (keys_dir / "admin").write_bytes(key.export_public_key())
        conn = await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                      client_keys=[key], known_hosts=None, agent_path=None,
                                      preferred_auth="publickey")
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        hello = await reader.readuntil(b"]]>]]>")
        assert b"<session-id>" in hello
        conn.close()

    run(scenario())


def test_twenty_concurrent_sessions(agent):
    async def one(i: int) -> str:
        client = await RawClient.open(agent, (BASE_10, BASE_11))
        for n in range(5):
            reply = await client.rpc("<get-config><source><running/></source></get-config>",
                                     f"{i}-{n}")
            assert reply.get("message-id") == f"{i}-{n}"
        sid = etree.fromstring(client.server_hello).findtext(f"{{{NC_NS}}}session-id")
        await client.close()
        return sid

    async def scenario():
        ids = await asyncio.gather(*(one(i) for i in range(20)))
        assert len(set(ids)) == 20

    run(scenario())


def test_a_client_that_never_reads_cannot_grow_the_agent(agent):
    """Flow control: replies to a client that does not read are not queued without
    bound; the agent stops reading that client and serves the others."""

    def rss_mb() -> int:
        status = Path(f"/proc/{agent.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) // 1024

    async def scenario():
        conn = await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                      password=agent.password, known_hosts=None,
                                      client_keys=None, agent_path=None)
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        await reader.readuntil(b"]]>]]>")
        writer.write(f'<hello xmlns="{NC_NS}"><capabilities><capability>{BASE_10}'
                     "</capability></capabilities></hello>]]>]]>".encode())
        before = rss_mb()
        request = f'<rpc message-id="1" xmlns="{NC_NS}"><get/></rpc>]]>]]>'.encode()
        for i in range(4000):
            writer.write(request)  # never read a reply
            if i % 500 == 0:
                await asyncio.sleep(0.05)
        await asyncio.sleep(2)
        grown = rss_mb() - before
        other = await RawClient.open(agent, (BASE_10,))
        reply = await other.rpc("<get-config><source><running/></source></get-config>", "2")
        assert reply.find(f"{{{NC_NS}}}data") is not None
        await other.close()
        conn.close()
        return grown

    assert run(scenario()) < 40  # MB; unbounded queuing grew by ~100 MB for 12,000 requests
