"""The process-wide background event loop behind sampflow's synchronous facades.

`SAMPHubServer`, `SAMPHubProxy`, `SAMPClient` and `SAMPIntegratedClient` are thin blocking
facades over asyncio objects. They share one event loop per process, run by a daemon thread
started on first use; a blocking call submits a coroutine with
`asyncio.run_coroutine_threadsafe` and waits for its result. Code already on that loop must
use the asyncio API instead (blocking there would deadlock), which `run` detects.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import SAMPClientError

__all__ = ["background_loop", "run"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use in a daemon thread named ``sampflow-loop``."""
    global _loop, _thread
    with _lock:
        if _loop is None or not _thread or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def runner() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=runner, name="sampflow-loop", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coro` on the shared loop and block until it finishes.

    Parameters
    ----------
    coro : coroutine
        What to run.
    timeout : float, optional
        Seconds to wait; None waits as long as it takes.

    Returns
    -------
    object
        The coroutine's result.

    Raises
    ------
    SAMPClientError
        If called from the loop's own thread (it would deadlock), or on timeout.
    Exception
        Whatever the coroutine raises.
    """
    loop = background_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise SAMPClientError(
            "a blocking SAMP call was made on sampflow's event-loop thread; use the "
            "asyncio API (sampflow.samp.client.aio) there"
        )
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise SAMPClientError(f"SAMP operation did not finish within {timeout} s") from None
