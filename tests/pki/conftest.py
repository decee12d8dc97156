"""Fixtures for the PKI tests: configurations committed through real
datastores, so that the YANG module's defaults apply as in the agent."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from lxml import etree

from agent import PKI_NS
from agent.datastore import Datastores, SecretBox
from agent.model import Model
from agent.pki.config import PkiConfig

#: the test PKI's helpers (cmp_mock_pki), as tests/pki_e2e has them
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cmp"))

ENTITY = {"name": "e1", "common-name": "router1"}
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


@pytest.fixture(scope="module")
def model() -> Model:
    return Model.load()


@pytest.fixture
def pki_config(model: Model, tmp_path: Path):
    """Commit ``/pki`` with ENTITY and one session s1 (RFC 7951-style dict),
    then read it back as the agent does; each call starts from empty
    datastores."""
    calls = itertools.count()

    def committed(session: dict) -> dict:
        state = tmp_path / f"pki-config-{next(calls)}"
        datastores = Datastores(model, state, SecretBox.open(state))
        pki = etree.Element(f"{{{PKI_NS}}}pki")
        _append(pki, "entity", ENTITY)
        _append(pki, "cmp-session", {"name": "s1", **session})
        config = etree.Element(f"{{{NC}}}config")
        config.append(pki)
        datastores.edit_config("candidate", config)
        datastores.commit()
        return datastores.running_raw()

    def view(session: dict) -> PkiConfig:
        return PkiConfig.from_raw(committed(session))

    view.committed = committed
    return view


def _append(parent: etree._Element, name: str, value: dict | str) -> None:
    child = etree.SubElement(parent, f"{{{PKI_NS}}}{name}")
    if isinstance(value, dict):
        for key, inner in value.items():
            _append(child, key, inner)
    else:
        child.text = value
