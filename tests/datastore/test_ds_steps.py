"""Computations in steps (agent.datastore.steps) and the list index built in steps."""

from __future__ import annotations

import asyncio
import threading

import pytest
from lxml import etree

from agent.datastore.schema import index_steps
from agent.datastore.steps import run_cooperatively, run_steps

MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
PKI = "urn:cmp-agent:yang:cmp-agent-pki"


def asks_for_calls(log: list):
    """Pauses, asks for two calls (the second one fails), returns what it got back."""
    yield
    got = yield lambda: threading.current_thread().name
    log.append(got)
    try:
        yield lambda: 1 / 0
    except ZeroDivisionError as exc:
        log.append(type(exc).__name__)
    yield
    return got


def test_run_steps_makes_the_calls_at_once_and_sends_back_results_and_errors():
    log: list = []
    assert run_steps(asks_for_calls(log)) == threading.current_thread().name
    assert log == [threading.current_thread().name, "ZeroDivisionError"]


def test_run_cooperatively_makes_the_calls_in_a_worker_thread():
    log: list = []
    got = asyncio.run(run_cooperatively(asks_for_calls(log), slice_seconds=0.0))
    assert got != threading.current_thread().name and log == [got, "ZeroDivisionError"]


def test_an_error_of_a_call_not_caught_by_the_computation_is_raised():
    def steps():
        yield lambda: {}["missing"]
        return "not reached"

    with pytest.raises(KeyError):
        run_steps(steps())
    with pytest.raises(KeyError):
        asyncio.run(run_cooperatively(steps()))


def entries(ns: str, list_name: str, keys: list[tuple[str, ...]], key_names: tuple[str, ...]):
    parent = etree.Element(f"{{{ns}}}parent", nsmap={None: ns})
    for key in keys:
        entry = etree.SubElement(parent, f"{{{ns}}}{list_name}")
        for name, value in zip(key_names, key):
            etree.SubElement(entry, f"{{{ns}}}{name}").text = value
        etree.SubElement(entry, f"{{{ns}}}other").text = "x"
    return parent


def test_index_steps_indexes_by_key_and_pauses(ds):
    """One key (the usual case, read from the key elements) and three keys (the
    netconf-monitoring schema list); a pause every 64 entries."""
    pki = ds.smap.child(ds.smap.root, f"{{{PKI}}}pki")
    sessions = ds.smap.child(pki, f"{{{PKI}}}cmp-session")
    parent = entries(PKI, "cmp-session", [(f"s{i}",) for i in range(130)] + [("",)], ("name",))
    steps = index_steps(parent, sessions)
    pauses = 0
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
            pauses += 1
    index = done.value.value
    assert pauses == 2 and len(index) == 131
    assert index[("s7",)] is parent[7] and index[("",)] is parent[130]

    # the key is looked for where it is not the first child; an entry without it is left out
    moved = parent[3]
    moved.append(moved[0])
    del parent[5][0]
    index = run_steps(index_steps(parent, sessions))
    assert index[("s3",)] is moved and ("s5",) not in index and len(index) == 130

    state = ds.smap.child(ds.smap.root, f"{{{MON}}}netconf-state")
    schemas = ds.smap.child(ds.smap.child(state, f"{{{MON}}}schemas"), f"{{{MON}}}schema")
    assert len(schemas.key_tags) == 3
    keys = [("m", "2020-01-01", "yang"), ("m", "2021-01-01", "yang"), ("n", "", "yin")]
    parent = entries(MON, "schema", keys, ("identifier", "version", "format"))
    index = run_steps(index_steps(parent, schemas))
    assert list(index) == keys and index[keys[1]] is parent[1]
    assert run_steps(index_steps(None, schemas)) == {}


def test_diff_steps_pauses_while_it_identifies_a_long_list(ds, monkeypatch):
    """The entries of a long list are identified (key, XPath step) with pauses
    between them, not all at once before the first is compared; the summary is
    the same however often it pauses."""
    from ds_helpers import config, session

    from agent.datastore import changes

    ds.edit_config("candidate", config("".join(session(f"s{i:03d}") for i in range(200))))
    ds.commit()
    ds.edit_config("candidate", config(session("s007", "<ca-name>/CN=X</ca-name>")))
    old, new = ds._trees["running"], ds._trees["candidate"]

    def pauses_and_summary(per_pause: int):
        monkeypatch.setattr(changes, "_IDENTIFIED_PER_PAUSE", per_pause)
        steps, pauses = changes.diff_steps(ds.smap, old, new), 0
        with pytest.raises(StopIteration) as done:
            while True:
                next(steps)
                pauses += 1
        return pauses, done.value.value

    once, summary = pauses_and_summary(10**9)  # a pause after each entry compared only
    often, same = pauses_and_summary(10)
    assert once == 200 and often >= once + 2 * 200 // 10
    assert same == summary == changes.diff(ds.smap, old, new)
    assert summary.created == ["/pki:pki/pki:cmp-session[pki:name='s007']/pki:ca-name"]


def test_report_all_steps_pauses_among_a_long_lists_siblings(ds, monkeypatch):
    """The children of a long list's parent are looked at with pauses between them,
    not all at once before the first entry is filled; the view is apply()'s."""
    import copy

    from ds_helpers import config, session

    from agent.datastore import defaults

    ds.edit_config("candidate", config("".join(session(f"s{i:03d}") for i in range(300))))
    tree = ds._trees["candidate"]
    monkeypatch.setattr(defaults, "_LISTED_PER_PAUSE", 50)
    steps, pauses = ds._defaults.report_all_steps(copy.deepcopy(tree)), 0
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
            pauses += 1
    # a pause after each entry, and every 50 of the 300 while they are listed
    assert pauses == 300 + 300 // 50
    expected = ds._defaults.apply(copy.deepcopy(tree), "report-all")
    assert etree.tostring(done.value.value) == etree.tostring(expected)
