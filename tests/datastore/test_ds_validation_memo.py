"""The performance memos of agent/datastore/validation.py change no outcome.

validate_tree evaluates an absolute leafref path once per run and reuses
yangson's found schema children; every error must still come out, at the
same instance, as with yangson alone (``inst.validate`` outside
validate_tree runs yangson unchanged).
"""

from __future__ import annotations

import pytest
from ds_helpers import NC_NS, PKI_NS, config, session
from lxml import etree
from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import ValidationError

from agent.datastore import validation
from agent.datastore.validation import load_instance, validate_tree
from agent.netconf.errors import RpcError


def data(body: str) -> etree._Element:
    return etree.fromstring(f'<data xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">{body}</pki></data>')


def entity(name: str) -> str:
    return f"<entity><name>{name}</name><common-name>{name}.example</common-name></entity>"


def sessions(refs: list[str]) -> str:
    return "".join(session(f"s{i:03d}", f"<entity>{ref}</entity>") for i, ref in enumerate(refs))


def yangson_alone(smap, tree: etree._Element) -> str | None:
    """The error path yangson itself reports (no memo active), or None."""
    inst = load_instance(smap, tree)
    try:
        inst.validate(ValidationScope.all, ContentType.config)
    except ValidationError as exc:
        return validation.validation_error(smap, exc).path
    return None


def memoized(smap, tree: etree._Element) -> str | None:
    try:
        validate_tree(smap, tree)
    except RpcError as err:
        assert err.tag == "data-missing" and err.app_tag == "instance-required"
        return err.path
    return None


REFS = {
    "all valid": (["e1", "e2"], ["e1", "e2", "e1"] * 20),
    "missing first": (["e1"], ["ghost"] + ["e1"] * 30),
    "missing in the middle": (["e1", "e2"], ["e1"] * 15 + ["e3"] + ["e2"] * 15),
    "missing last": (["e1"], ["e1"] * 30 + ["E1"]),
    "no entity at all": ([], ["e1"] * 5),
    "similar names": (["e1x", "e10"], ["e1"]),
}


@pytest.mark.parametrize("case", REFS)
def test_leafref_outcome_equals_yangson_alone(ds, case):
    entities, refs = REFS[case]
    tree = data("".join(entity(e) for e in entities) + sessions(refs))
    expected = yangson_alone(ds.smap, tree)
    assert memoized(ds.smap, tree) == expected
    assert (expected is None) == (case == "all valid")


def test_the_failing_entry_is_named(ds):
    tree = data(entity("e1") + sessions(["e1"] * 40 + ["ghost"] + ["e1"] * 40))
    assert memoized(ds.smap, tree) == "/pki:pki/pki:cmp-session[pki:name='s040']/pki:entity"


def test_targets_are_not_remembered_across_runs(ds):
    """A commit after the referenced entity was deleted fails, though the
    previous validation (with the entity) passed."""
    ds.edit_config("candidate", config(entity("e1") + entity("e2")
                                       + sessions(["e1", "e2"] * 10)))
    ds.validate("candidate")
    ds.edit_config("candidate", config('<entity nc:operation="delete"><name>e2</name></entity>'))
    with pytest.raises(RpcError) as exc:
        ds.commit()
    assert exc.value.app_tag == "instance-required"
    assert exc.value.path == "/pki:pki/pki:cmp-session[pki:name='s001']/pki:entity"
    assert validation._LEAFREF_TARGETS.get() is None  # the run's memo is gone


def test_memo_is_off_outside_validate_tree(ds):
    tree = data(entity("e1") + sessions(["e1", "nope"]))
    with pytest.raises(RpcError):
        validate_tree(ds.smap, tree)
    assert validation._LEAFREF_TARGETS.get() is None
    assert yangson_alone(ds.smap, tree) == \
        "/pki:pki/pki:cmp-session[pki:name='s001']/pki:entity"


def test_unknown_member_still_rejected(ds):
    """get_data_child remembers found children only: a miss stays a miss."""
    pki_node = ds.smap.model.datamodel.get_data_node("/cmp-agent-pki:pki")
    for _ in range(2):
        assert pki_node.get_data_child("no-such-node", "cmp-agent-pki") is None
        assert pki_node.get_data_child("cmp-session", "cmp-agent-pki") is not None
    tree = data(entity("e1") + "<no-such-node>x</no-such-node>")
    for _ in range(2):
        with pytest.raises(RpcError) as exc:
            validate_tree(ds.smap, tree)
        assert exc.value.tag == "unknown-element"
