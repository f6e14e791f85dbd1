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
    assert after[0] >= 0.3  # nobody inside the block
    # One at a time at 20/s (sleeps never end early): never two within 50 ms.
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(after)), after
