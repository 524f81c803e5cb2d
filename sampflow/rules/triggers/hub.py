"""Trigger platform for hub events: ``on: {registered: SAOImageDS9}`` (also
``unregistered``, ``metadata``, ``subscriptions``), picking the client by the one name rule
(`sampflow.samp.names`: its public id, or its ``samp.name`` as a case-insensitive glob)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...samp.names import client_matches
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
        if any(client_matches(p, event.client_id, event.client_name) for p in config.clients):
            return fire(event)
        return None

    return bus.on_hub(config.kind, listener)
