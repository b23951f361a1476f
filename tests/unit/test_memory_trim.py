"""The trimmer hands memory back on its interval, stops with the app, and does
nothing (and says so) where the C library has no malloc_trim."""

from __future__ import annotations

import asyncio

from ari_app.live.memory import MemoryTrimmer, malloc_trim


def test_glibc_malloc_trim_is_found_and_runs() -> None:
    trim = malloc_trim()
    assert trim is not None  # this rig is Debian: glibc
    assert trim() in (0, 1)


def test_it_trims_on_its_interval_until_stopped() -> None:
    calls: list[int] = []

    async def go() -> MemoryTrimmer:
        stop = asyncio.Event()
        t = MemoryTrimmer(0.01, trim=lambda: calls.append(1) or 1)
        task = asyncio.create_task(t.run(stop))
        for _ in range(400):  # bounded: a trimmer that never trims fails below
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.wait_for(task, 1)
        return t

    t = asyncio.run(go())
    assert t.trims == len(calls) >= 3


def test_zero_or_no_malloc_trim_never_trims() -> None:
    calls: list[int] = []

    async def go(t: MemoryTrimmer) -> None:
        await asyncio.wait_for(t.run(asyncio.Event()), 1)  # returns at once

    asyncio.run(go(MemoryTrimmer(0, trim=lambda: calls.append(1) or 1)))
    unavailable = MemoryTrimmer(0.01)
    unavailable._trim = None  # a C library without malloc_trim (musl)
    asyncio.run(go(unavailable))
    assert calls == []
