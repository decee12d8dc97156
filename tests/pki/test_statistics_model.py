"""The statistics code and the YANG module's grouping cmp-statistics name the same things:
what the Python types and lists allow is what the compiled model allows."""

from __future__ import annotations

import typing

import pytest

from agent.model import Model
from agent.pki.statistics import LastRequest

STATISTICS = "/cmp-agent-pki:pki/cmp-statistics"


@pytest.fixture(scope="module")
def datamodel():
    return Model.load().datamodel


def enum_of(datamodel, path: str) -> list[str]:
    return list(datamodel.get_data_node(f"{STATISTICS}/{path}").type.enum)


def test_last_request_types_are_the_models(datamodel):
    """last-request/type is a cmp-request-type: an rr and a genm are recorded too."""
    hints = typing.get_type_hints(LastRequest)
    for leaf in ("type", "trigger", "result"):
        assert list(typing.get_args(hints[leaf])) == enum_of(datamodel, f"last-request/{leaf}"), leaf
