"""The link's side of a hub in another process (any SAMP hub): proxies as real clients.

When ``sampflow link`` joins a hub it does not run itself (a ``sampflow hub``, JSAMP's hub,
astropy's), it cannot host proxies inside that hub. `ClientMirror` does what JSAMP's bridge
does instead: every client of every other linked hub becomes one real Standard Profile client
registered on the local hub (each with its own callback endpoint), with the same naming and
metadata conventions as `HubMirror`. One more client, the bridge client, subscribes to the
hub events (section 3.12) and keeps the list of the hub's own clients that the federation
sees.

A client is exported once it has declared metadata or subscriptions, unless its metadata
carries ``sampflow.link.hub`` (a proxy or a bridge, ours or another link's), so that proxies
are never mirrored back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..client.aio import AsyncSAMPClient
from ..constants import HUB_EVENT_MTYPES
from ..errors import SAMPError
from ..hub.core import Delivery
from ..hub.registry import ClientRecord, Profile
from ..types import error_response
from .mirror import DeliveryHandler, client_entries
from .naming import HUB_KEY, ID_KEY, proxy_metadata
from .policy import SharePolicy

__all__ = ["ClientMirror"]

log = logging.getLogger("sampflow.link")


class _Local:
    __slots__ = ("declared", "metadata", "subscriptions")

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.subscriptions: dict[str, Any] = {}
        self.declared = False


class ClientMirror:
    """Proxy clients registered on a hub in another process.

    Parameters
    ----------
    lockfile : str or None
        The hub's lockfile (None: ``SAMP_HUB`` or ``~/.samp``, section 4.3).
    name, policy, on_delivery, on_local_change
        As for `HubMirror`.
    """

    def __init__(self, lockfile: str | None, name: str, policy: SharePolicy,
                 on_delivery: DeliveryHandler, on_local_change: Callable[[], None]) -> None:
        self.lockfile = lockfile
        self.name = name
        self.policy = policy
        self._on_delivery = on_delivery
        self._on_local_change = on_local_change
        self.bridge = AsyncSAMPClient(
            metadata={"samp.name": f"sampflow-link ({name})",
                      "samp.description.text": "sampflow federation link: clients of other "
                                               "hubs appear here as proxies",
                      HUB_KEY: name})
        self.bridge.on_message = self._event
        self._locals: dict[str, _Local] = {}
        self._proxies: dict[tuple[str, str], tuple[AsyncSAMPClient, ClientRecord]] = {}
        self._proxy_ids: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        #: Set when the hub stops or disconnects the bridge; the link then has no hub.
        self.hub_lost = asyncio.Event()
        self.on_proxy_gone: list[Callable[[ClientRecord], None]] = []

    # -- attaching -----------------------------------------------------------------------------
    async def attach(self) -> None:
        """Register the bridge client and read the hub's client list.

        Raises
        ------
        SAMPHubError
            If no hub answers at the lockfile.
        """
        await self.bridge.connect(lockfile=self.lockfile)
        await self.bridge.declare_subscriptions({mtype: {} for mtype in HUB_EVENT_MTYPES})
        for cid in await self.bridge.get_registered_clients():
            if cid != self.bridge.hub_id:
                await self._fetch(cid)
        self._on_local_change()

    async def detach(self) -> None:
        """Unregister every proxy and the bridge client."""
        for hub in self.hubs():
            await self.drop_hub(hub, "link stopped")
        await self.bridge.disconnect()

    async def _fetch(self, cid: str) -> None:
        entry = self._locals.setdefault(cid, _Local())
        try:
            entry.metadata = await self.bridge.get_metadata(cid)
            entry.subscriptions = await self.bridge.get_subscriptions(cid)
        except SAMPError:
            self._locals.pop(cid, None)  # gone meanwhile
            return
        entry.declared = bool(entry.metadata or entry.subscriptions)

    async def _event(self, kind: str, sender: str, msg_id: str | None,
                     message: dict[str, Any]) -> dict[str, Any] | None:
        mtype = message.get("samp.mtype")
        params = message.get("samp.params") or {}
        cid = params.get("id") if isinstance(params, dict) else None
        if mtype in ("samp.hub.event.shutdown", "samp.hub.disconnect"):
            log.warning("the hub %s; the link has no hub", "stopped" if
                        mtype.endswith("shutdown") else "disconnected the link")
            self.hub_lost.set()
        elif isinstance(cid, str) and cid not in self._proxy_ids:
            if mtype == "samp.hub.event.register":
                await self._fetch(cid)
            elif mtype == "samp.hub.event.unregister":
                self._locals.pop(cid, None)
            elif mtype == "samp.hub.event.metadata":
                entry = self._locals.setdefault(cid, _Local())
                entry.metadata = params.get("metadata") or {}
                entry.declared = True
            elif mtype == "samp.hub.event.subscriptions":
                entry = self._locals.setdefault(cid, _Local())
                entry.subscriptions = params.get("subscriptions") or {}
                entry.declared = True
            self._on_local_change()
        return None if kind != "call" else {"samp.status": "samp.ok", "samp.result": {}}

    # -- what the federation sees of this hub ------------------------------------------------
    def local_clients(self) -> list[dict[str, Any]]:
        """As `HubMirror.local_clients`: the hub's own clients, proxies and bridges left out."""
        return [
            {"id": cid, "metadata": entry.metadata,
             "subscriptions": self.policy.subscriptions(entry.subscriptions)}
            for cid, entry in self._locals.items()
            if entry.declared and cid not in self._proxy_ids and cid != self.bridge.public_id
            and HUB_KEY not in entry.metadata
        ]

    def is_local(self, public_id: str) -> bool:
        """Whether `public_id` is one of the hub's own clients that the federation sees."""
        entry = self._locals.get(public_id)
        return entry is not None and public_id not in self._proxy_ids \
            and HUB_KEY not in entry.metadata

    # -- proxies -----------------------------------------------------------------------------
    def proxy(self, hub: str, remote_id: str) -> ClientRecord | None:
        """The record standing for the proxy of `remote_id` of `hub`, or None."""
        found = self._proxies.get((hub, remote_id))
        return found[1] if found is not None else None

    def hubs(self) -> set[str]:
        """Names of the hubs that have proxies here."""
        return {hub for hub, _ in self._proxies}

    async def sync_hub(self, hub: str, clients: list[dict[str, Any]]) -> None:
        """As `HubMirror.sync_hub`, over the hub's XML-RPC API (one change at a time)."""
        lock = self._locks.setdefault(hub, asyncio.Lock())
        async with lock:
            seen: set[str] = set()
            for remote_id, metadata, subs in client_entries(clients):
                seen.add(remote_id)
                try:
                    await self._upsert(hub, remote_id, metadata, subs)
                except (SAMPError, OSError) as exc:
                    log.warning("client %s of %s not mirrored: %s", remote_id, hub, exc)
            for (h, remote_id) in list(self._proxies):
                if h == hub and remote_id not in seen:
                    await self._remove(hub, remote_id)

    async def _upsert(self, hub: str, remote_id: str, metadata: dict[str, Any],
                      subscriptions: dict[str, Any]) -> None:
        meta = proxy_metadata(metadata, remote_id, hub)
        subs = self.policy.subscriptions(subscriptions)
        found = self._proxies.get((hub, remote_id))
        if found is None:
            client = AsyncSAMPClient(metadata=meta)
            await client.connect(lockfile=self.lockfile)
            assert client.public_id is not None
            self._proxy_ids.add(client.public_id)
            record = ClientRecord(client.public_id, "", Profile.LINK, meta, subs,
                                  info={HUB_KEY: hub, ID_KEY: remote_id})
            client.on_message = self._proxy_handler(record)
            client.on_response = self._response_handler(record)
            self._proxies[(hub, remote_id)] = (client, record)
            self._locals.pop(client.public_id, None)
            if subs:
                await client.declare_subscriptions(subs)
            log.info("proxy %s for %s on %s", record.public_id, meta["samp.name"], hub)
            return
        client, record = found
        if record.metadata != meta:
            record.metadata = meta
            await client.declare_metadata(meta)
        if record.subscriptions != subs:
            record.subscriptions = subs
            await client.declare_subscriptions(subs)

    async def _remove(self, hub: str, remote_id: str) -> None:
        found = self._proxies.pop((hub, remote_id), None)
        if found is None:
            return
        client, record = found
        for hook in self.on_proxy_gone:
            hook(record)
        await client.disconnect()
        self._proxy_ids.discard(record.public_id)

    async def drop_hub(self, hub: str, reason: str) -> None:
        """Unregister every proxy of `hub`'s clients."""
        lock = self._locks.setdefault(hub, asyncio.Lock())
        async with lock:
            for (h, remote_id) in list(self._proxies):
                if h == hub:
                    await self._remove(hub, remote_id)
        log.info("proxies of %s removed: %s", hub, reason)

    # -- traffic through a proxy ---------------------------------------------------------------
    def _proxy_handler(self, record: ClientRecord) -> Any:
        async def on_message(kind: str, sender_id: str, msg_id: str | None,
                             message: dict[str, Any]) -> dict[str, Any] | None:
            mtype = message.get("samp.mtype", "")
            if not self.policy.allows(mtype) or sender_id in self._proxy_ids:
                text = (f"{mtype} may not cross the federation link of hub {self.name}"
                        if sender_id not in self._proxy_ids
                        else "messages from other hubs are not relayed to a third hub")
                return error_response(text) if kind == "call" else None
            hub, remote_id = record.info[HUB_KEY], record.info[ID_KEY]
            if kind == "call":
                self._on_delivery(Delivery(record, "receiveCall", (sender_id, msg_id, message)),
                                  hub, remote_id)
            else:
                self._on_delivery(Delivery(record, "receiveNotification", (sender_id, message)),
                                  hub, remote_id)
            return None  # the link replies (`reply`) once the other hub answers

        return on_message

    def _response_handler(self, record: ClientRecord) -> Any:
        async def on_response(responder_id: str, msg_tag: str, response: dict[str, Any]) -> None:
            self._on_delivery(Delivery(record, "receiveResponse", (responder_id, msg_tag,
                                                                   response)),
                              record.info[HUB_KEY], record.info[ID_KEY])

        return on_response

    def _client(self, proxy: ClientRecord) -> AsyncSAMPClient:
        found = self._proxies.get((proxy.info[HUB_KEY], proxy.info[ID_KEY]))
        if found is None or found[1] is not proxy:
            raise SAMPError(f"proxy {proxy.public_id} is gone")
        return found[0]

    async def notify(self, proxy: ClientRecord, recipient_id: str,
                     message: dict[str, Any]) -> None:
        """``notify`` from `proxy`. Raises `SAMPError` if the hub refuses it."""
        await self._client(proxy).notify(recipient_id, message)

    async def call(self, proxy: ClientRecord, recipient_id: str, msg_tag: str,
                   message: dict[str, Any]) -> None:
        """``call`` from `proxy`; the response arrives as a ``receiveResponse`` delivery."""
        await self._client(proxy).call(recipient_id, msg_tag, message)

    async def reply(self, proxy: ClientRecord, msg_id: str, response: dict[str, Any]) -> None:
        """``reply`` by `proxy`. Raises `SAMPError` if the hub refuses it."""
        await self._client(proxy).reply(msg_id, response)
