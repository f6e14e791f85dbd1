"""The run's limits on the event loop: waits that a Retry-After cuts into."""

from __future__ import annotations

import asyncio
import itertools

from assetvault.net.limits import Limits


def test_limits_hold_every_waiter_behind_a_block_and_space_them() -> None:
    async def go() -> list[float]:
        loop = asyncio.get_running_loop()
        limits = Limits(file_rate=20, file_burst=1)
        origin = ("http", "files.example", 80)
        sent: list[float] = []

        async def send() -> None:
            await limits.acquire(origin)
            sent.append(loop.time())

        async with asyncio.timeout(10):
            start = loop.time()
            tasks = [asyncio.ensure_future(send()) for _ in range(6)]
            await asyncio.sleep(0)  # all booked; the first has gone
            limits.slow_down(origin, 0.3)
            await asyncio.gather(*tasks)
        return [t - start for t in sent]
    sent = asyncio.run(go())
    after = sorted(sent)[1:]
    # Nobody inside the block, then one booking every 50 ms from its end (20/s, no burst).
    # Each send comes at or after its booking (sleeps never end early; a busy loop may wake
    # one late, so gaps between sends prove nothing): the i-th earliest send is at or after
    # the i-th booking. They all went at 0.3 s before.
    assert all(t >= 0.3 + 0.05 * i - 0.002 for i, t in enumerate(after)), after


def test_refusals_without_retry_after_span_the_window_over_the_retries() -> None:
    # Spectrum answers 403 for 60 s once its budget is spent (by us or another client of the
    # token) and sends no Retry-After: retries that give up within seconds can never outlast
    # it. With a window, the holds double and add up to it (here 0.7 s over 3 retries).
    from assetvault import errors
    from assetvault.net.policy import RetryPolicy

    async def go() -> tuple[float, list[float], bool]:
        loop = asyncio.get_running_loop()
        limits = Limits()
        asked: list[float] = []

        async def refused() -> None:
            asked.append(loop.time())
            raise errors.RetryableError("HTTP 403", status=403, origin=("http", "api", 80))

        policy = RetryPolicy(3, limits, frozenset({403}), rand=lambda: 0.0, window=0.7)
        start = loop.time()
        try:
            async with asyncio.timeout(10):
                await policy.run(refused, "http://api/x")
        except errors.RetryableError:
            pass
        return start, asked, limits.bucket(("http", "api", 80)).blocked_until > start
    start, asked, held = asyncio.run(go())
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert len(asked) == 4 and held  # the origin itself was held too, not only this request
    # 0.1, 0.2, 0.4 (sleeps never end early): the last attempt came a whole window later.
    assert all(g >= want - 0.01 for g, want in zip(gaps, (0.1, 0.2, 0.4), strict=True)), gaps
    assert asked[-1] - start >= 0.69
