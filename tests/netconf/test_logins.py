"""Login limits (agent/netconf/logins.py) with an injected clock."""

from __future__ import annotations

import logging

from agent.netconf.logins import LoginGuard, LoginLimits, RateLimitedLog, source_block


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_delay_doubles_per_failure_up_to_the_cap_and_is_forgotten():
    clock = Clock()
    guard = LoginGuard(LoginLimits(base_delay=1, max_delay=8, forget_after=60), now=clock)
    assert guard.delay("192.0.2.1") == 0
    delays = []
    for _ in range(6):
        guard.failed("192.0.2.1")
        delays.append(guard.delay("192.0.2.1"))
    assert delays == [1, 2, 4, 8, 8, 8]
    assert guard.delay("192.0.2.2") == 0  # per source
    clock.t += 61
    assert guard.delay("192.0.2.1") == 0  # forgotten after a quiet minute
    guard.failed("192.0.2.1")
    guard.succeeded("192.0.2.1")
    assert guard.delay("192.0.2.1") == 0  # a good login clears the source


def test_remembered_sources_are_bounded():
    guard = LoginGuard(LoginLimits(max_sources=3), now=Clock())
    for i in range(10):
        guard.failed(f"192.0.2.{i}")
    assert [guard.delay(f"192.0.2.{i}") > 0 for i in range(10)] == [False] * 7 + [True] * 3


def test_unauthenticated_connections_are_capped(caplog):
    guard = LoginGuard(LoginLimits(max_startups=2), now=Clock())
    assert guard.connection_started("a") and guard.connection_started("b")
    with caplog.at_level(logging.WARNING):
        assert not any(guard.connection_started("c") for _ in range(100))
    assert len(caplog.records) == 1  # refusals are logged once per interval
    guard.connection_settled("a")
    assert guard.connection_started("c")


def test_one_source_cannot_take_every_slot(caplog):
    guard = LoginGuard(LoginLimits(max_startups=5, per_source_max_startups=3), now=Clock())
    assert all(guard.connection_started("192.0.2.1") for _ in range(3))
    with caplog.at_level(logging.WARNING):
        assert not any(guard.connection_started("192.0.2.1") for _ in range(100))
        assert not guard.connection_started("::ffff:192.0.2.1")  # the same address
    assert len(caplog.records) == 1  # logged once per interval, not per connection
    assert "connection from 192.0.2.1 refused: 3 connections from 192.0.2.1" in (
        caplog.records[0].getMessage())
    assert guard.connection_started("192.0.2.2") and guard.connection_started("127.0.0.1")
    assert not guard.connection_started("192.0.2.3")  # the global cap
    guard.connection_settled("192.0.2.1")
    assert guard.connection_started("192.0.2.1")
    for source in ("192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2", "127.0.0.1"):
        guard.connection_settled(source)
    assert guard.unauthenticated == 0 and guard.unauthenticated_from == {}


def test_an_ipv6_source_is_its_64():
    guard = LoginGuard(LoginLimits(per_source_max_startups=2), now=Clock())
    assert guard.connection_started("2001:db8:1:2::1")
    assert guard.connection_started("2001:db8:1:2:ffff::9%eth0")
    assert not guard.connection_started("2001:db8:1:2:abcd::1")  # same /64
    assert guard.connection_started("2001:db8:1:3::1")  # the next /64
    assert source_block("::1") == "::/64"
    assert source_block("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_block("?") == "?"


def test_the_default_per_source_cap_keeps_a_quarter_for_others():
    assert LoginLimits().per_source == 24
    assert LoginLimits(max_startups=4).per_source == 3
    assert LoginLimits(max_startups=1).per_source == 1
    assert LoginLimits(max_startups=4, per_source_max_startups=10).per_source == 4


def test_rate_limited_log_says_how_many_were_left_out(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test"), interval=60, now=clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            limited.warning("accept failed: %s", "EMFILE")
        clock.t += 61
        limited.warning("accept failed: %s", "EMFILE")
    assert [r.getMessage() for r in caplog.records] == [
        "accept failed: EMFILE",
        "accept failed: EMFILE (999 more like it in the last 60 s)"]
