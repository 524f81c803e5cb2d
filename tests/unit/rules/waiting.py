"""Waiting on a condition instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

__all__ = ["barrier", "until"]

#: Seconds between two looks at the condition.
POLL = 0.005


async def until(check: Callable[[], Any] | Callable[[], Awaitable[Any]], within: float = 10.0,
                what: str = "the condition") -> Any:
    """Wait until ``check()`` (a function or a coroutine function) returns something true, and
    return it.

    Parameters
    ----------
    check : callable
        Looked at first at once, then every `POLL` seconds.
    within : float
        Seconds after which waiting fails.
    what : str
        Named in the failure.

    Raises
    ------
    AssertionError
        If `check` is still false after `within` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(POLL)


async def barrier(folder: Path, name: str, fired: Callable[[str], bool],
                  within: float = 10.0) -> str:
    """Write the small file `name` into the watched `folder`, closed at once, and wait until
    ``fired(path)`` says its trigger fired for it; return its path.

    The watcher handles a folder's events in order and fires each file ``settle`` seconds
    after its last event, so once the barrier has fired, whatever the files written before it
    were going to fire by then has fired, and at least ``settle`` seconds have passed since
    they were last written: a test waits on this instead of sleeping for a guessed time.
    """
    path = folder / name
    path.write_bytes(b"barrier")
    await until(lambda: fired(str(path)), within, f"{name} to fire")
    return str(path)
