"""Trigger platform for SAMP messages: ``on: {mtype: PATTERN, from: GLOB, params: {K: GLOB}}``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from ...samp.link.naming import address_glob
from ..events import Event, SampMessage
from ..model import MTypeTrigger
from .bus import EventBus

__all__ = ["attach", "matches"]


def _glob(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _from_hub(name: str, pattern: str) -> bool:
    proxies = address_glob(pattern)
    return proxies is not None and _glob(name, proxies)


def matches(config: MTypeTrigger, msg: SampMessage) -> bool:
    """Whether the sender and params of ``msg`` satisfy ``config`` (the MType is the index's job).

    Sender names are globs, case-insensitive; a sender with no known name matches only ``*``.
    ``NAME@HUB`` matches the proxy of client ``NAME`` of linked hub ``HUB`` (``*@desk3``:
    anything from desk3), see `sampflow.samp.link.naming.address_glob`.
    """
    if config.senders:
        name = msg.sender_name or ""
        if not any(_glob(name, p) or _glob(msg.sender_id, p) or _from_hub(name, p)
                   for p in config.senders):
            return False
    for key, pattern in config.params:
        value = msg.params.get(key)
        if not isinstance(value, str) or not fnmatch.fnmatchcase(value, pattern):
            return False
    return True


def attach(config: MTypeTrigger, fire: Callable[[Event], Any], bus: EventBus
           ) -> Callable[[], None]:
    """Listen on ``bus`` for messages matching ``config``; returns the detach function."""

    def listener(event: Event) -> Any:
        if isinstance(event, SampMessage) and matches(config, event):
            return fire(event)
        return None

    removers = [bus.on_mtype(p, listener) for p in config.mtypes]

    def detach() -> None:
        for r in removers:
            r()
    return detach
