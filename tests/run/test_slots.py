"""Slots: never more holders than slots, first come first served, and no slot lost to a
waiter cancelled at any moment."""

from __future__ import annotations

import asyncio

from assetvault.run.slots import Slots


def test_never_more_holders_than_slots_and_first_come_first_served() -> None:
    async def go() -> None:
        slots = Slots(2)
        holding = 0
        most = 0
        order: list[int] = []
        gates = [asyncio.Event() for _ in range(6)]

        async def holder(n: int) -> None:
            nonlocal holding, most
            async with slots:
                order.append(n)
                holding += 1
                most = max(most, holding)
                await gates[n].wait()
                holding -= 1

        tasks = [asyncio.ensure_future(holder(n)) for n in range(6)]
        await asyncio.sleep(0)
        assert order == [0, 1]
        for gate in gates:
            gate.set()
            await asyncio.sleep(0)
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)
        assert most == 2
        assert order == list(range(6))
        assert slots.free == 2

    asyncio.run(go())


def test_a_waiter_handed_a_slot_then_cancelled_passes_it_on() -> None:
    async def go() -> None:
        slots = Slots(1)
        release = asyncio.Event()

        async def hold() -> None:
            async with slots:
                await release.wait()

        async def take() -> str:
            async with slots:
                return "got it"

        holder = asyncio.ensure_future(hold())
        await asyncio.sleep(0)
        first = asyncio.ensure_future(take())
        second = asyncio.ensure_future(take())
        await asyncio.sleep(0)  # both wait in line
        release.set()
        await asyncio.sleep(0)  # the holder lets go: its slot is handed to the first
        first.cancel()
        async with asyncio.timeout(10):
            assert await second == "got it"
            await holder
        assert first.cancelled()
        assert slots.free == 1

    asyncio.run(go())


def test_a_waiter_cancelled_in_line_costs_no_slot() -> None:
    async def go() -> None:
        slots = Slots(1)
        async with slots:
            waiter = asyncio.ensure_future(slots.__aenter__())
            await asyncio.sleep(0)
            waiter.cancel()
            await asyncio.sleep(0)
        assert slots.free == 1
        async with asyncio.timeout(10), slots:
            assert slots.free == 0

    asyncio.run(go())
