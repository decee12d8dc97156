"""Fixtures for the CMP engine tests: a test PKI and OpenSSL's mock CMP server."""

from __future__ import annotations

import pytest
from cmp_mock_pki import MockCmpServer, TestPki


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("cmp-pki"))


@pytest.fixture
def mock_server(pki):
    """A factory: ``mock_server(*openssl_args, rsp_cert=path, mac=True, signer=True,
    srv_cert=path, srv_key=path)`` (the signer's certificate and key default to the PKI's).

    Each server runs ``openssl cmp -port 0`` and is stopped after the test.
    """
    started: list[MockCmpServer] = []

    def start(*extra: str, **kwargs) -> MockCmpServer:
        server = MockCmpServer(pki, *extra, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
