"""Profiles as plug-ins: the one declared interface through which a profile joins a hub.

A profile that hosts its own kind of client (the federation link's proxy clients,
`sampflow.samp.link`) implements `AttachedProfile` and calls `attach`. The hub then

- asks its `~AttachedProfile.filter` about every message it routes (after any filter already
  installed), so the profile can refuse what may not reach its clients;
- shows it every message and response it accepts (`~AttachedProfile.observe`);
- hands it every `Delivery` for a client of its `~AttachedProfile.profile`
  (`~AttachedProfile.deliver`) instead of making an XML-RPC callback;
- tells it when any client leaves (`~AttachedProfile.client_gone`).

The profile registers its clients through the ordinary public verbs
(`HubService.register` with its `Profile`, then `HubCore.set_callback` with any non-empty
marker so the core counts them callable) and sends on their behalf with their private keys,
like any client; `HubService.process_outputs` carries out what that produced. Nothing here
reaches into the core's private state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .core import Delivery
from .registry import ClientRecord, Profile
from .service import HubService

__all__ = ["AttachedProfile", "attach"]


class AttachedProfile(Protocol):
    """What a plug-in profile provides to the hub (see the module docstring)."""

    #: The `Profile` of the clients this plug-in hosts; their deliveries come to `deliver`.
    profile: Profile

    def filter(self, sender: ClientRecord, recipient: ClientRecord, message: dict) -> str | None:
        """None to let `sender` send `message` to `recipient`, or the reason for refusing."""

    def observe(self, sender: ClientRecord, message: dict) -> None:
        """See a message (or a response) the hub accepted from `sender`."""

    def deliver(self, delivery: Delivery) -> None:
        """Carry `delivery` to one of this profile's clients; must not block."""

    def client_gone(self, record: ClientRecord, reason: str) -> None:
        """`record` (of any profile) has left the hub."""


def attach(service: HubService, plugin: AttachedProfile) -> Callable[[], None]:
    """Attach `plugin` to the hub that `service` drives.

    Parameters
    ----------
    service : HubService
        The hub's service.
    plugin : AttachedProfile
        The profile; its `profile` must not be ``STANDARD``, ``WEB`` or ``HUB``.

    Returns
    -------
    callable
        ``detach()``: undo the attachment (the plug-in's clients should be removed first).

    Raises
    ------
    ValueError
        If the profile is a built-in one, or already has a plug-in.
    """
    if plugin.profile in (Profile.STANDARD, Profile.WEB, Profile.HUB):
        raise ValueError(f"profile {plugin.profile.value} is built in")
    deliverer = service.deliverer
    if plugin.profile in deliverer.sinks:
        raise ValueError(f"profile {plugin.profile.value} already has a plug-in")
    core = service.core
    previous = core.message_filter

    def chained(sender: ClientRecord, recipient: ClientRecord, message: dict) -> str | None:
        if previous is not None:
            reason = previous(sender, recipient, message)
            if reason is not None:
                return reason
        return plugin.filter(sender, recipient, message)

    core.message_filter = chained
    core.message_observers.append(plugin.observe)
    deliverer.sinks[plugin.profile] = plugin.deliver
    service.on_client_gone.append(plugin.client_gone)

    def detach() -> None:
        if core.message_filter is chained:
            core.message_filter = previous
        if plugin.observe in core.message_observers:
            core.message_observers.remove(plugin.observe)
        deliverer.sinks.pop(plugin.profile, None)
        if plugin.client_gone in service.on_client_gone:
            service.on_client_gone.remove(plugin.client_gone)

    return detach
