"""Which MTypes may cross a federation link (per hub), and what a proxy subscribes to.

A `SharePolicy` is plain data with no I/O. Each linked hub applies its own policy twice:
to what its local clients may send to proxies (outgoing), and to what arrives from other hubs
(incoming), so a hub never has to trust another hub's policy.

MTypes that make a peer run code are never shared, whatever the share patterns say
(`NEVER_SHARED`): Aladin scripts (``script.aladin.send``), DS9 commands (``ds9.set``),
command execution and the hub's administrative MTypes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..types import mtype_matches

__all__ = ["DEFAULT_SHARE", "NEVER_SHARED", "SharePolicy"]

#: MType patterns shared when ``--share`` is not given: the standard data-exchange MTypes,
#: plus ``samp.app.ping`` (answering it runs nothing and clients use it to check liveness).
DEFAULT_SHARE: tuple[str, ...] = (
    "table.*",
    "image.*",
    "coord.*",
    "spectrum.*",
    "voresource.*",
    "samp.app.ping",
)

#: Glob patterns (`fnmatch`, so ``*`` may stand anywhere) of MTypes that never cross a link.
NEVER_SHARED: tuple[str, ...] = (
    "script.*",
    "*.exec",
    "*.exec.*",
    "*.cmd",
    "*.cmd.*",
    "client.cmd.*",
    "ds9.set",
    "samp.hub.*",
    "x-samp.*",
)


@dataclass(frozen=True)
class SharePolicy:
    """The MTypes one hub lets cross its link.

    Parameters
    ----------
    share : iterable of str
        SAMP MType patterns (section 3.2: ``*`` alone, or a trailing ``.*``) allowed across.

    Examples
    --------
    >>> policy = SharePolicy()
    >>> policy.allows("table.load.votable"), policy.allows("script.aladin.send")
    (True, False)
    >>> SharePolicy(["*"]).allows("ds9.set")
    False
    >>> policy.subscriptions({"*": {}, "table.load.votable": {"x": "1"},
    ...                       "samp.hub.event.register": {}, "ds9.set": {}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'table.*': {}, 'image.*': {}, 'coord.*': {}, 'spectrum.*': {}, 'voresource.*': {},
     'samp.app.ping': {}, 'table.load.votable': {'x': '1'}}
    """

    share: tuple[str, ...] = DEFAULT_SHARE

    def __init__(self, share: Iterable[str] = DEFAULT_SHARE) -> None:
        object.__setattr__(self, "share", tuple(share))

    def allows(self, mtype: str) -> bool:
        """Whether a message of `mtype` may cross (in either direction)."""
        if any(fnmatchcase(mtype, never) for never in NEVER_SHARED):
            return False
        return any(mtype_matches(pattern, mtype) for pattern in self.share)

    def subscriptions(self, subscriptions: dict[str, Any]) -> dict[str, Any]:
        """The part of a client's subscriptions that a proxy of it may declare.

        Parameters
        ----------
        subscriptions : dict
            Pattern -> annotation, as the client declared them (section 3.6).

        Returns
        -------
        dict
            The patterns inside a share pattern (kept as declared), and the share patterns
            inside a declared wildcard (with its annotation); never-shared MTypes dropped.
        """
        out: dict[str, Any] = {}
        for pattern, annotation in subscriptions.items():
            if not isinstance(pattern, str):
                continue
            for share in self.share:
                if _covers(share, pattern):
                    narrower = pattern
                elif _covers(pattern, share):
                    narrower = share
                else:
                    continue
                if not _never(narrower):
                    out.setdefault(narrower, annotation)
        return out


def _covers(wide: str, narrow: str) -> bool:
    """Whether SAMP pattern `wide` matches every MType that pattern `narrow` matches."""
    if wide == "*":
        return True
    if narrow == "*":
        return False
    if wide.endswith(".*"):
        prefix = wide[:-1]  # keeps the dot
        return narrow.startswith(prefix)
    return wide == narrow


def _never(pattern: str) -> bool:
    return any(fnmatchcase(pattern, never) for never in NEVER_SHARED)
