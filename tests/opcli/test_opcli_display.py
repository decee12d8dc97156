"""``display pki cmp statistics``: every leaf of the module's statistics grouping is shown."""

from __future__ import annotations

import itertools
import re

from lxml import etree
from yangson.datatype import IntegralType
from yangson.schemanode import InternalNode, ListNode

from agent.model import Model
from agent.opcli.display import format_statistics, statistics_table

PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def statistics_of_the_model() -> tuple[etree._Element, list[str]]:
    """A ``cmp-statistics`` with every node the module has (one failure-info entry), each leaf
    with a value of its own; and those values."""
    numbers = itertools.count(1001)
    values: list[str] = []

    def build(schema: InternalNode, parent: etree._Element) -> None:
        for child in schema.data_children():
            el = etree.SubElement(parent, f"{{{PKI}}}{child.name}")
            if isinstance(child, InternalNode):
                build(child, el)
            else:
                el.text = (str(next(numbers)) if isinstance(child.type, IntegralType)
                           else f"{child.name}-value")
                if not isinstance(schema, ListNode):
                    values.append(el.text)

    root = etree.Element(f"{{{PKI}}}cmp-statistics")
    build(Model.load().datamodel.get_data_node("/cmp-agent-pki:pki/cmp-statistics"), root)
    return root, values


def test_every_leaf_of_the_statistics_grouping_is_shown():
    stats, values = statistics_of_the_model()
    lines = statistics_table(stats, "CMP statistics of all sessions")
    for value in values:
        assert sum(line.endswith(" " + value) for line in lines) == 1, (value, lines)
    text = "\n".join(lines)
    # labels as the device writes them, also for the counters added after the first table
    for label in ("IR", "CertConf", "P10CR", "RR", "GENM", "PKIConf", "RP", "GENP",
                  "GrantedWithMods", "CertificateRejected", "FailInfo bit-value",
                  "Next poll time", "Counters reset at"):
        assert re.search(rf"(^|\s){re.escape(label)}\s{{2,}}\S", text, re.M), (label, text)
    assert any(line.startswith("Messages sent") and line.split()[2] == "IR" for line in lines)
    assert all(len(line) <= 64 for line in lines if "value" not in line), lines


def test_a_session_or_the_total_comes_from_the_reply():
    stats, _ = statistics_of_the_model()
    stats.tag = f"{{{PKI}}}statistics"
    reply = etree.fromstring(f'<rpc-reply xmlns="{NC}"><data><pki xmlns="{PKI}"><cmp-session>'
                             "<name>s1</name></cmp-session></pki></data></rpc-reply>")
    reply.find(f".//{{{PKI}}}cmp-session").append(stats)
    lines = format_statistics(reply, "s1")
    assert lines[0] == "CMP statistics of session s1"
    assert any(line.split() == ["P10CR", "1006"] for line in lines), lines
    total = format_statistics(reply, None)
    assert total[0] == "CMP statistics of all sessions"
    assert total[-1].split() == ["s1", "1001", "1002", "1003", "1018", "1020", "result-value"]
