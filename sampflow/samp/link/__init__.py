"""Federation of sampflow hubs over NATS (``sampflow link``).

A link is one more profile of the hub (`sampflow.samp.hub.profiles`): it mirrors the clients
of the other linked hubs as proxy clients (`HubMirror`), carries messages to them over NATS
(`HubLink`), lets only the shared MTypes cross (`SharePolicy`) and makes local files that a
crossing message mentions reachable from the other side (`DataServer`).
"""

from .link import HubLink, LinkError
from .mirror import PROXY_SOURCE_KEY, HubMirror, proxy_name
from .policy import DEFAULT_SHARE, NEVER_SHARED, SharePolicy

__all__ = [
           "DEFAULT_SHARE",
           "NEVER_SHARED",
           "PROXY_SOURCE_KEY",
           "HubLink",
           "HubMirror",
           "LinkError",
           "SharePolicy",
           "proxy_name",
]
