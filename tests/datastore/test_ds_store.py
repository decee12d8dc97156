"""Datastores: commit, discard, validation at commit, with-defaults,
persistence, secrets, crash safety."""

from __future__ import annotations

import asyncio
import os
import stat
import threading

import pytest
from ds_helpers import NC_NS, PKI_NS, config, pki, session, xp
from lxml import etree

from agent.datastore import Datastores, DatastoreLoadError, SecretBox, steps
from agent.datastore.steps import run_steps
from agent.datastore.store import copy_steps
from agent.netconf.errors import RpcError

NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
WD_ATTR = "{urn:ietf:params:xml:ns:netconf:default:1.0}default"
SECRET = "s3cr3t-MAC-value"


def mac(secret: str = SECRET) -> str:
    return (f"<message-authentication-code><reference-value>ref1</reference-value>"
            f"<secret-value>{secret}</secret-value></message-authentication-code>")


def reopen(model, state_dir) -> Datastores:
    return Datastores(model, state_dir, SecretBox.open(state_dir))


# -- commit / discard ---------------------------------------------------------------------
def test_commit_moves_candidate_to_running(ds):
    ds.edit_config("candidate", config("<entity><name>e1</name></entity>"
                                       + session("s1", "<entity>e1</entity>")))
    summary = ds.commit()
    assert summary.created == ["/pki:pki"]
    assert not ds.candidate_dirty
    assert xp(ds.get_config("running"), "//p:cmp-session/p:entity/text()") == ["e1"]
    ds.edit_config("candidate", config(session("s1", "<ca-name>/CN=x</ca-name>")
                                       + session("s2")))
    summary = ds.commit()
    assert summary.created == ["/pki:pki/pki:cmp-session[pki:name='s1']/pki:ca-name",
                               "/pki:pki/pki:cmp-session[pki:name='s2']"]
    ds.edit_config("candidate", config(session("s2", op="delete")))
    assert ds.commit().deleted == ["/pki:pki/pki:cmp-session[pki:name='s2']"]


def test_discard_changes(ds):
    ds.edit_config("candidate", config(session("s1")))
    ds.commit()
    ds.edit_config("candidate", config(session("s1", op="delete")))
    ds.discard_changes()
    assert not ds.candidate_dirty
    assert xp(ds.get_config("candidate"), "//p:cmp-session/p:name/text()") == ["s1"]


def test_leafref_checked_at_commit_not_at_edit(ds):
    ds.edit_config("candidate", config(session("s1", "<entity>ghost</entity>")))  # accepted
    with pytest.raises(RpcError) as exc:
        ds.commit()
    err = exc.value
    assert err.tag == "data-missing" and err.app_tag == "instance-required"
    assert err.path == "/pki:pki/pki:cmp-session[pki:name='s1']/pki:entity"
    assert err.path_namespaces == {"pki": PKI_NS}
    assert pki(ds.get_config("running", "explicit")) is None  # running untouched
    with pytest.raises(RpcError):
        ds.validate("candidate")
    ds.edit_config("candidate", config("<entity><name>ghost</name></entity>"))
    ds.validate("candidate")
    ds.commit()


def test_must_weak_algorithm(ds):
    # seed step 9: the device provides the weak-algorithm package by default
    ds.edit_config("candidate", config(session("s1", "<integrity-algorithm>hmac-sha1"
                                                     "</integrity-algorithm>")))
    ds.commit()
    ds.edit_config("candidate", config("<weak-algorithms-enabled>false</weak-algorithms-enabled>"))
    with pytest.raises(RpcError) as exc:
        ds.commit()
    assert exc.value.tag == "operation-failed"
    assert exc.value.app_tag == "weak-algorithm-disabled"
    assert "weak-algorithms-enabled" in exc.value.message


def test_validate_inline_config(ds):
    ds.validate(config(session("s1")))
    with pytest.raises(RpcError):
        ds.validate(config(session("s1", "<entity>ghost</entity>")))


# -- with-defaults (RFC 6243) -------------------------------------------------------------
def test_with_defaults_modes(ds):
    ds.edit_config("candidate", config(session("s1", "<auto-update><expire-time>50</expire-time>"
                                                     "<enabled>true</enabled></auto-update>")))
    ds.commit()
    all_ = ds.get_config("running", "report-all")
    assert xp(all_, "//p:file-format/text()") == ["pem"]
    assert xp(all_, "//p:weak-algorithms-enabled/text()") == ["true"]
    # key-bits has no default: a regenerated pair keeps its length (and it exists only
    # with regenerate, its when)
    assert xp(all_, "//p:cmp-session/p:local-key-pair/p:key-bits") == []
    assert xp(all_, "//p:cmp-session/p:server-url/p:esc/text()") == ["false"]
    assert xp(all_, "//p:integrity-algorithm/text()") == ["hmac-sha256"]
    # no case of the choice is set and it has no default case: nothing added
    assert xp(all_, "//p:source-interface | //p:source-address") == []
    explicit = ds.get_config("running", "explicit")
    assert xp(explicit, "//p:file-format") == []
    assert xp(explicit, "//p:expire-time/text()") == ["50"]
    trim = ds.get_config("running", "trim")
    assert xp(trim, "//p:expire-time") == [] and xp(trim, "//p:enabled/text()") == ["true"]
    tagged = ds.get_config("running", "report-all-tagged")
    (ff,) = xp(tagged, "//p:file-format")
    (et,) = xp(tagged, "//p:expire-time")
    (en,) = xp(tagged, "//p:enabled")
    assert ff.get(WD_ATTR) == "true" and et.get(WD_ATTR) == "true"
    assert en.get(WD_ATTR) is None
    with pytest.raises(RpcError):
        ds.get_config("running", "bogus")


def test_get_config_returns_independent_copies(ds):
    first = ds.get_config("candidate")
    first.append(etree.Element("junk"))
    assert ds.get_config("candidate").find("junk") is None


# -- copy/delete-config, startup --------------------------------------------------------------
def test_copy_config_and_startup(ds, model, state_dir):
    ds.edit_config("candidate", config(session("s1")))
    ds.commit()
    ds.copy_config("startup", "running")
    assert (state_dir / "startup.xml").exists()
    assert xp(ds.get_config("startup"), "//p:cmp-session/p:name/text()") == ["s1"]
    ds.copy_config("candidate", config(session("s9")))
    assert xp(ds.get_config("candidate"), "//p:cmp-session/p:name/text()") == ["s9"]
    with pytest.raises(RpcError) as exc:
        ds.copy_config("running", "candidate")
    assert exc.value.tag == "operation-not-supported"
    with pytest.raises(RpcError):  # startup must stay bootable
        ds.copy_config("startup", config(session("x", "<entity>ghost</entity>")))
    ds.delete_config("startup")
    assert not (state_dir / "startup.xml").exists()
    assert pki(ds.get_config("startup", "explicit")) is None
    with pytest.raises(RpcError) as exc:
        ds.delete_config("running")
    assert exc.value.tag == "operation-not-supported"


def test_boot_from_startup_when_no_running(ds, model, state_dir):
    ds.copy_config("startup", config(session("boot")))
    fresh = reopen(model, state_dir)
    assert xp(fresh.get_config("running"), "//p:cmp-session/p:name/text()") == ["boot"]


# -- persistence -------------------------------------------------------------------------------
def test_persistence_and_reload(ds, model, state_dir):
    ds.edit_config("candidate", config(session("s1", "<ca-name>/C=DE/O=Ex/CN=CA</ca-name>")))
    ds.commit()
    ds.edit_config("candidate", config(session("uncommitted")))
    mode = stat.S_IMODE(os.stat(state_dir / "running.xml").st_mode)
    assert mode == 0o600
    fresh = reopen(model, state_dir)
    names = xp(fresh.get_config("running"), "//p:cmp-session/p:name/text()")
    assert names == ["s1"]
    assert xp(fresh.get_config("candidate"), "//p:cmp-session/p:name/text()") == ["s1"]
    assert xp(fresh.get_config("running"), "//p:ca-name/text()") == ["/C=DE/O=Ex/CN=CA"]


def temporaries(state_dir) -> list[str]:
    return [p.name for p in state_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("prepared", [False, True], ids=["at once", "prepared"])
def test_crash_during_write_keeps_old_file(ds, model, state_dir, monkeypatch, prepared):
    """Also for a commit prepared by prepare_commit, which writes the new file
    to a temporary one (in a worker thread) that commit only renames."""
    ds.edit_config("candidate", config(session("old")))
    ds.commit()
    before = (state_dir / "running.xml").read_bytes()
    ds.edit_config("candidate", config(session("new")))
    if prepared:
        asyncio.run(ds.prepare_commit())
        assert len(temporaries(state_dir)) == 1

    def crash(*args, **kwargs):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ds.commit()
    monkeypatch.undo()
    assert (state_dir / "running.xml").read_bytes() == before
    assert temporaries(state_dir) == []
    # memory is unchanged too, and a restart sees the old configuration
    assert xp(ds.get_config("running"), "//p:cmp-session/p:name/text()") == ["old"]
    fresh = reopen(model, state_dir)
    assert xp(fresh.get_config("running"), "//p:cmp-session/p:name/text()") == ["old"]
    assert ds.candidate_dirty
    ds.commit()  # works again once the disk does


def test_a_prepared_commit_not_used_leaves_no_temporary_file(ds, model, state_dir):
    ds.edit_config("candidate", config(session("old")))
    asyncio.run(ds.prepare_commit())
    ds.release_prepared()  # e.g. a lock taken meanwhile: the commit is refused
    assert temporaries(state_dir) == [] and not (state_dir / "running.xml").exists()
    asyncio.run(ds.prepare_commit())
    ds.edit_config("candidate", config(session("new")))  # the prepared result is stale
    ds.commit()
    assert temporaries(state_dir) == []
    assert xp(reopen(model, state_dir).get_config("running"),
              "//p:cmp-session/p:name/text()") == ["old", "new"]


def test_prepare_commit_cancelled_while_staging_leaves_no_temporary_file(ds, state_dir,
                                                                         monkeypatch):
    """The worker thread that writes the staged file cannot be stopped: once it
    is done, the file of the cancelled preparation is removed."""
    ds.edit_config("candidate", config(session("old")))
    started, go_on = threading.Event(), threading.Event()
    original = Datastores._stage

    def held_stage(self, new, write):
        started.set()
        go_on.wait(10)
        return original(self, new, write)

    monkeypatch.setattr(Datastores, "_stage", held_stage)

    async def scenario() -> None:
        task = asyncio.ensure_future(ds.prepare_commit())
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go_on.set()
        while any(t is not asyncio.current_task() for t in asyncio.all_tasks()):
            await asyncio.sleep(0.001)  # the staging thread ends, then its task
        await asyncio.sleep(0)  # the task's done-callbacks run

    asyncio.run(scenario())
    assert temporaries(state_dir) == []
    assert ds._prepared is None
    ds.commit()  # committed at once instead
    assert xp(ds.get_config("running"), "//p:cmp-session/p:name/text()") == ["old"]


def test_prepare_commit_gives_the_loop_back(ds, monkeypatch):
    """The quick check and the view are computed in slices on the event loop:
    other tasks run between them (here after every list entry)."""
    monkeypatch.setattr(steps, "SLICE_SECONDS", 0.0)
    ds.edit_config("candidate", config("<entity><name>e</name></entity>" + "".join(
        session(f"s{i}", "<entity>e</entity>") for i in range(40))))

    async def scenario() -> int:
        ticks = [0]
        done = asyncio.Event()

        async def other_session() -> None:
            while not done.is_set():
                ticks[0] += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(other_session())
        await asyncio.sleep(0)
        start = ticks[0]
        await ds.prepare_commit()
        done.set()
        await task
        return ticks[0] - start

    assert asyncio.run(scenario()) >= 80  # a view step and a check step per entry
    assert ds.commit().created == ["/pki:pki"]


def test_copy_in_steps_is_a_deep_copy(ds):
    ds.edit_config("candidate", config("".join(session(f"s{i:03d}") for i in range(100)),
                                       f'<nacm xmlns="{NACM_NS}"><enable-nacm>true</enable-nacm>'
                                       "</nacm>"))
    tree = ds.config_view("candidate", "explicit")
    copied = run_steps(copy_steps(tree))
    assert etree.tostring(copied) == etree.tostring(tree)
    assert copied is not tree and copied[0][0] is not tree[0][0]


def test_copy_in_steps_builds_containers_in_place():
    """Containers copied a child at a time are made inside their parent's copy (a long
    list is not moved into the copy's document at once, see copy_steps): namespace
    declarations, attributes and texts are still those of the original."""
    root = etree.fromstring(
        f'<data xmlns="{NC_NS}"><a xmlns="urn:a" xmlns:p="urn:p" p:x="1">t'
        + "".join(f"<e><k>{i}</k><p:v>v</p:v></e>" for i in range(70))
        + '</a><b xmlns="urn:b"><c xmlns:q="urn:q">'
        + "".join(f"<q:e>{i}</q:e>" for i in range(70)) + "</c></b></data>")
    copied = run_steps(copy_steps(root))
    assert etree.tostring(copied) == etree.tostring(root)
    assert [el.nsmap for el in copied.iter()] == [el.nsmap for el in root.iter()]


def test_what_running_was_is_let_go_of_after_the_commits_step(ds):
    """The tree running had before a commit and its report-all view are let go of in
    later loop iterations, one at a time, not in the commit's last step (freeing a
    large tree holds the loop)."""
    ds.edit_config("candidate", config(session("s1")))
    ds.commit()
    old, old_view = ds._trees["running"], ds.config_view("running")
    ds.edit_config("candidate", config(session("s2")))

    def held() -> tuple[bool, bool]:
        return (any(item is old for item in ds._releasing),
                any(isinstance(item, tuple) and item[1] is old_view for item in ds._releasing))

    async def scenario():
        await ds.commit_durably()
        after_commit = held(), len(ds._releasing)
        await asyncio.sleep(0)
        after_one = len(ds._releasing)
        for _ in range(3):
            await asyncio.sleep(0)
        return after_commit, after_one, list(ds._releasing)

    (was_held, count), after_one, left = asyncio.run(scenario())
    assert was_held == (True, True) and count == 2
    assert after_one == 1 and left == []  # one per loop iteration
    assert ds._trees["running"] is not old and pki(ds._trees["running"]) is not None
    ds.edit_config("candidate", config(session("s3")))
    ds.commit()  # without an event loop: nothing kept
    assert ds._releasing == []


def test_corrupt_file_is_a_clear_error(model, state_dir):
    state_dir.mkdir(parents=True)
    (state_dir / "running.xml").write_text("<data")
    with pytest.raises(DatastoreLoadError, match="running.xml"):
        reopen(model, state_dir)


def test_hand_edited_file_with_a_bad_value_or_a_comment(model, state_dir):
    """A value of the wrong type is a DatastoreLoadError naming it; comments are
    ignored."""
    state_dir.mkdir(parents=True)
    running = state_dir / "running.xml"
    running.write_text(f'<data xmlns="{NC_NS}"><pki xmlns="{PKI_NS}"><!-- edited by hand -->'
                       "<file-format>der</file-format></pki></data>")
    assert xp(reopen(model, state_dir).get_config("running"), "//p:file-format/text()") == ["der"]
    running.write_text(f'<data xmlns="{NC_NS}"><pki xmlns="{PKI_NS}">'
                       "<weak-algorithms-enabled>yes</weak-algorithms-enabled></pki></data>")
    with pytest.raises(DatastoreLoadError, match="weak-algorithms-enabled.*expected boolean"):
        reopen(model, state_dir)


# -- secrets -----------------------------------------------------------------------------------
def test_secret_encrypted_everywhere(ds, model, state_dir):
    ds.edit_config("candidate", config(session("s1", mac())))
    stored = xp(ds.get_config("candidate"), "//p:secret-value/text()")[0]
    assert stored.startswith("$cmp$1$") and SECRET not in stored
    assert ds.secrets.open_text(stored) == SECRET
    summary = ds.commit()
    for path in state_dir.iterdir():
        assert SECRET.encode() not in path.read_bytes()
    for mode in ("report-all", "explicit", "trim", "report-all-tagged"):
        assert SECRET not in etree.tostring(ds.get_config("running", mode)).decode()
    assert SECRET not in summary.describe()
    key = state_dir / "secret.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    # the ciphertext read back can be written again and is kept as is
    ds.edit_config("candidate", config(session("s2", mac(stored))))
    assert xp(ds.get_config("candidate"), "//p:cmp-session[p:name='s2']//p:secret-value/text()") \
        == [stored]
    # after a restart (same key file) it still opens
    fresh = reopen(model, state_dir)
    again = xp(fresh.get_config("running"), "//p:secret-value/text()")[0]
    assert fresh.secrets.open_text(again) == SECRET


def test_rewriting_the_same_clear_secret_changes_nothing(ds):
    """Idempotent tools re-send the clear text; the stored ciphertext must not churn."""
    ds.edit_config("candidate", config(session("s1", mac())))
    ds.commit()
    before = etree.tostring(ds.get_config("running"))
    ds.edit_config("candidate", config(session("s1", mac())))
    ds.commit()
    assert etree.tostring(ds.get_config("running")) == before
    ds.edit_config("candidate", config(session("s1", mac("another-secret"))))
    ds.commit()
    assert etree.tostring(ds.get_config("running")) != before


def test_the_clear_text_of_a_secret_is_not_remembered(ds):
    """Canonical leaf texts are remembered per type and text (SchemaMap.leaf_texts),
    never a secret's clear text."""
    ds.edit_config("candidate", config(session("s1", "<ca-name>/CN=remembered</ca-name>"
                                               + mac())))
    remembered = set(ds.smap.leaf_texts.values())
    assert "/CN=remembered" in remembered and SECRET not in remembered


def test_secret_via_copy_config_inline(ds):
    ds.copy_config("candidate", config(session("s1", mac())))
    text = etree.tostring(ds.get_config("candidate")).decode()
    assert SECRET not in text and "$cmp$1$" in text


def test_secret_errors_never_echo_the_value(ds):
    too_long = "x" * 129
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("s1", mac(too_long))))
    assert exc.value.tag == "invalid-value" and too_long not in str(exc.value)
    with pytest.raises(RpcError) as exc:  # looks like ours but is not
        ds.edit_config("candidate", config(session("s1", mac("$cmp$1$AAAAAAAAAAAAAAAAAAAAAAAA"))))
    assert exc.value.tag == "invalid-value"
    with pytest.raises(RpcError) as exc:
        ds.edit_config("candidate", config(session("s1", mac("y" * 300))))
    assert "y" * 300 not in str(exc.value)
    with pytest.raises(RpcError) as exc:  # 128 characters, but 512 bytes once encoded
        ds.edit_config("candidate", config(session("s1", mac("\U0001F511" * 128))))
    assert exc.value.tag == "invalid-value" and "\U0001F511" not in str(exc.value)


def test_change_summary_never_shows_secrets(ds):
    ds.edit_config("candidate", config(session("s1", mac())))
    ds.commit()
    ds.edit_config("candidate", config(session("s1", mac("another-secret"))))
    summary = ds.commit()
    assert summary.modified == [
        "/pki:pki/pki:cmp-session[pki:name='s1']/pki:message-authentication-code/pki:secret-value"]
    line = summary.describe()
    assert "another-secret" not in line and "$cmp$" not in line and "modified 1" in line


def test_secret_box_rejects_foreign_ciphertext(tmp_path):
    mine, other = SecretBox.open(tmp_path / "a"), SecretBox.open(tmp_path / "b")
    sealed = mine.seal("abc")
    assert mine.is_ciphertext(sealed) and not other.is_ciphertext(sealed)
    assert not mine.is_ciphertext("abc")
    with pytest.raises(RpcError):
        other.open_text(sealed)
    assert mine.seal("abc") != sealed  # fresh nonce each time


# -- confirmed-commit support, listeners, raw view --------------------------------------------
def test_snapshot_restore_and_listeners(ds, model, state_dir):
    seen = []
    ds.add_commit_listener(lambda summary: seen.append((summary, ds.running_raw())))
    ds.edit_config("candidate", config(session("a")))
    ds.commit()
    snap = ds.running_snapshot()
    ds.edit_config("candidate", config(session("b")))
    ds.commit()
    summary = ds.restore_running(snap)
    assert summary.deleted == ["/pki:pki/pki:cmp-session[pki:name='b']"]
    assert xp(ds.get_config("candidate"), "//p:cmp-session/p:name/text()") == ["a"]
    assert xp(reopen(model, state_dir).get_config("running"),
              "//p:cmp-session/p:name/text()") == ["a"]
    assert len(seen) == 3
    told, new = seen[-1]
    assert told is summary
    names = [s["name"] for s in new["cmp-agent-pki:pki"]["cmp-session"]]
    assert names == ["a"]
    assert new["cmp-agent-pki:pki"]["cmp-session"][0]["auto-update"]["expire-time"] == 50

def test_running_raw_has_defaults(ds):
    raw = ds.running_raw()
    assert raw["cmp-agent-pki:pki"]["file-format"] == "pem"


# -- a commit prepared off the event loop ----------------------------------------------------
def test_a_prepared_commit_is_used_only_for_the_versions_it_saw(ds):

    def names(source: str) -> list[str]:
        return xp(ds.get_config(source), "//p:cmp-session/p:name/text()")

    ds.edit_config("candidate", config(session("a")))
    asyncio.run(ds.prepare_commit())
    assert ds.commit().created == ["/pki:pki"]
    assert names("running") == ["a"]
    ds.edit_config("candidate", config(session("b")))
    asyncio.run(ds.prepare_commit())
    ds.edit_config("candidate", config(session("c")))  # after the preparation: not lost
    ds.commit()
    assert names("running") == ["a", "b", "c"]
    ds.edit_config("candidate", config(session("d", "<entity>ghost</entity>")))
    with pytest.raises(RpcError) as err:
        asyncio.run(ds.prepare_commit())  # yangson's validation, in a worker thread
    assert err.value.tag == "data-missing"
    with pytest.raises(RpcError):
        ds.commit()
    assert names("running") == ["a", "b", "c"]


def test_a_committed_running_boots_without_validation_any_other_is_validated(
        ds, model, state_dir, monkeypatch):
    from agent.datastore import store as store_module

    ds.edit_config("candidate", config(session("a", "<entity>e1</entity>")
                                       + "<entity><name>e1</name></entity>"))
    ds.commit()
    calls = []
    real = store_module.validate_tree
    monkeypatch.setattr(store_module, "validate_tree",
                        lambda smap, tree: calls.append(1) or real(smap, tree))
    assert xp(reopen(model, state_dir).get_config("running"),
              "//p:cmp-session/p:name/text()") == ["a"]
    assert calls == []  # written by a commit: validated then
    running = state_dir / "running.xml"
    data = running.read_bytes()
    assert data.count(b"<!-- cmp-agent validated ") == 1
    running.write_bytes(data.replace(b"<name>e1</name>", b"<name>e2</name>"))  # a hand edit
    with pytest.raises(DatastoreLoadError, match="not valid against the model"):
        reopen(model, state_dir)
    assert calls == [1]
    assert running.read_bytes().count(b"<name>e2</name>") == 1  # not rewritten
    # a valid file without a stamp of these module texts (a hand edit, an older model
    # or stamp): validated once, then stamped as a commit stamps it
    body = data.rpartition(b"<!-- cmp-agent validated ")[0]
    running.write_bytes(body + b"<!-- cmp-agent validated 0123 -->\n")
    assert xp(reopen(model, state_dir).get_config("running"),
              "//p:cmp-session/p:name/text()") == ["a"]
    assert calls == [1, 1]
    assert running.read_bytes() == data
    reopen(model, state_dir)
    assert calls == [1, 1]
    # written meanwhile by another process on the state directory: left as it wrote it
    running.write_bytes(body)
    monkeypatch.setattr(store_module, "validate_tree",
                        lambda smap, tree: running.write_bytes(b"<data/>\n"))
    reopen(model, state_dir)
    assert running.read_bytes() == b"<data/>\n"
