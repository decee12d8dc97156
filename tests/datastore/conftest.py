"""Fixtures for the datastore tests: the real model, datastores in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.datastore import Datastores, SecretBox
from agent.model import Model


@pytest.fixture(scope="session")
def model() -> Model:
    return Model.load()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def ds(model: Model, state_dir: Path) -> Datastores:
    return Datastores(model, state_dir, SecretBox.open(state_dir))
