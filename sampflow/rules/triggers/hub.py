"""Trigger platform for hub events: ``on: {registered: DS9}`` (also ``unregistered``,
``metadata``, ``subscriptions``), matching the client's ``samp.name`` by glob."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from ..events import Event, HubEvent
from ..model import HubTrigger
from .bus import EventBus

__all__ = ["attach"]


def attach(config: HubTrigger, fire: Callable[[Event], Any], bus: EventBus
           ) -> Callable[[], None]:
    """Listen on ``bus`` for hub events of ``config.kind`` about matching clients."""

    def listener(event: Event) -> Any:
        if not isinstance(event, HubEvent):
            return None
        name = (event.client_name or "").lower()
        if any(fnmatch.fnmatchcase(name, p.lower()) or p == event.client_id
               for p in config.clients):
            return fire(event)
        return None

    return bus.on_hub(config.kind, listener)
