"""Running as raw data without yangson instances (agent/datastore/raw.py), and
the change summary's list entries that keep views of running up to date.

yangson's own ``raw_value()`` of the same tree is the oracle.
"""

from __future__ import annotations

import asyncio

from ds_helpers import PKI_NS, config, session
from lxml import etree

from agent.datastore import Datastores, SecretBox, steps
from agent.datastore.raw import raw_value
from agent.datastore.validation import load_instance

SESSIONS = (f"{{{PKI_NS}}}pki", f"{{{PKI_NS}}}cmp-session")
FULL = (
    "<file-format>der</file-format><weak-algorithms-enabled>true</weak-algorithms-enabled>"
    "<entity><name>e1</name><common-name>a.example</common-name><country>DE</country>"
    "<ip-address>192.0.2.7</ip-address></entity>"
    + session("s1", "<entity>e1</entity><ca-name>/CN=CA</ca-name>"
              "<server-url><url>http://192.0.2.1/pkix/</url><esc>true</esc></server-url>"
              "<local-key-pair><name>k1</name><regenerate>true</regenerate>"
              "<key-bits>3072</key-bits></local-key-pair>"
              "<source-address>192.0.2.9</source-address>"
              "<integrity-algorithm>hmac-sha1</integrity-algorithm>"
              "<auto-update><enabled>true</enabled><expire-time>80</expire-time></auto-update>")
    + session("s2", "<source-interface>eth0</source-interface>")
    + session("s3")
)


def test_raw_value_equals_yangsons_with_defaults_and_without(ds):
    ds.edit_config("candidate", config(FULL))
    ds.commit()
    for mode in ("report-all", "explicit", "trim"):
        tree = ds.config_view("running", mode)
        assert raw_value(ds.smap, ds.smap.root, tree) == load_instance(ds.smap, tree).raw_value()
    raw = ds.running_raw()
    s1 = raw["cmp-agent-pki:pki"]["cmp-session"][0]
    assert (s1["local-key-pair"]["key-bits"], s1["server-url"]["esc"]) == (3072, True)
    assert raw["cmp-agent-pki:pki"]["cmp-session"][2]["auto-update"]["expire-time"] == 50


def test_running_entries_reads_only_the_named_entries_with_defaults(ds):
    ds.edit_config("candidate", config(FULL))
    ds.commit()
    whole = {s["name"]: s for s in ds.running_raw()["cmp-agent-pki:pki"]["cmp-session"]}
    found = ds.running_entries(SESSIONS, [("s3",), ("s1",), ("ghost",)])
    assert found == {("s3",): whole["s3"], ("s1",): whole["s1"], ("ghost",): None}


def test_change_summary_names_the_changed_entries(ds):
    seen = []
    ds.add_commit_listener(seen.append)
    ds.edit_config("candidate", config(FULL))
    ds.commit()
    assert seen[-1].keys_of(*SESSIONS) is None  # entity and top-level leaves changed too
    ds.edit_config("candidate", config(
        session("s1", "<auto-update><expire-time>60</expire-time></auto-update>")
        + session("s2", op="delete") + session("s4")))
    ds.commit()
    assert seen[-1].keys_of(*SESSIONS) == {("s1",), ("s2",), ("s4",)}
    ds.edit_config("candidate", config("<entity><name>e1</name><country>FR</country></entity>"))
    ds.commit()
    summary = seen[-1]
    assert summary.entries == {((f"{{{PKI_NS}}}pki", f"{{{PKI_NS}}}entity"), ("e1",))}
    assert summary.keys_of(*SESSIONS) is None and not summary.outside_entries


def test_entry_index_of_a_prepared_commit(ds):
    """prepare_commit builds, in steps, the index of every list asked for before;
    keys and entries are those of the new running, also after a deletion."""
    ds.edit_config("candidate", config(FULL))
    ds.commit()
    assert sorted(ds.running_keys(SESSIONS)) == [("s1",), ("s2",), ("s3",)]
    ds.edit_config("candidate", config(session("s2", op="delete") + session("s4")))
    asyncio.run(ds.prepare_commit())
    ds.commit()
    assert sorted(ds.running_keys(SESSIONS)) == [("s1",), ("s3",), ("s4",)]
    found = ds.running_entries(SESSIONS, [("s4",), ("s2",)])
    assert found[("s2",)] is None and found[("s4",)]["name"] == "s4"


def test_running_views_built_in_slices_after_a_start(ds, model, state_dir, monkeypatch):
    """build_running_views (what the PKI service awaits after a start) gives the loop back
    between entries and leaves the same view, keys and entries as reading them at once;
    a commit while it runs wins."""
    ds.edit_config("candidate", config(FULL + "".join(session(f"x{i}") for i in range(20))))
    ds.commit()
    at_once = Datastores(model, state_dir, SecretBox.open(state_dir))
    expected = etree.tostring(at_once.config_view("running", "report-all"))
    monkeypatch.setattr(steps, "SLICE_SECONDS", 0.0)  # give way after every step

    async def build(restarted: Datastores, commit_meanwhile: bool) -> int:
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        building = asyncio.ensure_future(restarted.build_running_views(SESSIONS))
        if commit_meanwhile:
            while ticks < 10:
                await asyncio.sleep(0)
            restarted.edit_config("candidate", config(session("s2", op="delete")))
            restarted.commit()
        await building
        task.cancel()
        return ticks

    restarted = Datastores(model, state_dir, SecretBox.open(state_dir))
    assert asyncio.run(build(restarted, False)) > 20  # the loop ran between the entries
    assert etree.tostring(restarted.config_view("running", "report-all")) == expected
    assert sorted(restarted.running_keys(SESSIONS)) == sorted(at_once.running_keys(SESSIONS))
    keys = at_once.running_keys(SESSIONS)
    assert restarted.running_entries(SESSIONS, keys) == at_once.running_entries(SESSIONS, keys)

    restarted = Datastores(model, state_dir, SecretBox.open(state_dir))
    asyncio.run(build(restarted, True))
    assert ("s2",) not in restarted.running_keys(SESSIONS)
    assert b"<name>s2</name>" not in etree.tostring(restarted.config_view("running", "report-all"))
