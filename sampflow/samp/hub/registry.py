"""The hub's client registry (SAMP 1.3 sections 3.4-3.6): one object, lookups both ways.

`Registry` owns every `ClientRecord`, indexed by private key and by public id, and answers
"who is subscribed to this MType" from a cache that any registration or subscription change
clears. It performs no I/O.
"""

from __future__ import annotations

import enum
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import LocalProtocolError
from ..types import is_valid_pattern, mtype_matches

__all__ = ["Profile", "ClientRecord", "Registry"]


class Profile(enum.Enum):
    """How a client is connected to the hub."""

    #: The hub's own client (section 3.4: the hub "acts as a client").
    HUB = "hub"
    #: Standard Profile: XML-RPC over HTTP, callbacks to the client's own XML-RPC server.
    STANDARD = "standard"
    #: Web Profile: XML-RPC over HTTP with CORS; callbacks are pulled (section 5.2).
    WEB = "web"
    #: A proxy for a client of another hub, hosted by an attached profile (the federation
    #: link, `sampflow.samp.link`): its deliveries go to that profile's `deliver` (`profiles`).
    LINK = "link"


@dataclass(slots=True, eq=False)
class ClientRecord:
    """One registered client.

    Attributes
    ----------
    public_id : str
        The client's public id, as other clients see it.
    private_key : str
        The secret the client presents with every call; from `secrets`.
    profile : Profile
        Standard, Web, or the hub itself.
    metadata : dict
        The map last given to ``declareMetadata``, as given.
    subscriptions : dict
        The map last given to ``declareSubscriptions`` (pattern -> annotation), as given.
    callback : str or None
        Standard Profile: the XML-RPC URL given to ``setXmlrpcCallback``. Web Profile:
        ``"pull"`` once ``allowReverseCallbacks`` has been granted.
    info : dict
        Transport-owned facts (for example the Web Profile's origin and identity info).
    """

    public_id: str
    private_key: str
    profile: Profile
    metadata: dict[str, Any] = field(default_factory=dict)
    subscriptions: dict[str, Any] = field(default_factory=dict)
    callback: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_callable(self) -> bool:
        """Whether the hub can deliver messages to this client."""
        return self.callback is not None or self.profile is Profile.HUB

    @property
    def name(self) -> str:
        """``samp.name`` from the metadata, or the public id when none was declared."""
        name = self.metadata.get("samp.name")
        return name if isinstance(name, str) else self.public_id

    def subscription_for(self, mtype: str) -> Any | None:
        """The annotation of the first subscription pattern matching `mtype`, or None.

        An exact subscription wins over a wildcard one.
        """
        if mtype in self.subscriptions:
            return self.subscriptions[mtype]
        for pattern, annotation in self.subscriptions.items():
            if mtype_matches(pattern, mtype):
                return annotation
        return None


class Registry:
    """Registered clients, indexed by private key and public id.

    Parameters
    ----------
    hub_id : str
        The public id of the hub's own client.
    id_prefix : str
        Prefix of generated public ids (``c`` gives ``c1``, ``c2``, ...).
    """

    def __init__(self, hub_id: str = "hub", id_prefix: str = "c") -> None:
        self.hub_id = hub_id
        self._by_key: dict[str, ClientRecord] = {}
        self._by_id: dict[str, ClientRecord] = {}
        self._counter = itertools.count(1)
        self._id_prefix = id_prefix
        self._subscribed_cache: dict[str, tuple[tuple[ClientRecord, Any], ...]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[ClientRecord]:
        return iter(list(self._by_id.values()))

    def new_client(self, profile: Profile, *, public_id: str | None = None) -> ClientRecord:
        """Create and add a client with fresh ids.

        Parameters
        ----------
        profile : Profile
            The client's profile.
        public_id : str, optional
            Force the public id (used for the hub's own client).

        Returns
        -------
        ClientRecord
        """
        if public_id is None:
            public_id = f"{self._id_prefix}{next(self._counter)}"
        record = ClientRecord(public_id, secrets.token_urlsafe(24), profile)
        self._by_key[record.private_key] = record
        self._by_id[record.public_id] = record
        self._subscribed_cache.clear()
        return record

    def remove(self, record: ClientRecord) -> None:
        """Remove `record`; a no-op when it is already gone."""
        if self._by_key.pop(record.private_key, None) is not None:
            del self._by_id[record.public_id]
            self._subscribed_cache.clear()

    def by_key(self, private_key: object) -> ClientRecord:
        """The client holding `private_key`.

        Raises
        ------
        LocalProtocolError
            If no registered client holds that key.
        """
        record = self._by_key.get(private_key) if isinstance(private_key, str) else None
        if record is None:
            raise LocalProtocolError("unknown private key: not registered, or unregistered")
        return record

    def by_private_key(self, private_key: object) -> ClientRecord | None:
        """The client holding `private_key`, or None (also for a key that is no string)."""
        return self._by_key.get(private_key) if isinstance(private_key, str) else None

    def by_id(self, public_id: object) -> ClientRecord:
        """The client with `public_id`.

        Raises
        ------
        LocalProtocolError
            If no registered client has that public id.
        """
        record = self._by_id.get(public_id) if isinstance(public_id, str) else None
        if record is None:
            raise LocalProtocolError(f"no registered client with public id {public_id!r}")
        return record

    def get_id(self, public_id: str) -> ClientRecord | None:
        """The client with `public_id`, or None."""
        return self._by_id.get(public_id)

    def set_subscriptions(self, record: ClientRecord, subscriptions: dict[str, Any]) -> None:
        """Replace `record`'s subscriptions (section 3.6), keeping annotations as given.

        Raises
        ------
        LocalProtocolError
            If a key is not an MType or a wildcard pattern.
        """
        bad = [key for key in subscriptions if not is_valid_pattern(key)]
        if bad:
            raise LocalProtocolError(f"not MTypes or MType patterns: {', '.join(map(repr, bad))}")
        record.subscriptions = subscriptions
        self._subscribed_cache.clear()

    def changed(self) -> None:
        """Drop cached subscription look-ups (call after a client's callability changes)."""
        self._subscribed_cache.clear()

    def subscribed(self, mtype: str) -> tuple[tuple[ClientRecord, Any], ...]:
        """Clients subscribed to `mtype`, with the matching annotation, in registration order.

        Returns
        -------
        tuple of (ClientRecord, annotation)
            Cached until the next registration or subscription change.
        """
        hit = self._subscribed_cache.get(mtype)
        if hit is None:
            found = []
            for record in self._by_id.values():
                annotation = record.subscription_for(mtype)
                if annotation is not None:
                    found.append((record, annotation))
            hit = tuple(found)
            if len(self._subscribed_cache) > 4096:
                self._subscribed_cache.clear()
            self._subscribed_cache[mtype] = hit
        return hit
