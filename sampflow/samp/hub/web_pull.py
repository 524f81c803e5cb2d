"""The queue behind ``samp.webhub.pullCallbacks`` (SAMP 1.3 section 5.3.2): a real long poll.

A web client cannot be called back; it pulls its callbacks. The pull waits on a future that
the next queued callback completes, so an idle web client costs no CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

__all__ = ["MAX_QUEUED", "PullQueue"]

#: Most callbacks kept for one web client that is not pulling them.
MAX_QUEUED = 5000


class PullQueue:
    """Callbacks waiting for one web client, and at most one ``pullCallbacks`` waiting
    for them (SAMP 1.3 section 5.3.2).

    `put` queues a callback map and wakes the waiting pull; `pull` waits up to a timeout for
    the first callback (a newer pull supersedes an older one, which returns empty), then
    takes every queued one; `close` ends it (pulls return at once). At most `MAX_QUEUED`
    callbacks are kept: `put` returns False beyond that.
    """

    __slots__ = ("closed", "idle_timer", "items", "last_seen", "waiter")

    def __init__(self) -> None:
        self.items: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.idle_timer: asyncio.TimerHandle | None = None
        #: `time.monotonic` of the client's last request (set by the transport).
        self.last_seen = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the client's last request; 0 while a ``pullCallbacks`` waits."""
        if self.waiter is not None and not self.waiter.done():
            return 0.0
        return time.monotonic() - self.last_seen

    def put(self, item: dict[str, Any]) -> bool:
        if self.closed or len(self.items) >= MAX_QUEUED:
            return False
        self.items.append(item)
        self._wake()
        return True

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._wake()
        if self.idle_timer is not None:
            self.idle_timer.cancel()

    async def pull(self, timeout: float) -> list[dict[str, Any]]:
        if not self.items and not self.closed and timeout > 0:
            self._wake()  # a newer pull supersedes an older one, which returns empty
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                pass
            finally:
                if self.waiter is waiter:
                    self.waiter = None
        items = list(self.items)
        self.items.clear()
        return items
