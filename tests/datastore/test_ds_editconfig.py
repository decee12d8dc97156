"""edit-config (RFC 6241 section 7.2) on the candidate datastore."""

from __future__ import annotations

import asyncio
import copy

import pytest
from ds_helpers import PKI_NS, config, pki, session, xp
from lxml import etree

from agent.datastore import steps
from agent.datastore.editconfig import apply_edit_steps
from agent.netconf.errors import RpcError, RpcErrors

S1 = "/pki:pki/pki:cmp-session[pki:name='s1']"


def explicit(ds):
    return ds.get_config("candidate", "explicit")


def test_merge_creates_and_updates(ds):
    ds.edit_config("candidate", config(session("s1", "<ca-name>/C=DE/CN=ca</ca-name>")))
    ds.edit_config("candidate", config(session("s1", "<auto-update><expire-time>70</expire-time>"
                                                     "</auto-update>")))
    tree = explicit(ds)
    assert xp(tree, "//p:cmp-session[p:name='s1']/p:ca-name/text()") == ["/C=DE/CN=ca"]
    assert xp(tree, "//p:cmp-session[p:name='s1']/p:auto-update/p:expire-time/text()") == ["70"]
    assert ds.candidate_dirty
    assert ds.get_config("running", "explicit").find(f"{{{PKI_NS}}}pki") is None


def test_values_stored_in_canonical_form(ds):
    ds.edit_config("candidate", config(session("s1", "<auto-update><expire-time>070</expire-time>"
                                                     "</auto-update>")))
    assert xp(explicit(ds), "//p:expire-time/text()") == ["70"]
    with pytest.raises(RpcError):  # YANG booleans are only "true" and "false"
        ds.edit_config("candidate", config(session("s1", "<auto-update><enabled>1</enabled>"
                                                         "</auto-update>")))


def test_invalid_value_has_path(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session(
            "s1", "<auto-update><expire-time>5</expire-time></auto-update>")))
    err = exc.value
    assert err.tag == "invalid-value" and err.type == "application"
    assert err.path == f"{S1}/pki:auto-update/pki:expire-time"
    assert err.path_namespaces == {"pki": PKI_NS}
    assert "10..100" in err.message and "expire-time" in err.message
    assert not ds.candidate_dirty and pki(explicit(ds)) is None  # nothing changed
    xml = err.to_xml()
    assert xml.findtext("{urn:ietf:params:xml:ns:netconf:base:1.0}error-path") == err.path


@pytest.mark.parametrize("body, leaf", [
    ("<server-url><url>ftp://x</url></server-url>", "url"),
    ("<message-authentication-code><reference-value>a?b</reference-value>"
     "</message-authentication-code>", "reference-value"),
    ("<ca-name>CN=ca</ca-name>", "ca-name"),
    ("<local-key-pair><regenerate>true</regenerate><key-bits>1024</key-bits>"
     "</local-key-pair>", "key-bits"),
    ("<source-address>fe80::1%eth0</source-address>", "source-address"),
    ("<integrity-algorithm>md5</integrity-algorithm>", "integrity-algorithm"),
])
def test_type_checks(ds, body, leaf):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("s1", body)))
    assert exc.value.tag == "invalid-value"
    assert exc.value.path.endswith(f"pki:{leaf}")
    assert exc.value.info["bad-element"] == leaf


def test_entity_country_pattern(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config("<entity><name>e</name><country>de</country></entity>"))
    assert exc.value.path == "/pki:pki/pki:entity[pki:name='e']/pki:country"


def test_create_existing_is_data_exists(ds):
    ds.edit_config("candidate", config(session("s1")))
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("s1", op="create")))
    assert exc.value.tag == "data-exists" and exc.value.path == S1


def test_delete_missing_is_data_missing_remove_is_not(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("nope", op="delete")))
    assert exc.value.tag == "data-missing"
    assert exc.value.path == "/pki:pki/pki:cmp-session[pki:name='nope']"
    ds.edit_config("candidate", config(session("nope", op="remove")))


def test_delete_and_remove_existing(ds):
    ds.edit_config("candidate", config(session("s1") + session("s2", "<ca-name>/CN=x</ca-name>")))
    ds.edit_config("candidate", config(session("s1", op="delete")))
    ds.edit_config("candidate", config(session("s2", '<ca-name nc:operation="remove"/>')))
    tree = explicit(ds)
    assert xp(tree, "//p:cmp-session/p:name/text()") == ["s2"]
    assert xp(tree, "//p:ca-name") == []


def test_unknown_element(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("s1", "<colour>red</colour>")))
    assert exc.value.tag == "unknown-element"
    assert exc.value.info == {"bad-element": "colour"}
    assert exc.value.path == S1


def test_unknown_namespace(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config("", extra='<x xmlns="urn:example:nothing"/>'))
    assert exc.value.tag == "unknown-namespace"


def test_state_data_cannot_be_edited(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config("<key-pair><name>k</name></key-pair>"))
    assert exc.value.tag == "invalid-value" and "config false" in exc.value.message


def test_missing_list_key(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config("<cmp-session><ca-name>/CN=x</ca-name></cmp-session>"))
    assert exc.value.tag == "missing-element" and exc.value.info == {"bad-element": "name"}


def test_bad_operation_attribute(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("s1", op="frobnicate")))
    assert exc.value.tag == "bad-attribute"


def test_running_is_not_writable(ds):
    with pytest.raises(RpcError) as exc:
        ds.edit_config("running", config(session("s1")))
    assert exc.value.tag == "operation-not-supported" and exc.value.type == "protocol"


def test_replace_list_entry_drops_unmentioned_children(ds):
    ds.edit_config("candidate", config(session("s1", "<ca-name>/CN=x</ca-name>"
                                                     "<verification-cert>ca.pem</verification-cert>")))
    ds.edit_config("candidate", config(session("s1", "<ca-name>/CN=y</ca-name>", op="replace")))
    tree = explicit(ds)
    assert xp(tree, "//p:ca-name/text()") == ["/CN=y"]
    assert xp(tree, "//p:verification-cert") == []


def test_replace_container(ds):
    ds.edit_config("candidate", config(session("s1", "<auto-update><enabled>true</enabled>"
                                                     "<expire-time>80</expire-time></auto-update>")))
    ds.edit_config("candidate", config(session(
        "s1", '<auto-update nc:operation="replace"><expire-time>20</expire-time></auto-update>')))
    tree = explicit(ds)
    assert xp(tree, "//p:auto-update/p:enabled") == []
    assert xp(tree, "//p:auto-update/p:expire-time/text()") == ["20"]


def test_default_operation_replace_replaces_everything(ds):
    ds.edit_config("candidate", config(session("s1") + session("s2")))
    ds.edit_config("candidate", config(session("s3")), default_operation="replace")
    assert xp(explicit(ds), "//p:cmp-session/p:name/text()") == ["s3"]


def test_default_operation_none(ds):
    ds.edit_config("candidate", config(session("s1", "<ca-name>/CN=x</ca-name>")))
    # without an operation attribute nothing changes ...
    ds.edit_config("candidate", config(session("s1", "<ca-name>/CN=y</ca-name>")),
                   default_operation="none")
    assert xp(explicit(ds), "//p:ca-name/text()") == ["/CN=x"]
    # ... and only the nodes that carry one are edited
    ds.edit_config("candidate", config(session("s1", '<ca-name nc:operation="merge">/CN=z</ca-name>')
                                       + session("s2")), default_operation="none")
    tree = explicit(ds)
    assert xp(tree, "//p:ca-name/text()") == ["/CN=z"]
    assert xp(tree, "//p:cmp-session/p:name/text()") == ["s1"]


def test_choice_case_replacement(ds):
    """RFC 7950 section 7.9.2: setting one case removes the other case's nodes."""
    ds.edit_config("candidate", config(session("s1", "<source-interface>eth0</source-interface>")))
    ds.edit_config("candidate", config(session("s1", "<source-address>192.0.2.1</source-address>")))
    tree = explicit(ds)
    assert xp(tree, "//p:source-interface") == []
    assert xp(tree, "//p:source-address/text()") == ["192.0.2.1"]
    ds.edit_config("candidate", config(session("s1", "<source-interface>eth1</source-interface>")))
    tree = explicit(ds)
    assert xp(tree, "//p:source-address") == []
    assert xp(tree, "//p:source-interface/text()") == ["eth1"]


def test_stop_on_error_changes_nothing(ds):
    bad = session("ok1") + session("bad", "<auto-update><expire-time>5</expire-time>"
                                          "</auto-update>") + session("ok2")
    for option in ("stop-on-error", "rollback-on-error"):
        with pytest.raises(RpcError):
            ds.edit_config("candidate", config(bad), error_option=option)
        assert pki(explicit(ds)) is None


def test_continue_on_error_applies_the_rest(ds):
    bad = (session("ok1") + session("bad", "<auto-update><expire-time>5</expire-time>"
                                           "</auto-update>")
           + session("ok2", "<colour/>") + session("ok3"))
    with pytest.raises(RpcErrors) as exc:
        ds.edit_config("candidate", config(bad), error_option="continue-on-error")
    tags = [e.tag for e in exc.value.errors]
    assert tags == ["invalid-value", "unknown-element"]
    names = xp(explicit(ds), "//p:cmp-session/p:name/text()")
    assert names == ["ok1", "bad", "ok2", "ok3"]
    assert xp(explicit(ds), "//p:expire-time") == []


def test_test_only_changes_nothing_but_validates(ds):
    ds.edit_config("candidate", config(session("s1")), test_option="test-only")
    assert pki(explicit(ds)) is None and not ds.candidate_dirty
    with pytest.raises(RpcError) as exc:  # test-only runs the full validation
        ds.edit_config("candidate", config(session("s1", "<entity>ghost</entity>")),
                       test_option="test-only")
    assert exc.value.tag == "data-missing"


def test_many_entries_in_one_edit(ds):
    body = "".join(session(f"s{i}", "<ca-name>/CN=x</ca-name>", op="create") for i in range(300))
    ds.edit_config("candidate", config(body))
    assert len(xp(explicit(ds), "//p:cmp-session")) == 300
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("s150", op="create")))
    assert exc.value.tag == "data-exists"


def test_report_all_tagged_output_can_be_written_back(ds):
    """RFC 6243 section 4.5.2: wd:default="true" leaves are accepted in <config>."""
    ds.edit_config("candidate", config(session("s1", "<auto-update><expire-time>70</expire-time>"
                                                     "</auto-update>")))
    ds.commit()
    tagged = ds.get_config("running", "report-all-tagged")
    tagged.tag = "{urn:ietf:params:xml:ns:netconf:base:1.0}config"
    ds.copy_config("candidate", tagged)
    tree = explicit(ds)
    assert xp(tree, "//p:expire-time/text()") == ["70"]
    assert xp(tree, "//p:file-format") == []  # tagged defaults stay defaults
    wrong = config(session("s1", '<auto-update><expire-time xmlns:wd="urn:ietf:params:xml:ns:'
                                 'netconf:default:1.0" wd:default="true">60</expire-time>'
                                 '</auto-update>'))
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", wrong)
    assert exc.value.tag == "invalid-value"


def test_edit_steps_pause_while_indexing_a_long_list(ds):
    """apply_edit_steps pauses after each edited list entry and while it indexes
    the entries of a long list (issue 9: an edit of one entry into a list of
    10,000 stalled the loop for the whole index)."""
    ds.edit_config("candidate", config("".join(session(f"s{i}") for i in range(640))))
    work = copy.deepcopy(ds.get_config("candidate", "explicit"))
    pauses = 0
    steps = apply_edit_steps(ds.smap, work, config(session("new")))
    with pytest.raises(StopIteration):
        while True:
            next(steps)
            pauses += 1
    assert pauses >= 640 // 64
    assert len(xp(work, "//p:cmp-session")) == 641


# -- a failed edit leaves the datastore exactly as it was (RFC 6241 7.2) ----------------------
def _candidate_state(ds) -> tuple:
    # the tree itself: views of it are cached per version
    return etree.tostring(ds._trees["candidate"]), ds.version("candidate"), ds.candidate_dirty


def _refuse(old, new) -> None:
    raise RpcError("access-denied", "refused by the test")


@pytest.mark.parametrize("cooperatively", [False, True], ids=["at-once", "in-slices"])
def test_a_failed_edit_leaves_the_datastore_byte_identical(ds, monkeypatch, cooperatively):
    """An edit that updates, deletes and creates entries and then fails (a bad
    value in its last entry, a refusal of the write check, a test-only edit
    that is not valid) leaves candidate byte for byte as it was, with the same
    version: nothing half-applied, whether it ran at once or in slices."""
    monkeypatch.setattr(steps, "SLICE_SECONDS", 0.0)
    ds.edit_config("candidate", config("".join(
        session(f"s{i:02d}", f"<ca-name>/CN=old {i}</ca-name>") for i in range(40))))
    changes = ("".join(session(f"s{i:02d}", "<ca-name>/CN=new</ca-name>") for i in range(20))
               + session("s30", op="delete") + session("fresh", op="create"))
    bad_value = session("late", "<auto-update><expire-time>5</expire-time></auto-update>")
    attempts = [({"error_option": "stop-on-error"}, config(changes + bad_value)),
                ({"error_option": "rollback-on-error"}, config(changes + bad_value)),
                ({"authorize": _refuse}, config(changes)),
                ({"test_option": "test-only"}, config(changes + session("x", "<entity>ghost"
                                                                            "</entity>")))]
    before = _candidate_state(ds)
    for options, edit in attempts:
        with pytest.raises(RpcError):
            if cooperatively:
                asyncio.run(ds.edit_config_cooperatively("candidate", edit, **options))
            else:
                ds.edit_config("candidate", edit, **options)
        assert _candidate_state(ds) == before, options
    ds.edit_config("candidate", config(changes))  # the same changes without the error apply
    assert xp(explicit(ds), "//p:cmp-session[p:name='s00']/p:ca-name/text()") == ["/CN=new"]


# --- an edit that changes nothing does not modify candidate (RFC 6241 7.5, 8.3.5.1) ---
BASE = session("s1", "<ca-name>/C=DE/CN=ca</ca-name><source-address>192.0.2.1</source-address>"
                     "<tls><trusted-cert>a.pem</trusted-cert><trusted-cert>b.pem</trusted-cert>"
                     "</tls><auto-update><expire-time>70</expire-time></auto-update>")
SAME_AGAIN = {
    "merge of the values there": (config(BASE), "merge"),
    "another spelling of a value": (config(session("s1", "<auto-update><expire-time>070"
                                                         "</expire-time></auto-update>")), "merge"),
    "remove of absent nodes": (config(session("s1", "<server-url nc:operation='remove'/>")
                                      + session("ghost", op="remove")), "merge"),
    "a leaf-list entry there": (config(session("s1", "<tls><trusted-cert>b.pem</trusted-cert>"
                                                     "</tls>")), "merge"),
    "operation none naming an absent entry": (config(session("new")), "none"),
    "replace of an entry by its content": (config(session(
        "s1", "<ca-name>/C=DE/CN=ca</ca-name><source-address>192.0.2.1</source-address>"
        "<tls><trusted-cert>a.pem</trusted-cert><trusted-cert>b.pem</trusted-cert></tls>"
        "<auto-update><expire-time>70</expire-time></auto-update>", op="replace")), "merge"),
    "replace of a container by its content": (config(session(
        "s1", "<tls nc:operation='replace'><trusted-cert>a.pem</trusted-cert>"
              "<trusted-cert>b.pem</trusted-cert></tls>")), "merge"),
}
CHANGES = {
    "a new value": config(session("s1", "<ca-name>/C=DE/CN=other</ca-name>")),
    "a new entry": config(session("s2")),
    "a delete": config(session("s1", "<ca-name nc:operation='delete'/>")),
    "a removed leaf-list entry": config(session("s1", "<tls><trusted-cert nc:operation='remove'>"
                                                      "a.pem</trusted-cert></tls>")),
    "the other case of a choice": config(session("s1", "<source-interface>eth0"
                                                       "</source-interface>")),
    "replace by less": config(session("s1", "<ca-name>/C=DE/CN=ca</ca-name>", op="replace")),
    "replace of a container by other content": config(session(
        "s1", "<tls nc:operation='replace'><trusted-cert>b.pem</trusted-cert>"
              "<trusted-cert>a.pem</trusted-cert></tls>")),
}


def committed_base(ds) -> None:
    assert ds.edit_config("candidate", config(BASE))
    ds.commit()
    assert not ds.candidate_dirty


@pytest.mark.parametrize("case", SAME_AGAIN)
def test_an_edit_that_changes_nothing_leaves_candidate_unmodified(ds, case):
    committed_base(ds)
    edit, default_operation = SAME_AGAIN[case]
    before, version = etree.tostring(ds.get_config("candidate")), ds.version("candidate")
    assert ds.edit_config("candidate", edit, default_operation=default_operation) is False
    assert not ds.candidate_dirty
    assert ds.version("candidate") == version  # not even replaced by an equal tree
    assert etree.tostring(ds.get_config("candidate")) == before


def test_replacing_the_whole_configuration_by_itself_changes_nothing(ds):
    committed_base(ds)
    whole = etree.Element(f"{{{config('').nsmap[None]}}}config")
    whole.extend(copy.deepcopy(ds.get_config("candidate", "explicit"))[:])
    assert ds.edit_config("candidate", whole, default_operation="replace") is False
    assert not ds.candidate_dirty
    del whole[-1]  # one top-level container less
    assert ds.edit_config("candidate", whole, default_operation="replace") is True
    assert ds.candidate_dirty


@pytest.mark.parametrize("case", CHANGES)
def test_an_edit_that_changes_something_modifies_candidate(ds, case):
    committed_base(ds)
    assert ds.edit_config("candidate", CHANGES[case]) is True
    assert ds.candidate_dirty


def test_an_edit_that_changes_nothing_keeps_an_earlier_modification(ds):
    committed_base(ds)
    ds.edit_config("candidate", CHANGES["a new entry"])
    assert ds.edit_config("candidate", config(BASE)) is False
    assert ds.candidate_dirty
