"""Filters must name nodes of the model (agent/netconf/filternames.py) against the agent's model."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.model import Model
from agent.netconf.errors import RpcError
from agent.netconf.filternames import CheckedFilters, check_filter_names
from agent.netconf.filters import FilterParam

PKI = "urn:cmp-agent:yang:cmp-agent-pki"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


@pytest.fixture(scope="module")
def names():
    return Model.load().name_tree


def xpath(select: str) -> etree._Element:
    return etree.fromstring(f'<filter xmlns="{NC}" xmlns:p="{PKI}" type="xpath" select="{select}"/>')


@pytest.mark.parametrize("select", [
    "/pki/cmp-session/statistics/last-request",            # netconf-console2 -x: no prefixes
    "/p:pki/p:cmp-session[p:name='s1']/p:statistics",
    "/netconf-state/sessions/session/username",             # ietf-netconf-monitoring
    "/yang-library/module-set/module/name | /modules-state/module",
    "//last-request/result", "/pki/*/name", "/nacm/rule-list",
    "/pki/cmp-session[name='x' and ca-name]", "count(/pki/cmp-session)",
    "/pki/cmp-session[name='cmp-sesion']",                  # a typo in a literal is data
])
def test_paths_naming_schema_nodes_pass(names, select):
    check_filter_names(names, FilterParam.of(xpath(select)))


@pytest.mark.parametrize("select, step, suggestion", [
    ("/pki/cmp-sesion", "'cmp-sesion'", "did you mean cmp-session?"),
    ("/p:pki/p:entity/p:comon-name", "'p:comon-name'", "did you mean common-name?"),
    ("//lst-request", "'lst-request'", "did you mean last-request?"),
    ("/pki/cmp-session/statistics | /netconf-stat", "'netconf-stat'", "did you mean netconf-state?"),
    ("/pki/cmp-session[nam='s1']", "'nam'", "did you mean name?"),
])
def test_a_step_naming_nothing_is_invalid_value(names, select, step, suggestion):
    with pytest.raises(RpcError) as err:
        check_filter_names(names, FilterParam.of(xpath(select)))
    assert err.value.tag == "invalid-value"
    assert step in err.value.message and suggestion in err.value.message


def test_subtree_names_in_any_namespace_and_unknown_element(names):
    ok = etree.fromstring(f'<filter xmlns="{NC}"><pki xmlns=""><cmp-session><name>s1</name>'
                          "<statistics/></cmp-session></pki></filter>")
    check_filter_names(names, FilterParam.of(ok))
    bad = etree.fromstring(f'<filter xmlns="{NC}"><pki xmlns="{PKI}"><cmp-session>'
                           "<statistics><last-requst/></statistics></cmp-session></pki></filter>")
    with pytest.raises(RpcError) as err:
        check_filter_names(names, FilterParam.of(bad))
    assert err.value.tag == "unknown-element"
    assert err.value.info == {"bad-element": "last-requst"}
    assert "below /pki/cmp-session/statistics" in err.value.message
    assert "did you mean last-request?" in err.value.message


def test_checked_filters_remember_what_passed_within_bounds(names):
    """A filter that passed is not walked again (the tree is not even asked for);
    one that failed fails every time; the memory is bounded in entries and size."""
    asked = []

    def tree():
        asked.append(1)
        return names

    checked = CheckedFilters(tree, max_entries=2, max_key_bytes=200)

    def subtree(inner: str, ns: str = PKI) -> FilterParam:
        return FilterParam.of(etree.fromstring(f'<filter xmlns="{NC}"><pki xmlns="{ns}">'
                                               f"{inner}</pki></filter>"))

    checked.check(subtree("<file-format/>"))
    checked.check(subtree("<file-format/>"))  # the same text in another request
    assert len(asked) == 1
    checked.check(subtree("<file-format/>", ns=""))  # same XML text, other namespace: other key
    assert len(asked) == 2
    for _ in range(2):
        with pytest.raises(RpcError):
            checked.check(subtree("<file-fromat/>"))
    assert len(asked) == 4
    long = subtree("<cmp-session><name>" + "x" * 300 + "</name></cmp-session>")
    checked.check(long)
    checked.check(long)  # over max_key_bytes: checked every time
    assert len(asked) == 6
    checked.check(subtree("<entity/>"))  # a third remembered filter drops the oldest
    checked.check(subtree("<file-format/>"))
    assert len(asked) == 8
