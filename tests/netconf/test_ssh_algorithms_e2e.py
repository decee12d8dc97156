"""The SSH algorithms the agent offers and accepts: OpenSSH 9's server defaults, not
asyncssh's wider list (real SSH clients on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import subprocess

import asyncssh
import pytest


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("kex", [
    "diffie-hellman-group14-sha1",  # SHA-1 exchange hash; not offered by OpenSSH 9's sshd
    "rsa2048-sha256",               # RFC 4432: a new 2048-bit RSA key per connection, before login
])
def test_weak_or_costly_key_exchanges_are_not_offered(agent, kex):
    async def scenario():
        # the server closes as soon as it sees no common exchange: the client may see that
        # before it has compared the lists itself
        with pytest.raises((asyncssh.KeyExchangeFailed, asyncssh.ConnectionLost)):
            await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                   password=agent.password, known_hosts=None, client_keys=None,
                                   agent_path=None, kex_algs=[kex])

    run(scenario())


def ssh(agent, tmp_path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-vv", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "-F", "/dev/null", *options,
         "-p", str(agent.port), "admin@127.0.0.1", "-s", "netconf"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_openssh_finds_no_sha1_key_exchange(agent, tmp_path):
    done = ssh(agent, tmp_path, "-o", "KexAlgorithms=diffie-hellman-group14-sha1")
    assert "no matching key exchange method found" in done.stderr, done.stderr[-2000:]


def test_openssh_client_defaults_still_agree(agent, tmp_path):
    """ssh -G's defaults (OpenSSH's) meet the agent's list: the key exchange completes
    (the login itself fails: BatchMode offers no password)."""
    done = ssh(agent, tmp_path)
    assert "SSH2_MSG_NEWKEYS received" in done.stderr, done.stderr[-2000:]


@pytest.fixture(scope="module")
def rsa_client_key(agent, tmp_path_factory):
    """An RSA key of admin's (an operator's ~/.ssh/id_rsa), in the agent's authorized_keys."""
    key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    keys_dir = agent.state_dir / "authorized_keys"
    keys_dir.mkdir(exist_ok=True)
    with (keys_dir / "admin").open("ab") as f:
        f.write(key.export_public_key())
    return key


@pytest.mark.parametrize("signature, accepted", [
    ("rsa-sha2-256", True), ("rsa-sha2-512", True),
    ("ssh-rsa", False),  # SHA-1: refused by OpenSSH's sshd since 8.8 (PubkeyAcceptedAlgorithms)
])
def test_rsa_public_key_logins_need_a_sha2_signature(agent, rsa_client_key, signature, accepted):
    async def scenario():
        login = asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                 client_keys=[rsa_client_key], known_hosts=None,
                                 agent_path=None, preferred_auth="publickey",
                                 signature_algs=[signature])
        if accepted:
            conn = await login
            conn.close()
            await conn.wait_closed()
        else:
            with pytest.raises(asyncssh.PermissionDenied):
                await login

    run(scenario())
