"""Watchdog events reach the loop in batches (issue 9, item 11): a burst of thousands of file
events while the loop is busy wakes it a handful of times, not once per event (each wake-up
writes a byte into the loop's self-pipe, which also carries signals: a full pipe loses
SIGTERM). Real folder, real watchdog observer, real asyncio loop."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from sampflow.rules.events import FileEvent
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

    n = 2000
    fired: set[str] = set()
    all_fired = asyncio.Event()

    def fire(event: FileEvent) -> None:
        fired.add(event.path)
        if len(fired) >= n:
            all_fired.set()

    last = str(tmp_path / f"f{n - 1:04d}.fits")
    last_seen = threading.Event()  # an observer of our own has read the last file's close

    class Last(FileSystemEventHandler):
        def on_closed(self, event: FileSystemEvent) -> None:
            if os.fsdecode(event.src_path) == last:
                last_seen.set()

    witness = Observer()
    witness.schedule(Last(), str(tmp_path))
    witness.start()  # the watch is in place when start() returns
    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    watch = FolderWatch(FilesTrigger(str(tmp_path), patterns=("*.fits",), settle=0.05),
                        fire, loop)
    try:
        watch.start()
        for i in range(n):  # the loop is blocked meanwhile: every event queues up
            (tmp_path / f"f{i:04d}.fits").write_bytes(b"x")
        # Keep the loop blocked (on purpose) until the burst has been read from the kernel.
        assert last_seen.wait(30)
        await asyncio.wait_for(all_fired.wait(), 30)
    finally:
        watch.stop()
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
        witness.stop()
        await asyncio.to_thread(witness.join, 10)
    # About 4 raw events per file (create, open, modify, close): one wake-up per event would
    # be ~8,000; batched, the loop is woken only when it had drained what came before.
    assert wakeups < n // 10, wakeups
