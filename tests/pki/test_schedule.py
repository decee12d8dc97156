from datetime import datetime, timedelta, timezone

import pytest

from agent.pki.schedule import Backoff, update_due

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
