"""Profiles as plug-ins: the one declared interface through which a profile joins a hub.

A profile is how one kind of client reaches the hub: the Standard Profile (XML-RPC with
callbacks, section 4), the Web Profile (browsers, section 5), the federation link's proxy
clients (`sampflow.samp.link`). Each implements `ProfileHooks` and is registered with one
call, `HubService.add_profile` (in memory, no sockets), or `AsyncHub.add_profile` for a
profile that also serves a socket (`HubProfile`: it adds `~HubProfile.start`,
`~HubProfile.stop` and the lockfile entries it contributes). The hub then

- asks every profile's `~ProfileHooks.filter` about every message it routes, in the order
  the profiles were added, so a profile can refuse what may not reach (or leave) its
  clients (the Web Profile keeps web clients to harmless MTypes, section 5.4.2);
- shows every profile each message and response it accepts (`~ProfileHooks.observe`; the
  Web Profile learns which URLs Standard Profile clients mention, section 5.4.3);
- hands every `Delivery` for a client of a profile's `~ProfileHooks.profile` to that
  profile's `~ProfileHooks.deliver` (the Standard Profile makes XML-RPC callbacks, the Web
  Profile queues them for ``pullCallbacks``);
- tells every profile when any client leaves (`~ProfileHooks.client_gone`).

A profile registers its clients through the ordinary public verbs (`HubService.register`
with its `Profile`) and acts for them with their private keys, like any client;
`HubService.process_outputs` carries out what that produced. No profile reaches into the
core's or another profile's state, and the hub knows profiles only through these protocols.
"""

from __future__ import annotations

from typing import Any, Protocol

from .core import Delivery
from .registry import ClientRecord, Profile

__all__ = ["LISTEN_BACKLOG", "HubProfile", "ProfileHooks"]

#: Listen backlog of every profile's socket: calcstorm opens dozens of connections at once,
#: and a short backlog (astropy's is 5) makes the kernel reset them.
LISTEN_BACKLOG = 1024


class ProfileHooks(Protocol):
    """What every profile provides to the hub (see the module docstring)."""

    #: The `Profile` of the clients this profile hosts; their deliveries come to `deliver`.
    profile: Profile

    def filter(self, sender: ClientRecord, recipient: ClientRecord,
               message: dict[str, Any]) -> str | None:
        """None to let `sender` send `message` to `recipient`, or the reason for refusing."""

    def observe(self, sender: ClientRecord, message: dict[str, Any]) -> None:
        """See a message (or a response) the hub accepted from `sender`."""

    def deliver(self, delivery: Delivery) -> None:
        """Carry `delivery` to one of this profile's clients; must not block."""

    def client_gone(self, record: ClientRecord, reason: str) -> None:
        """`record` (of any profile) has left the hub."""


class HubProfile(ProfileHooks, Protocol):
    """A profile that serves its own socket: `ProfileHooks` plus a lifecycle."""

    async def start(self) -> None:
        """Start serving (bind the socket).

        Raises
        ------
        OSError
            If the address cannot be bound.
        """

    async def stop(self) -> None:
        """Stop serving; called once the hub has told its clients it stops."""

    def lockfile_entries(self) -> dict[str, str]:
        """The key-value pairs this profile adds to the hub's lockfile (section 4.2.2); the
        Standard Profile's are ``samp.secret`` and ``samp.hub.xmlrpc.url``, the Web Profile,
        found at its well-known port, adds none."""

