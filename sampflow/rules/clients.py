"""The engine's view of the other clients: id <-> name, metadata and subscriptions.

Filled from the hub at connection time and kept current from ``samp.hub.event.*``
notifications, so that ``to: DS9`` resolves without a round trip and ``registered()`` /
``subscribed()`` answer synchronously inside expressions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ..samp.names import select_clients
from .events import HubEvent
from .messenger import Messenger
from .triggers.bus import mtype_matches

__all__ = ["ClientDirectory", "ClientInfo"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ClientInfo:
    """What is known about one client."""

    id: str
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    subscriptions: dict[str, Any] = field(default_factory=dict)
    #: ``"standard"``, ``"web"``, ``"hub"``, or ``""`` once the hub could not tell.
    profile: str | None = None


class ClientDirectory:
    """Registry of the hub's clients, by public id, searchable by name pattern
    (`sampflow.samp.names`: the public id, or the ``samp.name`` as a case-insensitive glob)."""

    def __init__(self, messenger: Messenger | None = None) -> None:
        self.messenger = messenger
        self._clients: dict[str, ClientInfo] = {}
        self._profile_lookups: dict[str, asyncio.Future[str]] = {}
        self._changed: asyncio.Event | None = None

    def _note_change(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- filling -----------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Ask the hub for every client's metadata and subscriptions."""
        if self.messenger is None:
            return
        fresh: dict[str, ClientInfo] = {}
        for cid in await self.messenger.get_registered_clients():
            info = ClientInfo(cid)
            try:
                info.metadata = dict(await self.messenger.get_metadata(cid) or {})
                info.subscriptions = dict(await self.messenger.get_subscriptions(cid) or {})
            except Exception as exc:  # the client may have left meanwhile
                log.debug("cannot query %s: %s", cid, exc)
            info.name = info.metadata.get("samp.name")
            fresh[cid] = info
        self._clients = fresh
        self._note_change()

    def add(self, client_id: str, name: str | None = None,
            subscriptions: dict[str, Any] | None = None) -> None:
        """Record a client directly (tests, or a sender first seen in a message)."""
        info = self._clients.setdefault(client_id, ClientInfo(client_id))
        if name is not None:
            info.name = name
            info.metadata.setdefault("samp.name", name)
        if subscriptions is not None:
            info.subscriptions = dict(subscriptions)
        self._note_change()

    def apply(self, mtype: str, params: dict[str, Any]) -> list[HubEvent]:
        """Update from a ``samp.hub.event.*`` message; returns the hub events it means.

        ``registered`` is reported when a client first declares a name, so that rules can
        match it by name; ``unregistered`` carries the name it had.
        """
        cid = params.get("id")
        if not isinstance(cid, str):
            return []
        self._note_change()
        if mtype == "samp.hub.event.register":
            self._clients.setdefault(cid, ClientInfo(cid))
            return []
        if mtype == "samp.hub.event.unregister":
            info = self._clients.pop(cid, None)
            name = info.name if info else None
            return [HubEvent("unregistered", cid, name)]
        info = self._clients.setdefault(cid, ClientInfo(cid))
        if mtype == "samp.hub.event.metadata":
            md = params.get("metadata")
            info.metadata = dict(md) if isinstance(md, dict) else {}
            new_name = info.metadata.get("samp.name")
            events = []
            if info.name is None and isinstance(new_name, str):
                events.append(HubEvent("registered", cid, new_name, dict(info.metadata)))
            info.name = new_name if isinstance(new_name, str) else info.name
            events.append(HubEvent("metadata", cid, info.name, dict(info.metadata)))
            return events
        if mtype == "samp.hub.event.subscriptions":
            subs = params.get("subscriptions")
            info.subscriptions = dict(subs) if isinstance(subs, dict) else {}
            return [HubEvent("subscriptions", cid, info.name, dict(info.subscriptions))]
        return []

    # -- lookups -----------------------------------------------------------------------------
    def name_of(self, client_id: str) -> str | None:
        """The ``samp.name`` of ``client_id``, if known."""
        info = self._clients.get(client_id)
        return info.name if info else None

    def find(self, pattern: str) -> list[str]:
        """Ids of the clients the name pattern picks (`sampflow.samp.names.select_clients`).

        A public id picks that client alone; otherwise the ``samp.name`` is matched as a
        case-insensitive glob, and ``NAME@HUB`` (globs allowed) also finds the proxies of the
        federation link (``sampflow link``): the clients called ``NAME`` on linked hub ``HUB``.
        """
        return select_clients(pattern, {c.id: c.name for c in self._clients.values()})

    async def resolve(self, pattern: str) -> list[str]:
        """Like :meth:`find`, asking the hub again once if nothing matches."""
        ids = self.find(pattern)
        if not ids and self.messenger is not None:
            await self.refresh()
            ids = self.find(pattern)
        return ids

    async def ensure_name(self, client_id: str) -> str | None:
        """The name of ``client_id``, querying its metadata if it is not known yet."""
        name = self.name_of(client_id)
        if name is None and self.messenger is not None:
            try:
                md = await self.messenger.get_metadata(client_id)
            except Exception:
                return None
            name = md.get("samp.name") if isinstance(md, dict) else None
            info = self._clients.setdefault(client_id, ClientInfo(client_id))
            info.metadata = dict(md or {})
            info.name = name
        return name

    async def ensure_profile(self, client_id: str) -> str | None:
        """How `client_id` is connected (``"standard"``, ``"web"``, ``"hub"``), asked of the
        hub once with a ``sampflow.hub.profile`` call and cached (concurrent askers share the
        one call); None when the hub cannot tell (hubs other than sampflow's)."""
        info = self._clients.setdefault(client_id, ClientInfo(client_id))
        if info.profile is None and self.messenger is not None:
            lookup = self._profile_lookups.get(client_id)
            if lookup is None:
                lookup = asyncio.ensure_future(self._ask_profile(client_id))
                self._profile_lookups[client_id] = lookup
            try:
                info.profile = await asyncio.shield(lookup)
            finally:
                if lookup.done():
                    self._profile_lookups.pop(client_id, None)
        return info.profile or None

    async def _ask_profile(self, client_id: str) -> str:
        hub_id = self.messenger.hub_id if self.messenger is not None else None
        if client_id == hub_id:
            return "hub"
        if not hub_id or self.messenger is None:
            return ""
        message = {"samp.mtype": "sampflow.hub.profile", "samp.params": {"id": client_id}}
        try:
            response = await self.messenger.call_and_wait(hub_id, message, 5)
        except Exception as exc:  # not sampflow's hub, or it is going away
            log.debug("the hub cannot tell %s's profile: %s", client_id, exc)
            return ""
        result = response.get("samp.result") or {}
        if response.get("samp.status") == "samp.ok" and isinstance(result, dict):
            return str(result.get("profile", ""))
        return ""

    def is_client_subscribed(self, client_id: str, mtype: str) -> bool:
        """Whether the client `client_id` is subscribed to `mtype` (patterns honoured)."""
        info = self._clients.get(client_id)
        return info is not None and any(mtype_matches(p, mtype) for p in info.subscriptions)

    def forget(self, client_id: str) -> None:
        """Drop `client_id` (the hub says it is gone; its unregister event may lag)."""
        if self._clients.pop(client_id, None) is not None:
            self._note_change()

    def is_present(self, client_id: str) -> bool:
        """Whether `client_id` is registered, as far as the hub's events tell."""
        return client_id in self._clients

    async def wait_for(self, pattern: str, mtype: str | None, timeout: float, *,
                       exclude: Collection[str] = ()) -> list[str]:
        """Wait until clients whose name matches `pattern` are registered (and, if `mtype` is
        given, subscribed to it); returns their ids.

        This is what ``hold:`` waits on: woken by the hub's ``samp.hub.event.*``
        notifications (SAMP 1.3 section 3.13), no polling.

        Parameters
        ----------
        pattern : str
            A ``samp.name`` glob (case-insensitive) or a public id; ``*`` for any client.
        mtype : str or None
            The MType the client must be subscribed to.
        timeout : float
            Seconds to wait.
        exclude : collection of str
            Public ids that do not count (the engine's own, the hub's).

        Returns
        -------
        list of str
            The matching public ids (at least one).

        Raises
        ------
        TimeoutError
            If none appears within `timeout`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ids = [cid for cid in self.find(pattern) if cid not in exclude
                   and (mtype is None or self.is_client_subscribed(cid, mtype))]
            if ids:
                return ids
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no client matching {pattern!r} within {timeout:g} s")
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                pass

    # HubState, for registered(), subscribed() and clients() in expressions
    def names(self, pattern: str = "*") -> list[str]:
        """``samp.name`` of every named client that the name pattern picks (`find`)."""
        found = [self._clients[cid].name for cid in self.find(pattern)]
        return sorted(name for name in found if name)

    def is_registered(self, name: str) -> bool:
        """Whether a client that the name pattern `name` picks (`find`) is registered."""
        return bool(self.find(name))

    def is_subscribed(self, name: str, mtype: str) -> bool:
        """Whether such a client is subscribed to ``mtype`` (its patterns are honoured)."""
        for cid in self.find(name):
            subs = self._clients[cid].subscriptions
            if any(mtype_matches(p, mtype) for p in subs):
                return True
        return False
