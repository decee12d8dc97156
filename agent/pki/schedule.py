"""When to renew a certificate automatically (seed step 12, ``certificate update
expire-time``), and how long to wait after a failed attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


def update_due(not_before: datetime, not_after: datetime, expire_percent: int) -> datetime:
    """The moment *expire_percent* of the validity period has elapsed."""
    if not 10 <= expire_percent <= 100:
        raise ValueError(f"expire-time must be 10..100 percent, not {expire_percent}")
    return not_before + (not_after - not_before) * expire_percent / 100


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off between failed automatic updates.

    The first retry comes after *initial*, each later one after twice the
    previous wait, never more than *maximum*, and never after the certificate
    has expired: the last retry is aimed before ``not_after``.
    """

    initial: timedelta = timedelta(seconds=2)
    maximum: timedelta = timedelta(hours=1)

    def delay(self, failures: int) -> timedelta:
        """The wait after the *failures*-th consecutive failure (1-based)."""
        if failures < 1:
            return timedelta(0)
        doublings = min(failures - 1, 32)  # enough to pass any maximum; never overflows
        return min(self.initial * (2**doublings), self.maximum)

    def next_attempt(self, now: datetime, failures: int, not_after: datetime) -> datetime:
        """When to try again; half-way to expiry if the back-off would overshoot it."""
        candidate = now + self.delay(failures)
        if candidate >= not_after > now:
            return now + (not_after - now) / 2
        return candidate
