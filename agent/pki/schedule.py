"""When to renew a certificate automatically (seed step 12, ``certificate update
expire-time``), and how long to wait after a failed attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


#: The latest an automatic update is planned: this long before notAfter. A KUR is signed
#: with the certificate it renews, and the CA checks that certificate's validity by its own
#: clock when the request arrives (RFC 4210 5.3.5, RFC 9483 4.1.3; RFC 5280 4.1.2.5), so
#: ``expire-time 100`` (notAfter itself) would mostly find the certificate expired: the
#: scheduler looks once a tick (1 s), a new key pair takes a moment (seconds for RSA-4096
#: on a small CPU), and the device's and the CA's clocks differ by a few seconds.
UPDATE_MARGIN = timedelta(seconds=10)


def update_margin(tick_seconds: float) -> timedelta:
    """The margin before notAfter for a scheduler that looks every *tick_seconds*:
    :data:`UPDATE_MARGIN`, or one tick if that is longer."""
    return max(UPDATE_MARGIN, timedelta(seconds=tick_seconds))


def update_due(not_before: datetime, not_after: datetime, expire_percent: int,
               margin: timedelta = timedelta(0)) -> datetime:
    """The moment *expire_percent* of the validity period has elapsed, but not later
    than *margin* before *not_after* (nor before *not_before*)."""
    if not 10 <= expire_percent <= 100:
        raise ValueError(f"expire-time must be 10..100 percent, not {expire_percent}")
    due = not_before + (not_after - not_before) * expire_percent / 100
    return max(not_before, min(due, not_after - margin))


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

    def after_due_renewal(self, now: datetime, streak: int, deadline: datetime) -> datetime | None:
        """When to renew again after *streak* renewals in a row (1-based) each brought a
        certificate already past its update time (a CA that caps validity at its own
        notAfter answers the same at once): the back-off's wait, but not later than
        *deadline*; None once *deadline* has come (no more tries: it expires)."""
        if now >= deadline:
            return None
        return min(now + self.delay(streak), deadline)
