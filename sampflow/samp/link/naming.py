"""How proxies are named, and the ``NAME@HUB`` addresses that rules use for them.

A proxy of client ``NAME`` of linked hub ``HUB`` is called ``NAME (proxy@HUB)`` (the JSAMP
bridge's ``(proxy)`` suffix, with the hub named) and carries ``bridge.proxy.source``
(``sampflow-link:HUB``), ``sampflow.link.hub`` and ``sampflow.link.id`` in its metadata. This
module imports nothing optional, so the rules engine can use it without NATS installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "HUB_KEY",
    "ID_KEY",
    "PROXY_SOURCE_KEY",
    "address_glob",
    "proxy_metadata",
    "proxy_name",
]

#: The JSAMP bridge's metadata key naming where a proxy client's original lives.
PROXY_SOURCE_KEY = "bridge.proxy.source"
#: sampflow's own keys on a proxy: the origin hub's name and the original's public id there.
HUB_KEY = "sampflow.link.hub"
ID_KEY = "sampflow.link.id"


def proxy_name(name: str, hub: str) -> str:
    """The ``samp.name`` of the proxy, on other hubs, of a client called `name` on `hub`.

    >>> proxy_name("SAOImageDS9", "desk3")
    'SAOImageDS9 (proxy@desk3)'
    """
    return f"{name} (proxy@{hub})"


def proxy_metadata(metadata: Mapping[str, Any], remote_id: str, hub: str) -> dict[str, Any]:
    """The metadata the proxy of client `remote_id` of `hub` declares: the original's
    `metadata`, renamed by `proxy_name` (after its public id when it has no ``samp.name``),
    with `PROXY_SOURCE_KEY`, `HUB_KEY` and `ID_KEY` added.

    Parameters
    ----------
    metadata : dict
        The original's metadata map (SAMP 1.3 section 3.5).
    remote_id : str
        The original's public id on `hub`.
    hub : str
        The name of the hub the original is registered with.

    Returns
    -------
    dict
        A new map; `metadata` is not changed.

    Examples
    --------
    >>> proxy_metadata({"samp.name": "topcat"}, "c3", "desk3")["samp.name"]
    'topcat (proxy@desk3)'
    >>> proxy_metadata({}, "c3", "desk3")[ID_KEY]
    'c3'
    """
    meta = dict(metadata)
    name = metadata.get("samp.name")
    meta["samp.name"] = proxy_name(name if isinstance(name, str) else remote_id, hub)
    meta[PROXY_SOURCE_KEY] = f"sampflow-link:{hub}"
    meta[HUB_KEY] = hub
    meta[ID_KEY] = remote_id
    return meta


def address_glob(address: str) -> str | None:
    """The ``samp.name`` glob that address ``NAME@HUB`` stands for, or None if it is none.

    ``NAME`` and ``HUB`` may be globs themselves: ``*@desk3`` is every client of desk3.

    >>> address_glob("SAOImageDS9@desk3")
    'SAOImageDS9 (proxy@desk3)'
    >>> address_glob("*@desk*")
    '* (proxy@desk*)'
    >>> address_glob("topcat") is None, address_glob("a@") is None
    (True, True)
    """
    name, at, hub = address.rpartition("@")
    if not at or not name or not hub or " " in hub:
        return None
    return proxy_name(name, hub)
