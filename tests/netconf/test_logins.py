"""Login limits (agent/netconf/logins.py) with an injected clock."""

from __future__ import annotations

import logging

from agent.netconf.logins import LoginGuard, LoginLimits, RateLimitedLog


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
    guard.connection_settled()
    assert guard.connection_started("c")


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
