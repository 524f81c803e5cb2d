"""Watchdog events reach the loop in batches (issue 9, item 11): a burst of thousands of file
events while the loop is busy wakes it a handful of times, not once per event (each wake-up
writes a byte into the loop's self-pipe, which also carries signals: a full pipe loses
SIGTERM). Real folder, real watchdog observer, real asyncio loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sampflow.rules.model import FilesTrigger
from sampflow.rules.triggers.files import FolderWatch


async def test_a_burst_while_the_loop_is_busy_wakes_it_once_per_batch(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal wakeups
        wakeups += 1
        return original(callback, *args, **kwargs)

    fired: list[str] = []
    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    watch = FolderWatch(FilesTrigger(str(tmp_path), patterns=("*.fits",), settle=0.05),
                        lambda e: fired.append(e.path), loop)
    try:
        watch.start()
        await asyncio.sleep(0.2)
        n = 2000
        for i in range(n):  # the loop is blocked meanwhile: every event queues up
            (tmp_path / f"f{i:04d}.fits").write_bytes(b"x")
        time.sleep(0.5)  # noqa: ASYNC251 - keeps the loop busy on purpose
        deadline = time.monotonic() + 30
        while len(set(fired)) < n:
            assert time.monotonic() < deadline, f"{len(set(fired))} of {n} files fired"
            await asyncio.sleep(0.05)
    finally:
        watch.stop()
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
    # About 4 raw events per file (create, open, modify, close): one wake-up per event would
    # be ~8,000; batched, the loop is woken only when it had drained what came before.
    assert wakeups < n // 10, wakeups
