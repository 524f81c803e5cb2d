"""The link's side of the hub: proxy clients hosted in-process (no sockets, no NATS).

`HubMirror` is a `~sampflow.samp.hub.profiles.ProfileHooks` for `Profile.LINK`. It keeps
one proxy client in the local hub for every client of every other linked hub, following the
JSAMP bridge's conventions: the proxy's ``samp.name`` is the original's with a ``(proxy@HUB)``
suffix, its metadata carries ``bridge.proxy.source`` (the origin, ``sampflow-link:HUB``), and
its subscriptions are the original's, less the hub's administrative MTypes and what the
`SharePolicy` keeps home. Proxies are registered, described and removed through the core's
public verbs, so local clients see the usual ``samp.hub.event.*`` for each.

The mirror also registers one client of its own, the bridge client (named
``sampflow-link (HUB)``), subscribed to the hub events: that is how it learns that the local
clients changed and the federation must be told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from ..constants import HUB_CLIENT_EVENT_MTYPES
from ..errors import LocalProtocolError
from ..hub.core import Delivery
from ..hub.registry import ClientRecord, Profile
from ..hub.service import HubService
from .naming import HUB_KEY, ID_KEY, PROXY_SOURCE_KEY, proxy_metadata, proxy_name
from .policy import SharePolicy

__all__ = [
    "HUB_KEY",
    "ID_KEY",
    "PROXY_SOURCE_KEY",
    "HubMirror",
    "client_entries",
    "proxy_name",
]

log = logging.getLogger("sampflow.link")

#: What a proxy's callback is set to: the marker that makes the core count it callable.
CALLBACK = "sampflow-link:"

#: ``on_delivery(delivery, hub, remote_id)``: a delivery for the proxy of `remote_id` on `hub`.
DeliveryHandler = Callable[[Delivery, str, str], None]


def client_entries(clients: list[Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The well-formed entries of a client list from another hub (as its
    `HubMirror.local_clients` gave it), as ``(public id, metadata, subscriptions)``.

    An entry that is not a map with a string ``id`` and map ``metadata`` and
    ``subscriptions`` is skipped: the list came over the network.

    Examples
    --------
    >>> list(client_entries([{"id": "c1", "metadata": {}, "subscriptions": {}},
    ...                      {"id": 7}, "junk"]))
    [('c1', {}, {})]
    """
    for entry in clients:
        if not isinstance(entry, dict):
            continue
        remote_id, metadata, subs = (entry.get("id"), entry.get("metadata"),
                                     entry.get("subscriptions"))
        if isinstance(remote_id, str) and isinstance(metadata, dict) and isinstance(subs, dict):
            yield remote_id, metadata, subs


class HubMirror:
    """Proxy clients for the other hubs' clients, in this process's hub.

    Parameters
    ----------
    service : HubService
        The local hub.
    name : str
        This hub's name in the federation.
    policy : SharePolicy
        What may cross.
    on_delivery : callable
        A `DeliveryHandler`, for every delivery to a proxy.
    on_local_change : callable
        Called (with no arguments) when a local client registered, left, or declared
        metadata or subscriptions.
    """

    profile = Profile.LINK

    def __init__(self, service: HubService, name: str, policy: SharePolicy,
                 on_delivery: DeliveryHandler, on_local_change: Callable[[], None]) -> None:
        self.service = service
        self.core = service.core
        self.name = name
        self.policy = policy
        self._on_delivery = on_delivery
        self._on_local_change = on_local_change
        self._proxies: dict[tuple[str, str], ClientRecord] = {}
        self._detach: Callable[[], None] | None = None
        self.bridge: ClientRecord | None = None
        #: Called with each proxy record removed (the link cancels its calls in flight).
        self.on_proxy_gone: list[Callable[[ClientRecord], None]] = []

    # -- attaching -----------------------------------------------------------------------------
    def attach(self) -> None:
        """Join the hub: install the plug-in and register the bridge client."""
        self._detach = self.service.add_profile(self)
        self.bridge = self._register({
            "samp.name": f"sampflow-link ({self.name})",
            "samp.description.text": "sampflow federation link: clients of other hubs "
                                     "appear here as proxies",
            HUB_KEY: self.name,
        }, {mtype: {} for mtype in HUB_CLIENT_EVENT_MTYPES})

    def detach(self) -> None:
        """Remove every proxy and the bridge client, then leave the hub."""
        for hub in {hub for hub, _ in self._proxies}:
            self.drop_hub(hub, "link stopped")
        if self.bridge is not None:
            self.core.remove_client(self.bridge.public_id, "link stopped")
            self.service.process_outputs()
            self.bridge = None
        if self._detach is not None:
            self._detach()
            self._detach = None

    def _register(self, metadata: dict[str, Any], subscriptions: dict[str, Any]) -> ClientRecord:
        key = self.service.register(Profile.LINK)["samp.private-key"]
        record = self.core.registry.by_key(key)
        self.core.set_callback(key, CALLBACK)
        self.core.declare_metadata(key, metadata)
        self.core.declare_subscriptions(key, subscriptions)
        self.service.process_outputs()
        return record

    # -- what the federation sees of this hub ------------------------------------------------
    def local_clients(self) -> list[dict[str, Any]]:
        """This hub's own clients, as the other hubs should mirror them.

        Returns
        -------
        list of dict
            ``{"id", "metadata", "subscriptions"}`` for every Standard and Web Profile
            client, with the subscriptions cut down to what the policy shares.
        """
        return [
            {"id": r.public_id, "metadata": r.metadata,
             "subscriptions": self.policy.subscriptions(r.subscriptions)}
            for r in self.core.registry
            if r.profile in (Profile.STANDARD, Profile.WEB)
        ]

    # -- proxies -----------------------------------------------------------------------------
    def proxy(self, hub: str, remote_id: str) -> ClientRecord | None:
        """The proxy of client `remote_id` of `hub`, or None."""
        return self._proxies.get((hub, remote_id))

    def hubs(self) -> set[str]:
        """Names of the hubs that have proxies here."""
        return {hub for hub, _ in self._proxies}

    def sync_hub(self, hub: str, clients: list[dict[str, Any]]) -> None:
        """Make the proxies of `hub`'s clients match `clients` (as `local_clients` gives).

        Malformed entries are skipped; metadata and subscriptions are declared only when
        they changed, so an unchanged list produces no hub events.
        """
        seen: set[str] = set()
        for remote_id, metadata, subs in client_entries(clients):
            seen.add(remote_id)
            self._upsert(hub, remote_id, metadata, subs)
        for (h, remote_id) in list(self._proxies):
            if h == hub and remote_id not in seen:
                self._remove(hub, remote_id, "left its hub")

    def _upsert(self, hub: str, remote_id: str, metadata: dict[str, Any],
                subscriptions: dict[str, Any]) -> None:
        meta = proxy_metadata(metadata, remote_id, hub)
        subs = self.policy.subscriptions(subscriptions)
        record = self._proxies.get((hub, remote_id))
        try:
            if record is None:
                record = self._register(meta, subs)
                record.info.update({HUB_KEY: hub, ID_KEY: remote_id})
                self._proxies[(hub, remote_id)] = record
                log.info("proxy %s for %s on %s", record.public_id, meta["samp.name"], hub)
                return
            if record.metadata != meta:
                self.core.declare_metadata(record.private_key, meta)
            if record.subscriptions != subs:
                self.core.declare_subscriptions(record.private_key, subs)
        except LocalProtocolError as exc:  # subscriptions that are not MType patterns
            log.warning("client %s of %s not mirrored: %s", remote_id, hub, exc)
        finally:
            self.service.process_outputs()

    def _remove(self, hub: str, remote_id: str, reason: str) -> None:
        record = self._proxies.pop((hub, remote_id), None)
        if record is None:
            return
        self.core.remove_client(record.public_id, reason)
        self.service.process_outputs()

    def drop_hub(self, hub: str, reason: str) -> None:
        """Remove every proxy of `hub`'s clients (it left, or went silent)."""
        for (h, remote_id) in list(self._proxies):
            if h == hub:
                self._remove(hub, remote_id, reason)

    # -- acting for a proxy (the link calls these) ---------------------------------------------
    def is_local(self, public_id: str) -> bool:
        """Whether `public_id` is one of this hub's own (Standard or Web Profile) clients."""
        record = self.core.registry.get_id(public_id)
        return record is not None and record.profile in (Profile.STANDARD, Profile.WEB)

    def notify(self, proxy: ClientRecord, recipient_id: str, message: dict[str, Any]) -> None:
        """``notify`` from `proxy` to a local client.

        Raises
        ------
        LocalProtocolError
            If the hub refuses it (recipient gone or not subscribed).
        """
        try:
            self.core.notify(proxy.private_key, recipient_id, message)
        finally:
            self.service.process_outputs()

    def call(self, proxy: ClientRecord, recipient_id: str, msg_tag: str,
             message: dict[str, Any]) -> None:
        """``call`` from `proxy`; the response comes back as a ``receiveResponse`` delivery.

        Raises
        ------
        LocalProtocolError
            As for `notify`.
        """
        try:
            self.core.call(proxy.private_key, recipient_id, msg_tag, message)
        finally:
            self.service.process_outputs()

    def reply(self, proxy: ClientRecord, msg_id: str, response: dict[str, Any]) -> None:
        """``reply`` by `proxy` to the call `msg_id` it received.

        Raises
        ------
        LocalProtocolError
            If the call is no longer pending (expired, or the proxy is gone).
        """
        try:
            self.core.reply(proxy.private_key, msg_id, response)
        finally:
            self.service.process_outputs()

    # -- ProfileHooks -------------------------------------------------------------------------
    def filter(self, sender: ClientRecord, recipient: ClientRecord, message: dict) -> str | None:
        """Refuse MTypes the policy keeps home, and relaying between two other hubs."""
        if recipient.profile is not Profile.LINK:
            return None
        if recipient is self.bridge:
            return "the link's bridge client takes no messages"
        mtype = message.get("samp.mtype", "")
        if not self.policy.allows(mtype):
            return f"{mtype} may not cross the federation link of hub {self.name}"
        if sender.profile is Profile.LINK:
            return "messages from other hubs are not relayed to a third hub"
        return None

    def observe(self, sender: ClientRecord, message: dict) -> None:
        """Nothing to watch: URLs are rewritten when a message leaves (`DataServer`)."""

    def deliver(self, delivery: Delivery) -> None:
        """Hub events go to the change callback; deliveries to proxies to the link."""
        recipient = delivery.recipient
        if recipient is self.bridge:
            self._on_local_change()
            return
        hub, remote_id = recipient.info.get(HUB_KEY), recipient.info.get(ID_KEY)
        if isinstance(hub, str) and isinstance(remote_id, str):
            self._on_delivery(delivery, hub, remote_id)

    def client_gone(self, record: ClientRecord, reason: str) -> None:
        """Forget a proxy the core removed; a local client leaving is a change to publish."""
        if record.profile is Profile.LINK:
            key = (record.info.get(HUB_KEY), record.info.get(ID_KEY))
            if self._proxies.get(key) is record:  # type: ignore[arg-type]
                del self._proxies[key]  # type: ignore[arg-type]
            for hook in self.on_proxy_gone:
                hook(record)
        else:
            self._on_local_change()
