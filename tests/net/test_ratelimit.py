"""Token bucket and retry arithmetic: pure, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from assetvault.net.ratelimit import TokenBucket, lowest_rate
from assetvault.net.retry import backoff, is_retryable_status, next_delay, parse_retry_after


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    waits = [bucket.reserve(0.0) for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == 0.5 and waits[4] == 1.0


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    bucket.reserve(0.0)
    assert bucket.reserve(100.0) == 0.0
    assert bucket.reserve(100.0) == 0.0
    assert bucket.reserve(100.0) == 1.0


@given(st.floats(0.5, 200), st.integers(1, 20), st.integers(1, 400))
def test_no_window_sees_more_than_rate_plus_burst(rate: float, burst: int, n: int) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    starts = sorted(bucket.reserve(0.0) for _ in range(n))
    for i, t in enumerate(starts):
        in_window = sum(1 for u in starts[i:] if u < t + 1.0)
        assert in_window <= rate + burst + 1e-9


def test_block_pauses_everyone_and_never_shortens() -> None:
    bucket = TokenBucket(rate=0, burst=1)
    bucket.block(10.0, 5.0)
    bucket.block(10.0, 1.0)
    assert bucket.reserve(11.0) == 4.0
    assert bucket.reserve(16.0) == 0.0


def test_lowest_rate_treats_zero_as_unlimited() -> None:
    assert lowest_rate([0, 5, 2.5]) == 2.5
    assert lowest_rate([0, 0]) == 0


def test_retry_after_seconds_and_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now) == 30.0
    assert parse_retry_after("garbage", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_full_jitter_and_never_before_retry_after() -> None:
    assert backoff(3, lambda: 1.0) == 4.0
    assert backoff(3, lambda: 0.0) == 0.0
    assert backoff(50, lambda: 1.0) == 60.0
    assert next_delay(0, lambda: 0.1, 9.0) == 9.0


def test_retryable_statuses() -> None:
    assert all(is_retryable_status(s) for s in (408, 429, 500, 503, 599))
    assert not any(is_retryable_status(s) for s in (400, 401, 403, 404, 412, 416))


def test_window_guard_holds_even_when_sends_bunch_up() -> None:
    from assetvault.net.ratelimit import WindowGuard

    guard = WindowGuard(limit=3)
    assert [guard.wait(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert guard.wait(10.5) == 0.5  # a fourth inside the same second must wait
    assert guard.wait(11.0) == 0.0


def test_after_a_block_sends_resume_one_at_a_time_at_the_rate() -> None:
    # Four booked at once (1/s, burst 1); a 429 at 0.5 s asks for 3 s. Each holder of a
    # booking that fell inside the block books again when it wakes: the sends resume at the
    # block's end one a second, never two together (they used to all go at 3.5 s).
    bucket = TokenBucket(rate=1, burst=1)
    due = [bucket.reserve(0.0) for _ in range(4)]
    assert due == [0.0, 1.0, 2.0, 3.0]
    booked = bucket.blocks
    bucket.block(0.5, 3.0)
    assert bucket.blocks != booked  # the holders see their bookings are void
    sent = [0.0]
    for wake in due[1:]:
        sent.append(wake + bucket.reserve(wake))
    assert sent == [0.0, 3.5, 4.5, 5.5]
    assert bucket.reserve(5.5) == 1.0  # and nothing saved up for a burst after it

