"""Trigger platform for timers: ``on: {every: 10s}``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..events import Event, TimerEvent
from ..model import TimerTrigger
from .bus import EventBus

__all__ = ["attach"]


def attach(config: TimerTrigger, fire: Callable[[Event], Any], bus: EventBus
           ) -> Callable[[], None]:
    """Fire a :class:`TimerEvent` every ``config.every`` seconds; the first after one period.

    Ticks are scheduled against the loop clock from the start time, so they do not drift.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    state: dict[str, Any] = {"count": 0, "handle": None}

    def tick() -> None:
        state["count"] += 1
        schedule()
        fire(TimerEvent(config.every, state["count"]))

    def schedule() -> None:
        state["handle"] = loop.call_at(start + (state["count"] + 1) * config.every, tick)

    schedule()

    def detach() -> None:
        if state["handle"] is not None:
            state["handle"].cancel()
    return detach
