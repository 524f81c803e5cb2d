"""SIGTERM reaches ``sampflow run``'s session even when the loop's self-pipe is full (issue 9,
item 11: "Exception ignored when trying to write to the signal wakeup fd: BlockingIOError",
and the SIGTERM was lost). Real loop, real signal to this process, real worker threads."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from sampflow.session import StopSignals

pytestmark = pytest.mark.timeout(60)


def flood(loop: asyncio.AbstractEventLoop, n: int) -> None:
    for _ in range(n):  # each writes a wake-up byte into the loop's self-pipe
        loop.call_soon_threadsafe(lambda: None)


async def test_sigterm_is_not_lost_when_the_self_pipe_is_full() -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    signals = StopSignals(loop, stopped.set)
    signals.install()
    try:
        # The loop is busy (blocked here) while threads fill its self-pipe, then the signal
        # comes: asyncio's own handler would need one more byte in that pipe.
        threads = [threading.Thread(target=flood, args=(loop, 20_000)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # noqa: ASYNC251 - keeps the loop busy on purpose
        await asyncio.wait_for(stopped.wait(), 10)
    finally:
        signals.remove()


async def test_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signals = StopSignals(asyncio.get_running_loop(), lambda: None)
    signals.install()
    assert signal.getsignal(signal.SIGTERM) != before[1]
    signals.remove()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
