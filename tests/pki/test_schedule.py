from datetime import datetime, timedelta, timezone

import pytest

from agent.pki.schedule import UPDATE_MARGIN, Backoff, update_due, update_margin

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("percent, expected", [(50, 10), (10, 2), (100, 20), (75, 15)])
def test_update_is_due_at_the_percentage_of_validity(percent, expected):
    due = update_due(T0, T0 + timedelta(seconds=20), percent)
    assert due == T0 + timedelta(seconds=expected)


def test_out_of_range_percent_is_refused():
    with pytest.raises(ValueError):
        update_due(T0, T0 + timedelta(days=1), 5)


def test_backoff_doubles_up_to_the_cap():
    b = Backoff(initial=timedelta(seconds=1), maximum=timedelta(seconds=5))
    assert [b.delay(n).total_seconds() for n in range(0, 6)] == [0, 1, 2, 4, 5, 5]
    assert b.delay(10_000).total_seconds() == 5  # days of failures: still the cap


def test_backoff_never_aims_past_expiry():
    b = Backoff(initial=timedelta(seconds=60))
    not_after = T0 + timedelta(seconds=10)
    assert b.next_attempt(T0, 1, not_after) == T0 + timedelta(seconds=5)
    assert b.next_attempt(T0, 1, T0 + timedelta(hours=1)) == T0 + timedelta(seconds=60)


def test_the_update_is_due_a_margin_before_not_after_at_the_latest():
    not_after = T0 + timedelta(hours=1)
    margin = timedelta(seconds=10)
    # expire-time 100: not notAfter itself, where the certificate is about to stop signing
    assert update_due(T0, not_after, 100, margin) == not_after - margin
    assert update_due(T0, not_after, 50, margin) == T0 + timedelta(minutes=30)  # far from it
    # a certificate shorter than the margin: due at once, not before it is valid
    assert update_due(T0, T0 + timedelta(seconds=4), 100, margin) == T0


def test_the_margin_is_a_few_seconds_or_one_tick():
    assert update_margin(1.0) == UPDATE_MARGIN == timedelta(seconds=10)
    assert update_margin(0.01) == UPDATE_MARGIN
    assert update_margin(60) == timedelta(seconds=60)


def test_a_renewal_that_brought_a_certificate_already_due_waits_the_back_off():
    b = Backoff(initial=timedelta(seconds=5), maximum=timedelta(minutes=1))
    deadline = T0 + timedelta(hours=1)
    assert b.after_due_renewal(T0, 1, deadline) == T0 + timedelta(seconds=5)
    assert b.after_due_renewal(T0, 2, deadline) == T0 + timedelta(seconds=10)
    assert b.after_due_renewal(T0, 50, deadline) == T0 + timedelta(minutes=1)  # the cap
    # the last try at the deadline, none after it
    assert b.after_due_renewal(T0, 3, T0 + timedelta(seconds=7)) == T0 + timedelta(seconds=7)
    assert b.after_due_renewal(deadline, 1, deadline) is None
    assert b.after_due_renewal(deadline + timedelta(seconds=1), 1, deadline) is None
