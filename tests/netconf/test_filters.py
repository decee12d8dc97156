"""Subtree filtering (RFC 6241 section 6) and XPath filtering (section 8.9) on lxml trees."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.netconf.errors import RpcError
from agent.netconf.filters import apply_filter

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
T = "http://example.com/schema/1.2/config"

# RFC 6241 section 6.4 style data: users with names, types, full names
DATA = f"""<data xmlns="{NC}"><top xmlns="{T}"><users>
<user><name>root</name><type>superuser</type><full-name>Charlie Root</full-name>
  <company-info><dept>1</dept><id>1</id></company-info></user>
<user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name>
  <company-info><dept>2</dept><id>2</id></company-info></user>
<user><name>barney</name><type>admin</type><full-name>Barney Rubble</full-name>
  <company-info><dept>2</dept><id>3</id></company-info></user>
</users></top><other xmlns="urn:other"><x>1</x></other></data>"""


def data():
    return etree.fromstring(DATA, etree.XMLParser(remove_blank_text=True))


def filtered(filter_body: str, **attrs: str) -> etree._Element:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    f = etree.fromstring(f'<filter xmlns="{NC}" xmlns:t="{T}"{extra}>{filter_body}</filter>')
    return apply_filter(data(), f, keys_of)


def keys_of(el):
    return (f"{{{T}}}name",) if etree.QName(el).localname == "user" else ()


def names(root) -> list[str]:
    return root.xpath("//t:user/t:name/text()", namespaces={"t": T})


def test_no_filter_returns_everything():
    assert apply_filter(data(), None) is not None
    assert len(apply_filter(data(), None)) == 2


def test_empty_filter_selects_nothing():  # RFC 6241 section 6.4.2
    assert len(filtered("")) == 0


def test_selection_node_selects_the_subtree():  # section 6.4.3
    out = filtered(f'<top xmlns="{T}"><users/></top>')
    assert names(out) == ["root", "fred", "barney"]
    assert out.find("{urn:other}other") is None


def test_content_match_selects_one_entry_with_all_siblings():  # section 6.4.5
    out = filtered(f'<top xmlns="{T}"><users><user><name>fred</name></user></users></top>')
    assert names(out) == ["fred"]
    user = out.find(f".//{{{T}}}user")
    assert user.findtext(f"{{{T}}}full-name") == "Fred Flintstone"
    assert user.find(f"{{{T}}}company-info") is not None


def test_content_match_with_selection_returns_only_selected():  # section 6.4.6
    out = filtered(f'<top xmlns="{T}"><users><user><name>fred</name><type/></user>'
                   "</users></top>")
    user = out.find(f".//{{{T}}}user")
    assert [etree.QName(c).localname for c in user] == ["name", "type"]


def test_several_content_matches_and_nested_containment():
    out = filtered(f'<top xmlns="{T}"><users><user><type>admin</type>'
                   "<company-info><dept>2</dept></company-info></user></users></top>")
    assert out.xpath("//t:user/t:type/text()", namespaces={"t": T}) == ["admin", "admin"]
    assert out.xpath("//t:user/t:company-info/t:id/text()", namespaces={"t": T}) == ["2", "3"]


def test_failed_content_match_selects_nothing():
    assert len(filtered(f'<top xmlns="{T}"><users><user><name>nobody</name></user>'
                        "</users></top>")) == 0


def test_namespace_must_match_but_empty_namespace_is_a_wildcard():
    assert len(filtered('<top xmlns="urn:wrong"/>')) == 0
    out = filtered('<top xmlns=""><users/></top>')
    assert names(out) == ["root", "fred", "barney"]


def test_xpath_filter_returns_node_with_ancestors_and_keys():
    out = filtered("", type="xpath", select="/t:top/t:users/t:user[t:name='barney']/t:type")
    user = out.find(f".//{{{T}}}user")
    assert [etree.QName(c).localname for c in user] == ["name", "type"]
    assert user.findtext(f"{{{T}}}name") == "barney"


def test_xpath_union_and_descendant():
    out = filtered("", type="xpath", select="//t:dept | /t:top/t:users/t:user[1]/t:name")
    assert len(out.xpath("//t:dept", namespaces={"t": T})) == 3
    assert names(out) == ["root", "fred", "barney"]  # keys come with the selected depts


@pytest.mark.parametrize("select", ["count(//t:user)", "/t:top/[", "/undeclared:x"])
def test_bad_xpath_is_invalid_value(select):
    with pytest.raises(RpcError) as err:
        filtered("", type="xpath", select=select)
    assert err.value.tag == "invalid-value"


def test_unknown_filter_type_is_bad_attribute():
    with pytest.raises(RpcError) as err:
        filtered("", type="regex")
    assert err.value.tag == "bad-attribute"


def test_xpath_without_prefixes_matches_any_namespace():
    out = filtered("", type="xpath", select="/top/users/user[name='fred']/type")
    assert out.xpath("//t:user/t:type/text()", namespaces={"t": T}) == ["admin"]
    # with a prefix, XPath 1.0 rules hold: the unprefixed step matches nothing
    assert len(filtered("", type="xpath", select="/t:top/users")) == 0


# --- issue 9: what a filter may cost is bounded -----------------------------------
@pytest.mark.parametrize("prefix,namespace,select", [
    ("re", "http://exslt.org/regular-expressions",
     "/*[re:test('aaaaaaaaaaaaaaaaaaaaaaaaaa!','^(a+)+$')]"),
    ("math", "http://exslt.org/math", "/*[math:max(//t:id) > 1]"),
])
def test_xpath_filters_get_no_exslt_functions(prefix, namespace, select):
    f = etree.fromstring(f'<filter xmlns="{NC}" xmlns:t="{T}" xmlns:{prefix}="{namespace}"'
                         f' type="xpath" select="{select}"/>')
    with pytest.raises(RpcError) as err:
        apply_filter(data(), f, keys_of)
    assert err.value.tag == "invalid-value" and "EXSLT" in err.value.message


def test_subtree_filter_size_is_bounded():
    from agent.netconf.filters import MAX_FILTER_NODES

    f = etree.fromstring(f'<filter xmlns="{NC}"><top xmlns="{T}">'
                         + "<users/>" * MAX_FILTER_NODES + "</top></filter>")
    with pytest.raises(RpcError) as err:
        apply_filter(data(), f, keys_of)
    assert err.value.tag == "too-big" and str(MAX_FILTER_NODES) in err.value.message
    # the request's filter parameter is refused before it is serialized for its key
    from agent.netconf.filters import FilterParam

    with pytest.raises(RpcError) as err:
        FilterParam.of(f)
    assert err.value.tag == "too-big"


def test_only_a_message_of_many_bytes_can_hold_an_oversized_filter():
    """FilterParam.of counts a subtree filter's elements only when the request is big
    enough to hold too many: the smallest request with an oversized filter still is."""
    from agent.netconf.filters import MAX_FILTER_NODES, FilterParam, may_be_too_big

    smallest = (b"<rpc><get><filter>" + b"<a/>" * (MAX_FILTER_NODES + 1)
                + b"</filter></get></rpc>")
    assert may_be_too_big(len(smallest))
    assert may_be_too_big(4 * (MAX_FILTER_NODES + 2))
    assert not may_be_too_big(4 * (MAX_FILTER_NODES + 2) - 1)
    f = etree.fromstring(smallest)[0][0]
    with pytest.raises(RpcError) as err:
        FilterParam.of(f, len(smallest))
    assert err.value.tag == "too-big" and str(MAX_FILTER_NODES + 1) in err.value.message
    small = etree.fromstring(f'<filter xmlns="{NC}"><top xmlns="{T}"/></filter>')
    assert FilterParam.of(small, 100).key == FilterParam.of(small).key


def test_subtree_filter_comparisons_are_bounded():
    from agent.datastore.steps import run_steps
    from agent.netconf.filters import subtree_selection

    f = etree.fromstring(f'<filter xmlns="{NC}" xmlns:t="{T}">'
                         "<t:top><t:users><t:user><t:name/></t:user></t:users></t:top></filter>")
    assert run_steps(subtree_selection(data(), f, max_visits=100))  # enough for this data
    with pytest.raises(RpcError) as err:
        run_steps(subtree_selection(data(), f, max_visits=3))
    assert err.value.tag == "operation-failed"
    assert "filter too expensive" in err.value.message


def test_filter_param_carries_the_xpath_select():
    from agent.netconf.filters import FilterParam

    assert FilterParam.of(etree.fromstring(
        f'<filter xmlns="{NC}" xmlns:t="{T}" type="xpath" select="//t:dept"/>')).select == "//t:dept"
    assert FilterParam.of(etree.fromstring(f'<filter xmlns="{NC}"><top xmlns="{T}"/></filter>')
                          ).select is None


@pytest.mark.parametrize("ns", [T, ""], ids=["namespace", "any namespace"])
def test_a_leaf_beside_a_long_list_is_selected_among_comments(ns):
    """A filter node passes over the data nodes of other tags (a long list)
    without comparing each; comments between the data nodes take no position."""
    from agent.datastore.steps import run_steps
    from agent.netconf.filters import materialize, subtree_selection

    entries = "".join(f"<user><name>u{i}</name></user><!-- {i} -->" for i in range(600))
    tree = etree.fromstring(f'<data xmlns="{NC}"><top xmlns="{T}"><users>{entries}'
                            "<limit>7</limit><!-- end --><user><name>last</name></user>"
                            "</users></top></data>")
    f = etree.fromstring(f'<filter xmlns="{NC}"><top xmlns="{ns}"><users><limit/>'
                         "<user><name>last</name></user></users></top></filter>")
    got = materialize(tree, run_steps(subtree_selection(tree, f)))
    users = got.find(f"{{{T}}}top/{{{T}}}users")
    assert [etree.QName(c).localname for c in users] == ["limit", "user"]
    assert users.findtext(f"{{{T}}}limit") == "7" and names(got) == ["last"]
