"""Limits on SSH logins: guessing and flooding cost the attacker, not the agent.

Modelled on OpenSSH's sshd (sshd_config(5)):

* ``MaxAuthTries``: a connection is cut after :attr:`LoginLimits.max_auth_tries`
  failed password (or keyboard-interactive) attempts;
* ``PerSourcePenalties``, simplified: every authentication answer to a source
  address that failed recently is delayed, 1 s after the first failure,
  doubling with each further one up to :attr:`LoginLimits.max_delay`;
  the failures are forgotten after :attr:`LoginLimits.forget_after` seconds
  without one, or at a successful login;
* ``MaxStartups``: at most :attr:`LoginLimits.max_startups` connections may
  be unauthenticated at once; more are closed at once (idle TCP connections
  exhausted the descriptors and locked every user out);
* ``PerSourceMaxStartups``: one source may hold at most
  :attr:`LoginLimits.per_source` of those connections (by default three
  quarters of ``max_startups``), so one address that opens connections and
  never logs in cannot take every slot and lock the operators out; its
  connections over the cap are closed at once. A source is an IPv4 address or
  an IPv6 /64 (:func:`source_block`), as ``PerSourceNetBlockSize 32:64``:
  sshd's default is ``32:128``, but one host commonly holds a whole /64
  (SLAAC, privacy addresses), so per /128 it would be uncapped;
* ``LoginGraceTime``: :attr:`LoginLimits.login_grace` seconds to authenticate;
* ``KbdInteractiveAuthentication`` is off unless configured.

:class:`LoginGuard` holds the state; the SSH adapter in
:mod:`agent.netconf.server` asks it. Time comes from an injectable clock.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("agent.netconf.logins")


@dataclass(frozen=True)
class LoginLimits:
    max_auth_tries: int = 6
    base_delay: float = 1.0
    max_delay: float = 10.0  # below login_grace: a patient user still gets in
    forget_after: float = 900.0
    max_startups: int = 32
    #: unauthenticated connections one source may hold (None: ``max_startups`` less a
    #: quarter of it, at least 1, kept for other sources)
    per_source_max_startups: int | None = None
    #: the IPv6 prefix length counted as one source (IPv4: each address)
    ipv6_block: int = 64
    login_grace: float = 20.0
    keyboard_interactive: bool = False
    #: source addresses remembered at most (the oldest are forgotten first)
    max_sources: int = 10_000

    @property
    def per_source(self) -> int:
        """The effective per-source cap (never above ``max_startups``)."""
        if self.per_source_max_startups is not None:
            return min(self.per_source_max_startups, self.max_startups)
        return max(1, self.max_startups - max(1, self.max_startups // 4))


@dataclass
class _Failures:
    count: int
    last: float


class LoginGuard:
    """Failures per source address and the count of unauthenticated connections."""

    def __init__(self, limits: LoginLimits | None = None,
                 now: Callable[[], float] = time.monotonic):
        self.limits = limits or LoginLimits()
        self._now = now
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        #: connections not (yet) authenticated
        self.unauthenticated = 0
        #: the same per source (:func:`source_block`); sources with none are dropped
        self.unauthenticated_from: dict[str, int] = {}
        self._refusals = RateLimitedLog(log, now=now)
        self._source_refusals = RateLimitedLog(log, now=now)

    # --- MaxStartups, PerSourceMaxStartups ----------------------------------------------
    def connection_started(self, source: str) -> bool:
        """Whether a new connection from *source* may try to log in (count it if so)."""
        if self.unauthenticated >= self.limits.max_startups:
            self._refusals.warning(
                "connection from %s refused: %d connections are not authenticated yet",
                source, self.unauthenticated)
            return False
        block = source_block(source, self.limits.ipv6_block)
        held = self.unauthenticated_from.get(block, 0)
        if held >= self.limits.per_source:
            self._source_refusals.warning(
                "connection from %s refused: %d connections from %s are not authenticated"
                " yet (per-source limit)", source, held, block)
            return False
        self.unauthenticated += 1
        self.unauthenticated_from[block] = held + 1
        return True

    def connection_settled(self, source: str) -> None:
        """A counted connection from *source* authenticated or went away."""
        self.unauthenticated -= 1
        block = source_block(source, self.limits.ipv6_block)
        held = self.unauthenticated_from.pop(block, 0) - 1
        if held > 0:
            self.unauthenticated_from[block] = held

    # --- failures and delays ----------------------------------------------------------
    def delay(self, source: str) -> float:
        """Seconds to wait before answering an authentication attempt from *source*."""
        entry = self._recent(source)
        if entry is None:
            return 0.0
        return min(self.limits.max_delay, self.limits.base_delay * 2 ** (entry.count - 1))

    def failed(self, source: str) -> None:
        entry = self._recent(source)
        if entry is None:
            entry = self._failures[source] = _Failures(0, 0.0)
            while len(self._failures) > self.limits.max_sources:
                self._failures.popitem(last=False)
        entry.count += 1
        entry.last = self._now()
        self._failures.move_to_end(source)

    def succeeded(self, source: str) -> None:
        self._failures.pop(source, None)

    def _recent(self, source: str) -> _Failures | None:
        entry = self._failures.get(source)
        if entry is not None and self._now() - entry.last > self.limits.forget_after:
            del self._failures[source]
            return None
        return entry


def source_block(host: str, ipv6_block: int = 64) -> str:
    """What counts as one source: an IPv4 address (also IPv4-mapped IPv6), the IPv6
    network of *ipv6_block* bits around an IPv6 address, or *host* as it is."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # no zone index
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, ipv6_block), strict=False))
    return str(address)


class RateLimitedLog:
    """A warning logged at most once per *interval*; the next one says how many were
    left out (a flood must not fill the disk with the same line)."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 now: Callable[[], float] = time.monotonic):
        self._log = logger
        self._interval = interval
        self._now = now
        self._last: float | None = None
        self._suppressed = 0

    def warning(self, message: str, *args: object, exc_info: object = None) -> None:
        now = self._now()
        if self._last is not None and now - self._last < self._interval:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} more like it in the last {self._interval:g} s)"
        self._last, self._suppressed = now, 0
        self._log.warning(message, *args, exc_info=exc_info)
