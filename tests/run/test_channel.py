"""The channel between stages: bounded, closed by its senders, never a hang on close."""

from __future__ import annotations

import asyncio

from assetvault.run.channel import Channel


def test_receivers_drain_then_stop_once_every_sender_closed() -> None:
    async def go() -> list[list[int]]:
        channel: Channel[list[int]] = Channel(2, senders=2)
        got: list[list[int]] = []

        async def sender(values: list[int]) -> None:
            try:
                for v in values:
                    await channel.send([v])
            finally:
                channel.close()

        async def receiver() -> None:
            while (batch := await channel.receive()) is not None:
                got.append(batch)

        async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
            receivers = [tg.create_task(receiver()) for _ in range(3)]
            tg.create_task(sender([1, 2, 3]))
            tg.create_task(sender([4, 5]))
        assert all(r.done() for r in receivers)
        return got
    got = asyncio.run(go())
    assert sorted(v for batch in got for v in batch) == [1, 2, 3, 4, 5]


def test_capacity_holds_senders_back() -> None:
    async def go() -> None:
        channel: Channel[int] = Channel(2)
        await channel.send(1)
        await channel.send(2)
        blocked = asyncio.ensure_future(channel.send(3))
        await asyncio.sleep(0)  # let it run up to its wait
        assert not blocked.done()
        assert await channel.receive() == 1
        async with asyncio.timeout(10):
            await blocked
        assert channel.receive_ready() == 2
        assert channel.receive_ready() == 3
        assert channel.receive_ready() is None  # nothing waiting, not closed
    asyncio.run(go())


def test_close_never_waits_even_when_full() -> None:
    """A stopped run cancels a sender whose channel is full: closing must not block."""
    async def go() -> None:
        channel: Channel[int] = Channel(1)
        await channel.send(1)
        stuck = asyncio.ensure_future(channel.send(2))
        await asyncio.sleep(0)
        stuck.cancel()
        channel.close()
        assert await channel.receive() == 1
        async with asyncio.timeout(10):
            assert await channel.receive() is None
            assert await channel.receive() is None  # the end stays the end
    asyncio.run(go())


def test_a_sender_cancelled_before_its_first_step_still_closes() -> None:
    """A stop can cancel a stage before it ever ran: its ``finally`` never runs, the done
    callback does, so the receiver still sees the end."""
    from assetvault.run.channel import close_when_done

    async def go() -> None:
        channel: Channel[int] = Channel(1)

        async def sender() -> None:
            await channel.send(1)

        task = asyncio.ensure_future(sender())
        close_when_done([task], channel)
        task.cancel()  # before its first step
        async with asyncio.timeout(10):
            assert await channel.receive() is None
        assert task.cancelled()
    asyncio.run(go())


def test_a_receiver_woken_then_cancelled_passes_its_turn_on() -> None:
    """A value wakes one receiver; if that one is cancelled before it runs, the value must
    reach another waiting receiver, not sit in the channel until the next send."""
    async def go() -> None:
        channel: Channel[int] = Channel(4)
        first = asyncio.ensure_future(channel.receive())
        second = asyncio.ensure_future(channel.receive())
        await asyncio.sleep(0)  # both wait
        await channel.send(7)  # wakes the first
        first.cancel()
        async with asyncio.timeout(10):
            assert await second == 7

    asyncio.run(go())


def test_a_sender_woken_then_cancelled_passes_its_room_on() -> None:
    async def go() -> None:
        channel: Channel[int] = Channel(1)
        await channel.send(1)
        first = asyncio.ensure_future(channel.send(2))
        second = asyncio.ensure_future(channel.send(3))
        await asyncio.sleep(0)  # both wait for room
        assert channel.receive_ready() == 1  # room for one: wakes the first
        first.cancel()
        async with asyncio.timeout(10):
            await second
        assert channel.receive_ready() == 3

    asyncio.run(go())


def test_wait_ready_returns_on_a_value_on_the_end_or_at_its_timeout() -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        channel: Channel[int] = Channel(4)
        async with asyncio.timeout(10):
            started = loop.time()
            await channel.wait_ready(0.05)  # nothing comes: back after the timeout
            assert loop.time() - started >= 0.04
            assert channel.receive_ready() is None
            waiting = asyncio.ensure_future(channel.wait_ready(60))
            await asyncio.sleep(0)
            await channel.send(7)  # wakes it long before its timeout
            await waiting
            assert channel.receive_ready() == 7
            # A waiter the timer woke left the line: the next value wakes a real receiver.
            receiver = asyncio.ensure_future(channel.receive())
            await asyncio.sleep(0)
            await channel.send(8)
            assert await receiver == 8
            waiting = asyncio.ensure_future(channel.wait_ready(60))
            await asyncio.sleep(0)
            channel.close()  # the end wakes it too
            await waiting
            assert channel.drained and await channel.receive() is None
    asyncio.run(go())


def test_a_wait_ready_woken_then_cancelled_passes_its_turn_on() -> None:
    async def go() -> None:
        channel: Channel[int] = Channel(4)
        async with asyncio.timeout(10):
            waiting = asyncio.ensure_future(channel.wait_ready(60))
            await asyncio.sleep(0)
            receiver = asyncio.ensure_future(channel.receive())
            await asyncio.sleep(0)
            await channel.send(1)  # wakes the waiter, which is cancelled before it runs
            waiting.cancel()
            assert await receiver == 1
    asyncio.run(go())
