"""A small pool of daemon threads for the engine's blocking file-system calls.

File facts (:mod:`~sampflow.rules.filefacts`), folder scans and ``stat`` calls of the file
triggers run here, never on the event loop. The pool is the engine's own, so a slow file
system never starves asyncio's default executor, and its threads are daemons, so a read stuck
on a dead network mount cannot keep the process from exiting (a
:class:`concurrent.futures.ThreadPoolExecutor` worker would). Every call is given a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["TIMEOUT", "WORKERS", "offload"]

#: Threads of the pool.
WORKERS = 4
#: Seconds a call may take by default before it is given up (its thread is left to finish).
TIMEOUT = 10.0

T = TypeVar("T")


class _DaemonPool:
    """A bounded pool of daemon threads (a stuck read cannot hold up the process's exit, as a
    :class:`concurrent.futures.ThreadPoolExecutor` worker would)."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fut, fn, args))
        with self._lock:
            if self._idle == 0 and len(self._threads) < self._workers:
                t = threading.Thread(target=self._work, name=f"sampflow-filefacts-"
                                     f"{len(self._threads)}", daemon=True)
                self._threads.append(t)
                self._idle += 1
                t.start()
        return fut

    def _work(self) -> None:
        while True:
            fut, fn, args = self._queue.get()
            with self._lock:
                self._idle -= 1
            try:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn(*args))
                    except BaseException as exc:
                        fut.set_exception(exc)
            finally:
                with self._lock:
                    self._idle += 1


_POOL = _DaemonPool(WORKERS)


async def offload(fn: Callable[..., T], *args: Any, timeout: float = TIMEOUT) -> T:
    """Run a small blocking call (a ``stat``, a folder listing, a file look) in the pool.

    Parameters
    ----------
    fn : callable
        The blocking call; ``fn(*args)`` runs on a pool thread.
    *args
        Its arguments.
    timeout : float
        Seconds to wait for it.

    Returns
    -------
    object
        What `fn` returned.

    Raises
    ------
    TimeoutError
        If it did not finish within `timeout` seconds (the thread is left to finish).
    Exception
        Whatever `fn` raised.
    """
    return await asyncio.wait_for(asyncio.wrap_future(_POOL.submit(fn, *args)), timeout)
