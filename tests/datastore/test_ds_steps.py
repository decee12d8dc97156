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
