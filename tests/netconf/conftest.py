"""Fixtures of the in-memory NETCONF server tests (see memory_server.py)."""

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
