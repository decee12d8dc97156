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
        with pytest.raises(asyncssh.KeyExchangeFailed):
            await asyncssh.connect("127.0.0.1", agent.port, username="admin",
                                   password=agent.password, known_hosts=None, client_keys=None,
                                   agent_path=None, kex_algs=[kex])

    run(scenario())


def test_openssh_client_defaults_still_agree(agent, tmp_path):
    """ssh -G's defaults (OpenSSH's) meet the agent's list: the key exchange completes
    (the login itself fails: BatchMode offers no password)."""
    done = subprocess.run(
        ["ssh", "-vv", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "-F", "/dev/null",
         "-p", str(agent.port), "admin@127.0.0.1", "-s", "netconf"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "SSH2_MSG_NEWKEYS received" in done.stderr, done.stderr[-2000:]
