"""The agent's lean SSH connections (agent/netconf/sshlean.py) with real clients.

OpenSSH's ``ssh -s netconf``, asyncssh and ncclient (paramiko) log in with
each cipher family the agent offers (chacha20-poly1305, AES-GCM, AES-CTR with
an encrypt-then-MAC and a plain MAC), rekey while a reply of several packets
is under way, and get every reply whole; the agent sends them no
``SSH_MSG_IGNORE`` packets. In process: AES-GCM's keys set up once per key
exchange, the keep-alive timer, the connections of another asyncssh release
(asyncssh's own), and the cipher check on asyncssh's encryption objects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest
from asyncssh.connection import SSHServerConnection
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE
from asyncssh.encryption import get_encryption, get_encryption_params
from asyncssh.packet import PacketDecodeError
from lxml import etree

from agent.netconf import sshlean
from agent.netconf.server import start_ssh_server
from agent.netconf.users import UserStore
from nc_helpers import NC_NS, connect

ROOT = Path(__file__).resolve().parents[2]
MONITORING_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
EOM = b"]]>]]>"
#: (cipher, MAC or None for an AEAD cipher): every family asyncssh offers by default
CIPHERS = [
    ("chacha20-poly1305@openssh.com", None),
    ("aes128-gcm@openssh.com", None),
    ("aes256-gcm@openssh.com", None),
    ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-512"),
]
#: the model's YANG text (49 KB): a reply of two SSH packets and more
GET_SCHEMA = (f'<get-schema xmlns="{MONITORING_NS}"><identifier>cmp-agent-pki</identifier>'
              "</get-schema>")
GET_CONFIG = "<get-config><source><running/></source></get-config>"

pytestmark = pytest.mark.skipif(not sshlean.applies(),
                                reason=f"the overrides are for asyncssh {sshlean.CHECKED_ASYNCSSH}")


def _rpc(message_id: int, body: str) -> bytes:
    return f'<rpc message-id="{message_id}" xmlns="{NC_NS}">{body}</rpc>'.encode() + EOM


def _hello() -> bytes:
    return (f'<hello xmlns="{NC_NS}"><capabilities><capability>'
            "urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>").encode() + EOM


def _schema_text() -> str:
    return (ROOT / "agent" / "yang" / "cmp-agent-pki.yang").read_text()


def _check_schema_reply(reply: bytes) -> None:
    root = etree.fromstring(reply)
    data = root.find(f"{{{MONITORING_NS}}}data")
    assert data is not None, reply[:300]
    assert data.text == _schema_text()


# --- OpenSSH -------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client (apt-get install "
                    "openssh-client)")
@pytest.mark.parametrize(("cipher", "mac"), CIPHERS)
def test_openssh_client_with_each_cipher_gets_whole_replies_without_ignore_packets(
        agent, client_key, tmp_path, cipher, mac):
    log_file = tmp_path / "ssh.log"

    async def scenario() -> None:
        options = [f"Ciphers={cipher}", "RekeyLimit=16K", "StrictHostKeyChecking=no",
                   "UserKnownHostsFile=/dev/null", "BatchMode=yes", "IdentitiesOnly=yes"]
        if mac:
            options.append(f"MACs={mac}")
        with log_file.open("wb") as log:
            ssh = await asyncio.create_subprocess_exec(
                "ssh", "-vvv", "-F", "/dev/null", "-p", str(agent.port), "-i", str(client_key),
                *(arg for option in options for arg in ("-o", option)),
                "-s", "admin@127.0.0.1", "netconf",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
            try:
                async with asyncio.timeout(60):
                    ssh.stdin.write(_hello())
                    assert b"<session-id>" in await ssh.stdout.readuntil(EOM)
                    # ssh rekeys after 16 KB: within this reply
                    ssh.stdin.write(_rpc(1, GET_SCHEMA))
                    _check_schema_reply((await ssh.stdout.readuntil(EOM))[:-len(EOM)])
                    ssh.stdin.write(_rpc(2, GET_CONFIG))
                    assert b"<data" in await ssh.stdout.readuntil(EOM)
                    ssh.stdin.write(_rpc(3, "<close-session/>"))
                    assert b"<ok/>" in await ssh.stdout.readuntil(EOM)
                    ssh.stdin.close()
                    await ssh.wait()
            finally:
                if ssh.returncode is None:
                    ssh.kill()
                    await ssh.wait()

    asyncio.run(scenario())
    log = log_file.read_text(errors="replace")
    assert f"kex: server->client cipher: {cipher} MAC: {mac or '<implicit>'}" in log
    assert log.count("SSH2_MSG_KEXINIT sent") >= 2, "no rekeying: the test tests less"
    assert "Received SSH2_MSG_IGNORE" not in log


# --- asyncssh ------------------------------------------------------------------------------------

@pytest.fixture
def asyncssh_packets(caplog):
    """asyncssh's packet log (debug level 3) of this process, i.e. of the client."""
    asyncssh.set_debug_level(3)
    caplog.set_level(logging.DEBUG, logger="asyncssh")
    yield caplog
    asyncssh.set_debug_level(1)


@pytest.mark.parametrize(("cipher", "mac"), CIPHERS)
def test_asyncssh_client_with_each_cipher_rekeying_gets_whole_replies_without_ignore_packets(
        agent, client_key, asyncssh_packets, cipher, mac):
    async def scenario() -> None:
        async with asyncssh.connect(
                "127.0.0.1", agent.port, username="admin", client_keys=[str(client_key)],
                known_hosts=None, agent_path=None, encryption_algs=[cipher],
                mac_algs=[mac] if mac else (), rekey_bytes=1024) as conn:
            assert conn.get_extra_info("recv_cipher") == cipher
            writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
            assert b"<session-id>" in await reader.readuntil(EOM)
            writer.write(_hello())
            for message_id in range(1, 7):  # a rekey every few RPCs (bytes sent count)
                writer.write(_rpc(message_id, GET_SCHEMA))
                _check_schema_reply((await reader.readuntil(EOM))[:-len(EOM)])
                writer.write(_rpc(10 + message_id, GET_CONFIG))
                assert b"<data" in await reader.readuntil(EOM)

    asyncio.run(scenario())
    messages = [r.getMessage() for r in asyncssh_packets.records]
    assert sum("Completed key exchange" in m for m in messages) >= 3
    # the log shows ignore packets where there are some: the client's own (stock asyncssh)
    assert any("Sent MSG_IGNORE" in m for m in messages)
    assert any("Received MSG_CHANNEL_DATA" in m for m in messages)
    assert not [m for m in messages if "Received MSG_IGNORE" in m]


# --- ncclient (paramiko) -------------------------------------------------------------------------

def test_ncclient_negotiates_aes_ctr_and_survives_a_rekey(agent):
    with connect(agent) as m:
        transport = m._session._transport
        assert transport.remote_cipher == "aes128-ctr"  # paramiko's first choice the agent has
        for _ in range(2):
            assert m.get_schema("cmp-agent-pki").data == _schema_text()
            transport.renegotiate_keys()
            assert "<data" in m.get_config(source="running").data_xml


# --- in process: the server's side of the connection ------------------------------------------

async def _in_process(server, state_dir: Path, scenario, **client_options) -> object:
    """Serve *server* over SSH in this process; run ``scenario(writer, reader, connection)``
    with a NETCONF session open (hellos exchanged), where *connection* is the server's."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    (state_dir / "host_key").write_bytes(host_key.export_private_key())
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (state_dir / "authorized_keys").mkdir(exist_ok=True)
    (state_dir / "authorized_keys" / "admin").write_bytes(client_key.export_public_key())
    acceptor = await start_ssh_server(server, UserStore(state_dir), "127.0.0.1", 0,
                                      [str(state_dir / "host_key")])
    try:
        port = acceptor.sockets[0].getsockname()[1]
        async with asyncssh.connect("127.0.0.1", port, username="admin",
                                    client_keys=[client_key], known_hosts=None,
                                    agent_path=None, **client_options) as conn:
            writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
            await reader.readuntil(EOM)
            writer.write(_hello())
            [record] = server.sessions.values()
            return await scenario(writer, reader, record.transport._chan.get_connection())
    finally:
        acceptor.close()


async def _sessions_ended(server) -> None:
    """Wait until *server* has no session (a channel's loss is reported after it)."""
    for _ in range(200):
        if not server.sessions:
            break
        await asyncio.sleep(0.01)
    assert not server.sessions


async def _get_config(writer, reader, message_id: int = 1) -> None:
    writer.write(_rpc(message_id, GET_CONFIG))
    assert b"<data" in await reader.readuntil(EOM)


def test_another_asyncssh_release_keeps_asyncssh_connections(server, tmp_path, monkeypatch):
    """Only the release the overrides were checked against gets them (sshlean.applies)."""
    async def connection_type(writer, reader, connection) -> type:
        await _get_config(writer, reader)
        return type(connection)

    assert asyncio.run(_in_process(server, tmp_path, connection_type)
                       ) is sshlean.LeanServerConnection
    monkeypatch.setattr(asyncssh, "__version__", "2.24.2")
    assert asyncio.run(_in_process(server, tmp_path, connection_type)) is SSHServerConnection


def test_a_channel_of_a_connection_left_as_asyncssh_made_it_stays_asyncssh_s(
        server, tmp_path, monkeypatch):
    """Only a lean connection's channels become lean (their writes use its send_data)."""
    async def types(writer, reader, connection) -> tuple[type, type]:
        await _get_config(writer, reader)
        [record] = server.sessions.values()
        return type(connection), type(record.transport._chan)

    monkeypatch.setattr(sshlean, "lean_connection", lambda conn: False)
    assert asyncio.run(_in_process(server, tmp_path, types)) == (
        SSHServerConnection, asyncssh.SSHServerChannel)


def test_a_release_without_the_internals_used_still_starts_the_agent():
    """An asyncssh whose internal names sshlean imports moved (here: GCMCipher gone) is
    another release: the server module imports, nothing is overridden."""
    code = ("import asyncssh.crypto.cipher\n"
            "del asyncssh.crypto.cipher.GCMCipher\n"
            "from agent.netconf import server, sshlean\n"
            "print(sshlean.applies(), sshlean.lean_connection(object()),"
            " sshlean.lean_channel(object()), sshlean.no_chained_iv(None))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"] * 4


def test_aes_gcm_keys_of_every_key_exchange_are_set_up_once(server, tmp_path):
    async def scenario(writer, reader, connection) -> None:
        keys = set()
        for message_id in range(1, 9):
            await _get_config(writer, reader, message_id)
            assert type(connection._send_encryption._cipher) is sshlean.KeyedGCMCipher
            assert type(connection._recv_encryption._cipher) is sshlean.KeyedGCMCipher
            keys.add(connection._recv_encryption._cipher._key)
        assert len(keys) >= 2  # rekeyed meanwhile

    # the client rekeys after every 1 KB it sends: every few RPCs
    asyncio.run(_in_process(server, tmp_path, scenario,
                            encryption_algs=["aes256-gcm@openssh.com"], rekey_bytes=1024))


@pytest.mark.parametrize("cipher", [b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com"])
def test_keyed_aes_gcm_encrypts_and_decrypts_as_asyncssh_does(cipher):
    key_size, iv_size, *_ = get_encryption_params(cipher)
    key, iv = os.urandom(key_size), os.urandom(iv_size)
    stock, keyed = get_encryption(cipher, key, iv), get_encryption(cipher, key, iv)
    sshlean._keyed(keyed)
    assert type(keyed._cipher) is sshlean.KeyedGCMCipher
    receiver = get_encryption(cipher, key, iv)
    sshlean._keyed(receiver)
    for seq in range(3):
        header, packet = (96).to_bytes(4, "big"), os.urandom(96)
        sent = stock.encrypt_packet(seq, header, packet)
        assert keyed.encrypt_packet(seq, header, packet) == sent
        first, _ = receiver.decrypt_header(seq, sent[0][:16], 4)
        assert receiver.decrypt_packet(seq, first, sent[0][16:], 4, sent[1]) == packet
    # the next nonce does not open the last packet again
    assert receiver.decrypt_packet(3, first, sent[0][16:], 4, sent[1]) is None
    # the joined forms the connection uses: the same bytes, the same nonces
    sealer, opener = get_encryption(cipher, key, iv), get_encryption(cipher, key, iv)
    for enc in (sealer, opener):
        sshlean._keyed(enc)
        assert sshlean._keyed_gcm(enc) is enc._cipher
    assert sshlean._keyed_gcm(get_encryption(cipher, key, iv)) is None  # not keyed
    stock = get_encryption(cipher, key, iv)
    for seq in range(3):
        header, packet = (96).to_bytes(4, "big"), os.urandom(96)
        sent = b"".join(stock.encrypt_packet(seq, header, packet))
        assert sealer._cipher.seal_packet(header, packet) == sent
        assert opener._cipher.open_packet(sent[:16], sent[16:]) == packet
    assert opener._cipher.open_packet(sent[:16], sent[16:]) is None


@pytest.mark.parametrize("counter", [0, 1, 2**32 - 1, 2**64 - 2])
def test_keyed_aes_gcm_nonce_counts_on_and_wraps_as_asyncssh_does(counter):
    # RFC 5647 section 7.1: the 64-bit invocation counter counts modulo 2**64
    cipher = b"aes128-gcm@openssh.com"
    key_size, *_ = get_encryption_params(cipher)
    key, iv = os.urandom(key_size), os.urandom(4) + counter.to_bytes(8, "big")
    stock, keyed = get_encryption(cipher, key, iv), get_encryption(cipher, key, iv)
    sshlean._keyed(keyed)
    for seq in range(4):
        header, packet = (32).to_bytes(4, "big"), os.urandom(32)
        assert keyed._cipher.seal_packet(header, packet) == b"".join(
            stock.encrypt_packet(seq, header, packet))
        assert keyed._cipher._iv == stock._cipher._iv
    assert keyed._cipher._iv[4:] == ((counter + 4) % 2**64).to_bytes(8, "big")


def test_keepalive_timer_is_not_replaced_per_read_and_still_sends_requests(
        server, tmp_path, asyncssh_packets):
    def requests_received() -> int:  # by the client: keepalive@openssh.com
        return sum("Received MSG_GLOBAL_REQUEST" in r.getMessage()
                   for r in asyncssh_packets.records)

    async def scenario(writer, reader, connection) -> None:
        loop = asyncio.get_running_loop()
        await _get_config(writer, reader, 1)
        timer = connection._keepalive_timer
        await _get_config(writer, reader, 2)
        assert connection._keepalive_timer is timer  # a read only notes the time
        assert connection._last_received <= loop.time()
        # fired before the interval since the last read: moved on, no request
        connection._keepalive_timer_callback()
        assert connection._keepalive_timer is not timer
        assert connection._keepalive_timer.when() == pytest.approx(
            connection._last_received + 60)
        assert connection._keepalive_count == 0
        assert requests_received() == 0
        # set_keepalive with a shorter interval: the timer is set again at once
        connection.set_keepalive(interval=0.05, count_max=3)
        assert connection._keepalive_timer.when() <= loop.time() + 0.05
        # idle: requests go out and the client's answers reset the count
        for _ in range(200):
            await asyncio.sleep(0.05)
            if requests_received() >= 2:
                break
        assert requests_received() >= 2
        await _get_config(writer, reader, 3)  # the session is still there

    asyncio.run(_in_process(server, tmp_path, scenario))


@pytest.mark.parametrize(("cipher", "mac", "expected"), [
    (b"chacha20-poly1305@openssh.com", b"", True),
    (b"aes128-gcm@openssh.com", b"", True),
    (b"aes256-ctr", b"hmac-sha2-256", True),
    (b"aes128-ctr", b"hmac-sha2-256-etm@openssh.com", True),
    # CBC keeps RFC 4251 section 9.3.1's countermeasure, with either kind of MAC
    (b"aes128-cbc", b"hmac-sha2-256", False),
    (b"aes256-cbc", b"hmac-sha2-512-etm@openssh.com", False),
    # a cipher that is neither (arcfour: a stream cipher with no mode object) keeps it too
    (b"arcfour256", b"hmac-sha2-256", False),
])
def test_countermeasure_skipped_only_without_chained_iv(cipher, mac, expected):
    key_size, iv_size, _, mac_key_size, _, etm = get_encryption_params(cipher, mac)
    encryption = get_encryption(cipher, os.urandom(key_size), os.urandom(iv_size), mac,
                                os.urandom(mac_key_size), etm)
    assert sshlean.no_chained_iv(encryption) is expected
    assert not sshlean.no_chained_iv(None)


@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
def test_server_initiated_rekeys_amid_replies_keep_every_packet_whole(
        server, tmp_path, monkeypatch, cipher):
    """The agent rekeys (its own rekey limit made small) while replies of several packets
    go out, with strict kex: every reply whole, new keys each time (AES-GCM's keyed
    once), and no ignore packet sent, before or after a rekey."""
    sent_ignore = []
    stock_send = SSHServerConnection.send_packet

    def send_packet(self, pkttype, *args, handler=None):  # what asyncssh really sends
        if pkttype == MSG_IGNORE:
            sent_ignore.append(args)
        stock_send(self, pkttype, *args, handler=handler)

    monkeypatch.setattr(SSHServerConnection, "send_packet", send_packet)

    async def scenario(writer, reader, connection) -> None:
        assert connection._strict_kex  # both asyncssh ends offer kex-strict (CVE-2023-48795)
        connection._rekey_bytes = 20_000  # the server rekeys after 20 KB: within a reply
        encryptions = {id(connection._send_encryption)}
        for message_id in range(1, 5):
            writer.write(_rpc(message_id, GET_SCHEMA))
            _check_schema_reply((await reader.readuntil(EOM))[:-len(EOM)])
            await _get_config(writer, reader, 10 + message_id)
            encryptions.add(id(connection._send_encryption))
            if "gcm" in cipher:
                assert type(connection._send_encryption._cipher) is sshlean.KeyedGCMCipher
                assert type(connection._recv_encryption._cipher) is sshlean.KeyedGCMCipher
        assert len(encryptions) >= 3  # rekeyed more than once
        assert connection.get_extra_info("send_cipher") == cipher

    asyncio.run(_in_process(server, tmp_path, scenario, encryption_algs=[cipher]))
    assert sent_ignore == []


def test_keepalive_disconnects_a_client_that_stops_answering(server, tmp_path):
    """Client-alive semantics: a client that no longer reads (so never answers
    keepalive@openssh.com) is disconnected after count_max unanswered requests, as
    asyncssh's own timer does, and its NETCONF session is closed."""
    async def scenario(writer, reader, connection) -> None:
        await _get_config(writer, reader)
        client = writer.channel.get_connection()
        lost, stock_lost = [], connection.connection_lost

        def connection_lost(exc):
            lost.append((exc, connection._keepalive_count))
            stock_lost(exc)

        connection.connection_lost = connection_lost
        client._transport.pause_reading()  # silent from now on: nothing read, nothing answered
        connection.set_keepalive(interval=0.05, count_max=2)
        await asyncio.wait_for(connection.wait_closed(), 30)
        exc, count = lost[0]
        assert isinstance(exc, asyncssh.ConnectionLost)
        assert str(exc) == "Client not responding to keepalive"
        assert count == 3  # closed at the third firing: count_max requests went unanswered
        await _sessions_ended(server)
        client._transport.resume_reading()

    asyncio.run(_in_process(server, tmp_path, scenario))


@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                                    "aes128-ctr"])
def test_channel_data_and_ignore_packets_are_taken_directly_others_by_asyncssh(
        server, tmp_path, monkeypatch, cipher):
    """After authentication the client's ``SSH_MSG_IGNORE`` and channel data (one each
    per RPC from asyncssh's client) skip asyncssh's packet dispatch; the client's
    rekeys (``MSG_KEXINIT``, ``MSG_NEWKEYS``), window adjusts and EOF still go through
    it, decrypted once, and every reply and the EOF's end of session arrive."""
    generic = []
    stock_recv = SSHServerConnection._recv_packet

    def recv_packet(self):  # asyncssh's own dispatch, with the packet's type noted
        generic.append(self._recv_encryption.decrypt_packet()[1]
                       if type(self._recv_encryption) is sshlean._Decrypted else None)
        return stock_recv(self)

    monkeypatch.setattr(SSHServerConnection, "_recv_packet", recv_packet)

    async def scenario(writer, reader, connection) -> None:
        before = len(generic)
        writer.write(_rpc(1, GET_SCHEMA))  # 49 KB back: the client adjusts its window
        _check_schema_reply((await reader.readuntil(EOM))[:-len(EOM)])
        for message_id in range(2, 42):
            await _get_config(writer, reader, message_id)
        taken = generic[before:]
        assert connection._recv_encryption is not None
        assert type(connection._recv_encryption) is not sshlean._Decrypted
        writer.write_eof()
        for _ in range(200):
            if not server.sessions:
                break
            await asyncio.sleep(0.01)
        assert not server.sessions  # EOF (by asyncssh's dispatch) ended the session
        return taken

    taken = asyncio.run(_in_process(server, tmp_path, scenario, encryption_algs=[cipher],
                                    rekey_bytes=2048))
    assert MSG_IGNORE not in taken and 94 not in taken  # MSG_CHANNEL_DATA
    assert {20, 21} <= set(taken)  # MSG_KEXINIT, MSG_NEWKEYS: rekeyed meanwhile
    assert None not in taken  # nothing decrypted twice (or not at all)


def test_a_packet_failing_its_mac_after_login_is_refused_as_asyncssh_does(server, tmp_path):
    """A corrupted packet after authentication: the server disconnects with asyncssh's
    MAC error, the session ends."""
    async def scenario(writer, reader, connection) -> None:
        await _get_config(writer, reader)
        client = writer.channel.get_connection()
        closed, stock_close, stock_send = [], connection._force_close, client._send
        connection._force_close = lambda exc: (closed.append(exc), stock_close(exc))
        client._send = lambda data: stock_send(data[:-1] + bytes([data[-1] ^ 1]))
        writer.write(_rpc(2, GET_CONFIG))
        client._send = stock_send
        await asyncio.wait_for(client.wait_closed(), 10)
        assert isinstance(closed[0], asyncssh.MACError), closed
        await _sessions_ended(server)

    asyncio.run(_in_process(server, tmp_path, scenario,
                            encryption_algs=["aes128-gcm@openssh.com"]))


def test_packets_asyncssh_would_log_go_through_its_dispatch(server, tmp_path, monkeypatch,
                                                            caplog):
    """At asyncssh's debug level 2 a channel's data is logged (``Received N data bytes``),
    so it is not taken directly."""
    asyncssh.set_debug_level(2)
    caplog.set_level(logging.DEBUG, logger="asyncssh")
    try:
        asyncio.run(_in_process(server, tmp_path, lambda w, r, c: _get_config(w, r)))
    finally:
        asyncssh.set_debug_level(1)
    received = [r.getMessage() for r in caplog.records if "data byte" in r.getMessage()]
    assert any(m.startswith("[conn=") and "Received" in m for m in received), received


@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
def test_a_reply_of_one_packet_is_sent_directly_others_and_rekeys_by_asyncssh(
        server, tmp_path, monkeypatch, cipher):
    """A reply that fits the window and one packet is encrypted and sent without
    asyncssh's channel buffer and send_packet; a larger one, a rekey the server's
    byte limit makes due, and the packets of the key exchange go through asyncssh."""
    through_asyncssh = []
    stock_send = SSHServerConnection.send_packet

    def send_packet(self, pkttype, *args, handler=None):
        through_asyncssh.append(pkttype)
        stock_send(self, pkttype, *args, handler=handler)

    monkeypatch.setattr(SSHServerConnection, "send_packet", send_packet)

    async def scenario(writer, reader, connection) -> list[list[int]]:
        seen = []
        for message_id in range(1, 4):
            through_asyncssh.clear()
            await _get_config(writer, reader, message_id)
            seen.append(list(through_asyncssh))
        through_asyncssh.clear()
        writer.write(_rpc(4, GET_SCHEMA))
        _check_schema_reply((await reader.readuntil(EOM))[:-len(EOM)])
        seen.append(list(through_asyncssh))
        connection._rekey_bytes = connection._rekey_bytes_sent  # due at the next packet
        through_asyncssh.clear()
        await _get_config(writer, reader, 5)
        seen.append(list(through_asyncssh))
        return seen

    small1, small2, small3, large, rekeyed = asyncio.run(
        _in_process(server, tmp_path, scenario, encryption_algs=[cipher]))
    assert small1 == small2 == small3 == []
    assert large.count(94) >= 2  # MSG_CHANNEL_DATA, one per packet
    assert 94 in rekeyed and 20 in rekeyed  # the reply after MSG_KEXINIT


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "asyncssh"])
@pytest.mark.parametrize("pkttype", [MSG_IGNORE, MSG_CHANNEL_DATA], ids=["ignore", "data"])
def test_a_packet_without_padding_after_login_is_refused_as_asyncssh_does(
        server, tmp_path, monkeypatch, pkttype, lean):
    """RFC 4253 section 6 wants at least four bytes of random padding. A packet with
    none (its MAC valid) leaves asyncssh an empty payload: it closes the connection
    (the packet's decode error). A lean connection does the same, it does not take
    such an ignore packet or channel data directly (the RPC is not answered)."""
    if not lean:
        monkeypatch.setattr(sshlean, "lean_connection", lambda conn: False)

    async def scenario(writer, reader, connection) -> None:
        await _get_config(writer, reader)
        assert (type(connection) is sshlean.LeanServerConnection) is lean
        client = writer.channel.get_connection()
        closed, stock_close = [], connection._force_close
        connection._force_close = lambda exc: (closed.append(exc), stock_close(exc))
        stock_send = client.send_packet

        def send_unpadded(sent_type, *args, handler=None):  # padding_length 0, no padding
            if sent_type != pkttype:
                return stock_send(sent_type, *args, handler=handler)
            if sent_type == MSG_IGNORE:  # data enough to fill AES-GCM's first block
                args = ((16).to_bytes(4, "big") + os.urandom(16),)
            packet = b"\0" + bytes((sent_type,)) + b"".join(args)
            seq = client._send_seq
            data, mac = client._send_encryption.encrypt_packet(
                seq, len(packet).to_bytes(4, "big"), packet)
            client._send(data + mac)
            client._send_seq = (seq + 1) & 0xffffffff
            return None

        client.send_packet = send_unpadded
        writer.write(_rpc(2, GET_CONFIG))  # its ignore packet or its data unpadded
        with pytest.raises(asyncssh.ConnectionLost):  # closed, the RPC not answered
            await asyncio.wait_for(reader.readuntil(EOM), 10)
        assert isinstance(closed[0], PacketDecodeError), closed
        await _sessions_ended(server)

    asyncio.run(_in_process(server, tmp_path, scenario,
                            encryption_algs=["aes128-gcm@openssh.com"]))
