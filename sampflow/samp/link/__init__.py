"""Federation of sampflow hubs over NATS (``sampflow link``).

A link is one more profile of the hub (`sampflow.samp.hub.profiles`): it mirrors the clients
of the other linked hubs as proxy clients (`HubMirror` in-process, `ClientMirror` on a hub in
another process), carries messages to them over NATS (`HubLink`), lets only the shared MTypes
cross (`SharePolicy`) and makes local files that a crossing message mentions reachable from
the other side (`DataServer`). `HubLink` needs the optional ``nats-py`` (``sampflow[link]``);
it is imported on first use, so that naming and policy work without it.
"""

from typing import Any

from .naming import HUB_KEY, ID_KEY, PROXY_SOURCE_KEY, address_glob, proxy_name
from .policy import DEFAULT_SHARE, NEVER_SHARED, SharePolicy

__all__ = [
    "DEFAULT_SHARE",
    "HUB_KEY",
    "ID_KEY",
    "NEVER_SHARED",
    "PROXY_SOURCE_KEY",
    "HubLink",
    "LinkError",
    "SharePolicy",
    "address_glob",
    "proxy_name",
]


def __getattr__(name: str) -> Any:
    if name in ("HubLink", "LinkError"):
        from . import link

        return getattr(link, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
