"""The statistics code and the YANG module's grouping cmp-statistics name the same things:
what the Python types and lists allow is what the compiled model allows."""

from __future__ import annotations

import typing
from datetime import datetime, timezone

import pytest
from lxml import etree

from agent.model import Model
from agent.pki import service, statistics
from agent.pki.statistics import CmpStatistics, LastRequest

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


def children_of(datamodel, path: str) -> list[str]:
    return [child.name for child in datamodel.get_data_node(f"{STATISTICS}/{path}").data_children()]


def test_the_counters_reported_are_the_models(datamodel):
    """SENT_TYPES and its siblings name, in the module's order, the leaves of the grouping
    cmp-statistics: a counter added to the model and not to the list (or the other way
    round) fails here. What the service counts is among them, and a fully filled
    CmpStatistics writes every node of the grouping."""
    assert list(statistics.SENT_TYPES) == children_of(datamodel, "messages-sent")
    assert list(statistics.RECEIVED_TYPES) == children_of(datamodel, "messages-received")
    assert list(statistics.OUTCOMES) == children_of(datamodel, "outcomes")
    assert [*statistics.FAILURE_KINDS, "failure-info"] == children_of(datamodel, "failures")
    assert set(service._COUNTER_NAMES.values()) <= {*statistics.SENT_TYPES,
                                                     *statistics.RECEIVED_TYPES}
    assert set(service._FAILURE_COUNTERS.values()) <= set(statistics.FAILURE_KINDS)

    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stats = CmpStatistics(discontinuity_time=moment, local_certificate_not_after=moment,
                          next_auto_update=moment)
    stats.failure_info["badPOP"] = 1
    stats.last_request = LastRequest("rr", "manual", moment, reason="why",
                                     next_poll_time=moment)

    def names(schema) -> list:
        return [(child.name, names(child) if hasattr(child, "data_children") else [])
                for child in schema.data_children()]

    def written(element) -> list:
        return [(etree.QName(child).localname, written(child)) for child in element]

    assert written(stats.to_xml("cmp-statistics")) == names(datamodel.get_data_node(STATISTICS))
