"""Filters off the event loop (agent/netconf/filterrun.py): XPath in a worker
process within a time budget, subtree filters in a thread."""

from __future__ import annotations

import asyncio

import pytest
from lxml import etree

from agent.netconf.errors import RpcError
from agent.netconf.filterrun import FilterRunner
from agent.netconf.filters import FilterParam, apply_filter
from test_filters import NC, T, data, keys_of

#: each level multiplies the work by the number of nodes: never finishes, even on 5 nodes
RUNAWAY = "//*[count(" * 16 + "//*" + ") > 0]" * 16


def xpath(select: str) -> etree._Element:
    return etree.fromstring(f'<filter xmlns="{NC}" xmlns:t="{T}" type="xpath" select="{select}"/>')


def test_results_equal_the_in_process_evaluation():
    async def scenario():
        runner = FilterRunner()
        try:
            for f in (xpath("//t:dept | /t:top/t:users/t:user[1]/t:name"),
                      xpath("/top/users/user[name='fred']/type"),
                      etree.fromstring(f'<filter xmlns="{NC}"><top xmlns="{T}"><users><user>'
                                       "<name>fred</name></user></users></top></filter>")):
                got = await runner.apply(data(), FilterParam.of(f), keys_of)
                assert etree.tostring(got) == etree.tostring(apply_filter(data(), f, keys_of))
                assert len(got)
        finally:
            await runner.close()

    asyncio.run(scenario())


def test_the_worker_runs_the_agents_own_package_not_one_in_the_working_directory(
        tmp_path, monkeypatch):
    """The worker is started with ``-m``, which puts the working directory first on
    sys.path: an ``agent`` package there (another checkout, or planted) is not run."""
    decoy = tmp_path / "agent"
    (decoy / "netconf").mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy agent package ran')\n")
    (decoy / "netconf" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)

    async def scenario():
        runner = FilterRunner()
        try:
            f = xpath("/t:top/t:users/t:user[1]/t:name")
            got = await runner.apply(data(), FilterParam.of(f), keys_of)
            assert etree.tostring(got) == etree.tostring(apply_filter(data(), f, keys_of))
        finally:
            await runner.close()

    asyncio.run(scenario())


def test_runaway_xpath_is_stopped_and_the_loop_keeps_running():
    async def scenario():
        runner = FilterRunner(xpath_seconds=1.0)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            with pytest.raises(RpcError) as err:
                await runner.apply(data(), FilterParam.of(xpath(RUNAWAY)), keys_of)
            assert err.value.tag == "operation-failed"
            assert "filter too expensive" in err.value.message
            assert ticks > 0  # the loop ran meanwhile
            # the killed worker is replaced: the next filter is answered
            got = await runner.apply(data(), FilterParam.of(xpath("//t:dept")), keys_of)
            assert len(got.xpath("//t:dept", namespaces={"t": T})) == 3
        finally:
            task.cancel()
            await runner.close()

    asyncio.run(scenario())


def test_worker_errors_come_back_as_rpc_errors():
    async def scenario():
        runner = FilterRunner()
        try:
            with pytest.raises(RpcError) as err:
                await runner.apply(data(), FilterParam.of(xpath("count(//t:user)")), keys_of)
            assert err.value.tag == "invalid-value"
            assert err.value.info == {"bad-attribute": "select", "bad-element": "filter"}
        finally:
            await runner.close()

    asyncio.run(scenario())
