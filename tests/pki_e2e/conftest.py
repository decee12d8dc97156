"""Fixtures of the PKI end-to-end tests: the test PKI and OpenSSL's mock CMP server."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "netconf"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cmp"))

from cmp_mock_pki import MockCmpServer, TestPki  # noqa: E402 (after the path set-up)


@pytest.fixture(scope="module")
def mock_pki(tmp_path_factory):
    return TestPki.create(tmp_path_factory.mktemp("mock-pki"))


@pytest.fixture
def mock(mock_pki):
    server = MockCmpServer(mock_pki)
    yield server
    server.stop()
