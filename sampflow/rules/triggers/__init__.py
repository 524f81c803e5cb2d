"""Trigger platforms, in an explicit registry keyed by trigger type.

Each platform is ``attach(config, fire, bus) -> detach``: ``config`` is the trigger from the
model, ``fire(event)`` hands a typed :mod:`~sampflow.rules.events` event to the engine (on the
event loop), and ``bus`` is the engine's :class:`~.bus.EventBus`, through which SAMP messages and
hub events reach the platforms that match them. ``detach()`` stops the trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..events import Event
from ..model import FilesTrigger, HubTrigger, MTypeTrigger, TimerTrigger, Trigger
from . import files, hub, samp, timer
from .bus import EventBus, mtype_matches

__all__ = ["PLATFORMS", "EventBus", "Platform", "attach", "mtype_matches"]


class Platform(Protocol):
    """``attach(config, fire, bus) -> detach``."""

    def __call__(self, config: Any, fire: Callable[[Event], Any], bus: EventBus
                 ) -> Callable[[], None]: ...


PLATFORMS: dict[type, Platform] = {
    MTypeTrigger: samp.attach,
    HubTrigger: hub.attach,
    FilesTrigger: files.attach,
    TimerTrigger: timer.attach,
}


def attach(config: Trigger, fire: Callable[[Event], Any], bus: EventBus, *,
           planner: Any = None) -> Callable[[], None]:
    """Attach ``config`` with the platform registered for its type.

    ``planner`` is the delivery ledger's catch-up planner, for files triggers
    (:class:`~sampflow.rules.deliveries.CatchUpPlanner`); other platforms have no use for it.
    """
    if isinstance(config, FilesTrigger):
        return files.attach(config, fire, bus, planner)
    return PLATFORMS[type(config)](config, fire, bus)
