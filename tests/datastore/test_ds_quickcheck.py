"""The quick check of a commit (agent/datastore/quickcheck.py) against yangson.

yangson's full validation (validate_tree) is the oracle: the quick check may
answer "valid" only for trees that yangson accepts, and should answer it for
the ordinary valid trees (or it saves nothing). Trees are written directly as
XML, so they include what no edit-config produces (two cases of a choice, a
leaf twice, unknown and state nodes, comments), and are also drawn at random
from fragments, valid and not.
"""

from __future__ import annotations

import copy
import random

import pytest
from ds_helpers import NC_NS, PKI_NS, config, session
from lxml import etree

from agent.datastore.quickcheck import QuickCheck
from agent.datastore.validation import validate_tree
from agent.netconf.errors import RpcError

NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"


def tree(pki_body: str, extra: str = "") -> etree._Element:
    return etree.fromstring(f'<data xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">{pki_body}</pki>'
                            f"{extra}</data>")


def entity(name: str) -> str:
    return f"<entity><name>{name}</name><common-name>{name}.example</common-name></entity>"


def verdicts(ds, data: etree._Element) -> tuple[bool, str | None]:
    """(quick check's answer, yangson's error-tag or None if valid)."""
    view = ds._defaults.apply(copy.deepcopy(data), "report-all")
    quick = QuickCheck(ds.smap).valid(data, view)
    try:
        validate_tree(ds.smap, data)
    except RpcError as err:
        return quick, err.tag
    return quick, None


BENCH_SESSION = ("<entity>e1</entity><ca-name>/C=DE/CN=CA</ca-name>"
                 "<server-url><url>http://192.0.2.10/pkix/</url></server-url>"
                 "<local-key-pair><name>k</name><regenerate>true</regenerate>"
                 "<key-bits>3072</key-bits></local-key-pair>"
                 "<source-address>192.0.2.1</source-address>"
                 "<integrity-algorithm>hmac-sha256</integrity-algorithm>"
                 "<message-authentication-code><reference-value>r</reference-value>"
                 "</message-authentication-code>"
                 "<auto-update><enabled>true</enabled><expire-time>60</expire-time></auto-update>")

NACM_RULES = (f'<nacm xmlns="{NACM_NS}"><rule-list><name>ops</name><group>ops</group>'
              "<rule><name>r1</name><module-name>*</module-name><path>/pki</path>"
              "<access-operations>read update</access-operations><action>permit</action>"
              "</rule></rule-list><groups><group><name>ops</name><user-name>alice</user-name>"
              "</group></groups></nacm>")

#: trees the quick check must pass (yangson accepts them all)
VALID = {
    "empty": "",
    "top-level leaves": "<file-format>der</file-format>"
                        "<weak-algorithms-enabled>false</weak-algorithms-enabled>",
    "bench session": entity("e1") + session("s1", BENCH_SESSION),
    "many sessions": entity("e1") + entity("e2") + "".join(
        session(f"s{i}", f"<entity>e{1 + i % 2}</entity>") for i in range(50)),
    "weak allowed by default": entity("e1") + session(
        "s1", "<integrity-algorithm>hmac-sha1</integrity-algorithm><digest>sha1</digest>"),
    "weak allowed explicitly": "<weak-algorithms-enabled>true</weak-algorithms-enabled>"
                               + session("s1", "<digest>sha1</digest>"),
    "strong with weak off": "<weak-algorithms-enabled>false</weak-algorithms-enabled>"
                            + session("s1", "<digest>sha256</digest>"),
    "source interface": session("s1", "<source-interface>eth0</source-interface>"),
    "tls leaf-list": session("s1", "<tls><trusted-cert>a.pem</trusted-cert>"
                                   "<trusted-cert>b.pem</trusted-cert></tls>"),
    "leafref not required": session("s1", "<entity>e1</entity>")[:-len("</cmp-session>")]
                            + "</cmp-session>" + entity("e1"),
    # yangson ignores text between elements and XML attributes
    "text in a container": "text" + entity("e1"),
    "an operation attribute": f'<entity xmlns:nc="{NC_NS}" nc:operation="delete">'
                              "<name>e1</name></entity>",
}

#: trees yangson refuses (the quick check must answer False)
INVALID = {
    "entity missing": entity("e1") + session("s1", "<entity>e2</entity>"),
    "weak refused": "<weak-algorithms-enabled>false</weak-algorithms-enabled>"
                    + session("s1", "<integrity-algorithm>hmac-sha1</integrity-algorithm>"),
    "sha1 refused": "<weak-algorithms-enabled>false</weak-algorithms-enabled>"
                    + session("s1", "<digest>sha1</digest>"),
    "key-bits without regenerate": session(
        "s1", "<local-key-pair><name>k</name><key-bits>3072</key-bits></local-key-pair>"),
    "key-bits with regenerate false": session(
        "s1", "<local-key-pair><regenerate>false</regenerate><key-bits>3072</key-bits>"
              "</local-key-pair>"),
    "two cases": session("s1", "<source-interface>eth0</source-interface>"
                               "<source-address>192.0.2.1</source-address>"),
    "leaf twice": session("s1", "<ca-name>a</ca-name><ca-name>b</ca-name>"),
    "duplicate key": session("s1") + session("s1"),
    "duplicate leaf-list value": session("s1", "<tls><trusted-cert>a</trusted-cert>"
                                               "<trusted-cert>a</trusted-cert></tls>"),
    "key missing": "<cmp-session><ca-name>x</ca-name></cmp-session>",
    "bad enum": "<file-format>xml</file-format>",
    "bad boolean": "<weak-algorithms-enabled>yes</weak-algorithms-enabled>",
    "out of range": session("s1", "<local-key-pair><regenerate>true</regenerate>"
                                  "<key-bits>1</key-bits></local-key-pair>"),
    "bad address": session("s1", "<source-address>999.1.1.1</source-address>"),
    "leaf with children": "<file-format><pem/></file-format>",
    "unknown element": "<no-such-leaf>1</no-such-leaf>",
    "state data": session("s1", "<statistics/>"),
    "state leaf of an entity": entity("e1")[:-len("</entity>")] + "<certificate/></entity>",
    "unknown namespace": '<x xmlns="urn:example:x">1</x>',
    "another module's leaf in pki": f'<enable-nacm xmlns="{NACM_NS}">true</enable-nacm>',
    "duplicate key, one prefixed": entity("e1") + f'<p:entity xmlns:p="{PKI_NS}">'
                                   "<p:name>e1</p:name></p:entity>",
    "space in a boolean": "<weak-algorithms-enabled> true</weak-algorithms-enabled>",
    "space in a leafref": entity("e1") + session("s1", "<entity> e1</entity>"),
    "uint8 overflow": session("s1", "<auto-update><expire-time>256</expire-time></auto-update>"),
    "ipv6 zone": session("s1", "<source-address>fe80::1%eth0</source-address>"),
    "ipv4 leading zero": session("s1", "<source-address>192.0.2.01</source-address>"),
    "comment inside a leaf": "<file-format>d<!--c-->er</file-format>",
    "processing instruction inside a leaf": "<file-format>d<?x y?>er</file-format>",
    "empty key": "<entity><name/></entity>",
}

#: trees yangson loads leniently (the last of two copies counts): the quick check
#: leaves them to yangson
REPEATED = {
    "container twice": session("s1", "<timeouts/><timeouts/>"),
    "top-level leaf twice": "<file-format>der</file-format><file-format>pem</file-format>",
}

#: values yangson accepts in a spelling other than the canonical one (RFC 7950
#: section 9.1): yangson's XPath and leafrefs compare canonical texts, the quick
#: check's the texts as written, so it leaves them to yangson
NONCANONICAL = {
    "plus sign": "<message-timeout>+5</message-timeout>",
    "leading zero": "<message-timeout>05</message-timeout>",
    "spaces": "<message-timeout> 5 </message-timeout>",
    "digit separator": "<message-timeout>1_0</message-timeout>",
}

NACM_CASES = {
    "nacm rules": (NACM_RULES, True),
    "rule without action": (NACM_RULES.replace("<action>permit</action>", ""), False),
    "rule with two cases": (NACM_RULES.replace("<path>/pki</path>",
                                               "<path>/pki</path><rpc-name>commit</rpc-name>"),
                            False),
    "bad access-operations": (NACM_RULES.replace("read update", "fly"), False),
    "bits not in canonical order": (NACM_RULES.replace("read update", "update read"), None),
    "bits with extra spaces": (NACM_RULES.replace("read update", " read  update "), None),
}


@pytest.mark.parametrize("case", VALID)
def test_valid_trees_pass_quickly(ds, case):
    assert verdicts(ds, tree(VALID[case])) == (True, None)


@pytest.mark.parametrize("case", INVALID)
def test_invalid_trees_go_to_yangson(ds, case):
    quick, error = verdicts(ds, tree(INVALID[case]))
    assert error is not None and quick is False


@pytest.mark.parametrize("case", REPEATED)
def test_repeated_nodes_go_to_yangson(ds, case):
    assert verdicts(ds, tree(REPEATED[case])) == (False, None)


@pytest.mark.parametrize("case", NONCANONICAL)
def test_noncanonical_values_go_to_yangson(ds, case):
    body = session("s1", f"<timeouts>{NONCANONICAL[case]}</timeouts>")
    assert verdicts(ds, tree(body)) == (False, None)


def test_a_child_without_namespace_goes_to_yangson(ds):
    """yangson takes it as its parent's namespace; the quick check leaves it."""
    data = tree("")
    etree.SubElement(data[0], "file-format").text = "der"
    assert verdicts(ds, data) == (False, None)


@pytest.mark.parametrize("case", NACM_CASES)
def test_nacm(ds, case):
    """valid None: yangson accepts, the quick check leaves it to yangson."""
    body, valid = NACM_CASES[case]
    quick, error = verdicts(ds, tree("", body))
    assert quick is bool(valid) and (error is None) is (valid is not False)


def test_a_comment_goes_to_yangson(ds):
    data = tree(entity("e1"))
    data[0].insert(0, etree.Comment("hand-edited"))
    view = ds._defaults.apply(copy.deepcopy(data), "report-all")
    assert QuickCheck(ds.smap).valid(data, view) is False


#: each a distinct node; a random tree takes some of them, and one of each
#: group of ALTERNATIVES (or none)
FRAGMENTS = [
    entity("e1"), entity("e2"), "<file-format>der</file-format>",
    session("s1", BENCH_SESSION), session("s2", "<entity>e2</entity>"),
    session("s3", "<integrity-algorithm>hmac-sha1</integrity-algorithm>"),
    session("s4", "<digest>sha1</digest>"),
    session("s5", "<local-key-pair><key-bits>2048</key-bits></local-key-pair>"),
    session("s6", "<local-key-pair><regenerate>true</regenerate><key-bits>4096</key-bits>"
                  "</local-key-pair>"),
    session("s8", "<timeouts><message-timeout>0</message-timeout></timeouts>"),
    session("s9", "<auto-update><expire-time>300</expire-time></auto-update>"),
    session("s10", "<tls><trusted-cert>a</trusted-cert><server-name>ca.example</server-name>"
                   "</tls>"),
    session("s11", "<entity>e3</entity>"),
]
ALTERNATIVES = [
    ["<weak-algorithms-enabled>false</weak-algorithms-enabled>",
     "<weak-algorithms-enabled>true</weak-algorithms-enabled>"],
    [session("s7", "<source-interface>eth0</source-interface>"),
     session("s7", "<source-address>2001:db8::1</source-address>"),
     session("s7", "<source-interface>eth0</source-interface>"
                   "<source-address>2001:db8::1</source-address>")],
]


def test_random_trees_agree_with_yangson(ds):
    """Quick "valid" implies yangson's valid, on random mixes of fragments;
    and most of yangson's valid trees are found valid quickly."""
    rng = random.Random(11)
    agreed = valid = 0
    for _ in range(300):
        parts = rng.sample(FRAGMENTS, rng.randint(1, 7))
        parts += [part for group in ALTERNATIVES if (part := rng.choice(group + [""]))]
        rng.shuffle(parts)
        body = "".join(parts)
        quick, error = verdicts(ds, tree(body))
        assert not (quick and error), body
        valid += error is None
        agreed += quick == (error is None)
    assert valid > 20
    assert agreed == 300  # on these fragments the quick check knows every answer


def test_commit_errors_are_yangson_errors(ds):
    """A commit the quick check refuses raises yangson's rpc-error, path and app-tag."""
    ds.edit_config("candidate", config(entity("e1") + session("s1", "<entity>e1</entity>")))
    ds.commit()
    ds.edit_config("candidate", config(
        f'<entity xmlns:nc="{NC_NS}" nc:operation="delete"><name>e1</name></entity>'))
    with pytest.raises(RpcError) as caught:
        ds.commit()
    err = caught.value
    assert (err.tag, err.app_tag, err.path) == (
        "data-missing", "instance-required", "/pki:pki/pki:cmp-session[pki:name='s1']/pki:entity")
    assert "refers to an instance that does not exist" in err.message


#: XPath on integrity-algorithm where yangson's node-set comparisons and XPath
#: 1.0's (libxml2 on the view) differ: a container compared as a string
#: (yangson skips it), a boolean leaf against a number (yangson: true = 1),
#: two strings with "<" (yangson: Python's order)
DIVERGENT_XPATH = [
    "../local-key-pair != 'x'",
    "../local-key-pair = 'ktrue'",
    "../tls = 'a'",
    "../local-key-pair/regenerate = 1",
    "../local-key-pair/regenerate > 0",
    "'10' < '9'",
]
#: the forms the model uses, which both evaluate alike and the quick check compiles
AGREEING_XPATH = [
    ". != 'hmac-sha1' or ../../weak-algorithms-enabled = 'true'",
    "../local-key-pair/regenerate = 'true'",
    "../timeouts/message-timeout = '120'",
]


def _xpath_on_both(ds, text: str) -> tuple[bool, bool, bool]:
    """(yangson's value, libxml2's value of the quick check's translation,
    whether the quick check compiles it) for *text* on a session's
    integrity-algorithm leaf."""
    from yangson.schemadata import SchemaContext
    from yangson.xpathparser import XPathParser

    data = tree(session("s1", "<local-key-pair><name>k</name><regenerate>true</regenerate>"
                              "</local-key-pair><tls><trusted-cert>a</trusted-cert></tls>"
                              "<integrity-algorithm>hmac-sha256</integrity-algorithm>"))
    view = ds._defaults.apply(copy.deepcopy(data), "report-all")
    leaf = validate_tree(ds.smap, data)["cmp-agent-pki:pki"]["cmp-session"][0][
        "integrity-algorithm"]
    schema_data = ds.smap.model.datamodel.schema_data
    module = next(mid for mid in schema_data.modules if mid[0] == "cmp-agent-pki")
    expr = XPathParser(text, SchemaContext(schema_data, "cmp-agent-pki", module)).parse()
    check = QuickCheck(ds.smap)
    translated = etree.XPath(f"boolean({check._translate(expr, False)})",
                             namespaces=check._namespaces())
    return (bool(expr.evaluate(leaf)), translated(view.find(f".//{{{PKI_NS}}}integrity-algorithm")),
            check._xpath(expr, leaf.schema_node) is not None)


@pytest.mark.parametrize("text", DIVERGENT_XPATH)
def test_xpath_yangson_reads_otherwise_goes_to_yangson(ds, text):
    yangson, libxml2, compiled = _xpath_on_both(ds, text)
    assert yangson != libxml2 and not compiled


@pytest.mark.parametrize("text", ["* = 'hmac-sha256'", "../* = 'x'", "not(../name)",
                                  "count(../name) = 1", "true()"])
def test_wildcards_and_function_calls_go_to_yangson(ds, text):
    """A wildcard step (yangson's qname False) or a function call (which yangson's
    parser wraps in a filter expression) is not translated: the quick check asks
    yangson instead of failing."""
    from yangson.schemadata import SchemaContext
    from yangson.xpathparser import XPathParser

    schema_data = ds.smap.model.datamodel.schema_data
    module = next(mid for mid in schema_data.modules if mid[0] == "cmp-agent-pki")
    expr = XPathParser(text, SchemaContext(schema_data, "cmp-agent-pki", module)).parse()
    leaf = ds.smap.model.datamodel.get_data_node(
        "/cmp-agent-pki:pki/cmp-session/integrity-algorithm")
    assert QuickCheck(ds.smap)._xpath(expr, leaf) is None


@pytest.mark.parametrize("text", AGREEING_XPATH)
def test_xpath_of_the_models_forms_is_compiled(ds, text):
    yangson, libxml2, compiled = _xpath_on_both(ds, text)
    assert yangson == libxml2 and compiled


#: texts a mutated leaf takes: valid and invalid for the model's leaves
MUTANT_TEXTS = ["", " ", "true", "false", "sha1", "hmac-sha1", "e1", "e3", "0", "-1", "65536",
                "2048", "256", "+5", "05", "a", "*", "permit", "read", "der", "/pki",
                "192.0.2.1", "::1", "x" * 300, "eth0"]


def _mutate(rng: random.Random, data: etree._Element) -> None:
    """One random change: a leaf's text, a node removed, copied or moved
    under another parent."""
    el = rng.choice([e for e in data.iter() if e is not data] or [data])
    parent = el.getparent()
    op = rng.randrange(4)
    if op == 0 and not len(el):
        el.text = rng.choice(MUTANT_TEXTS)
    elif parent is None:
        return
    elif op == 1:
        parent.remove(el)
    elif op == 2:
        parent.append(copy.deepcopy(el))
    elif op == 3:
        target = rng.choice(list(data.iter()))
        if target not in el.iter():
            target.append(el)


def test_mutated_trees_agree_with_yangson(ds):
    """Quick "valid" implies yangson's valid on random mutations (texts,
    removals, copies, moves) of a tree using most of the model."""
    base = tree(entity("e1") + entity("e2")
                + "<weak-algorithms-enabled>false</weak-algorithms-enabled>"
                + session("s1", BENCH_SESSION)
                + session("s2", "<entity>e2</entity><digest>sha256</digest><tls>"
                                "<trusted-cert>a</trusted-cert><trusted-cert>b</trusted-cert>"
                                "<server-name>ca.example</server-name></tls><timeouts>"
                                "<message-timeout>5</message-timeout></timeouts>"
                                "<source-interface>eth0</source-interface>"), NACM_RULES)
    rng = random.Random(5)
    quick_valid = 0
    for _ in range(300):
        data = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            _mutate(rng, data)
        quick, error = verdicts(ds, data)
        assert not (quick and error), etree.tostring(data).decode()
        quick_valid += quick
    assert quick_valid > 20
