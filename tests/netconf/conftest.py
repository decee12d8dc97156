"""Fixtures of the NETCONF tests: the in-memory server (see memory_server.py), an SSH key."""

from pathlib import Path

import asyncssh
import pytest

from agent.datastore import Datastores, SecretBox
from agent.model import Model
from agent.netconf.nacm import bootstrap
from agent.netconf.server import NetconfServer


@pytest.fixture(scope="module")
def model():
    return Model.load()


@pytest.fixture
def server(model, tmp_path):
    """The real server with the real model and datastores, in a new state directory;
    the user admin has full access, as after the agent's first start."""
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    bootstrap(datastores)
    return NetconfServer(model, datastores)


@pytest.fixture(scope="module")
def client_key(agent, tmp_path_factory) -> Path:
    """An ed25519 key of admin's, in the agent's authorized_keys and in a file for ssh -i."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    keys_dir = agent.state_dir / "authorized_keys"
    keys_dir.mkdir(exist_ok=True)
    with (keys_dir / "admin").open("ab") as f:
        f.write(key.export_public_key())
    path = tmp_path_factory.mktemp("client") / "id_ed25519"
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    return path
