"""Injectable time, so that schedules measured in days are tested in seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol


def yang_datetime(moment: datetime) -> str:
    """``yang:date-and-time`` (RFC 6991; RFC 3339) of *moment*, in UTC, second precision:
    ``2026-12-02T10:39:58Z``, as the model shows times. An aware moment of another offset
    is converted; a naive one is taken as UTC."""
    if moment.utcoffset():
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock(Protocol):
    """Wall-clock time as seen by the agent."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def real_seconds(self, seconds: float) -> float:
        """How long *seconds* of this clock's time last in real time (to sleep them)."""
        ...


class SystemClock:
    """The host's real clock."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def real_seconds(self, seconds: float) -> float:
        return seconds


@dataclass
class OffsetClock:
    """The system clock shifted by *offset_seconds*, scaled by *rate*.

    ``rate=3600`` makes an hour pass every second: tests and demos of
    automatic certificate update use it to live through a validity period.
    """

    offset_seconds: float = 0.0
    rate: float = 1.0

    def __post_init__(self) -> None:
        self._origin = time.time()

    def now(self) -> datetime:
        elapsed = time.time() - self._origin
        return datetime.fromtimestamp(
            self._origin + self.offset_seconds + elapsed * self.rate, timezone.utc
        )

    def real_seconds(self, seconds: float) -> float:
        return seconds / self.rate
