"""The dispatch index: events the engine feeds in, matched to the triggers that want them.

SAMP message triggers are indexed by MType pattern: an exact MType, a ``prefix.*`` pattern or
``*``; an incoming MType with *n* atoms is matched with *n* + 1 dictionary lookups, whatever the
number of rules. Hub event triggers are indexed by event kind.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from ...samp.types import mtype_matches as _samp_mtype_matches
from ..events import Event, HubEvent, SampMessage

__all__ = ["EventBus", "mtype_matches"]

Listener = Callable[[Event], Any]

# The SAMP package's one implementation of MType wildcards (SAMP 1.3 section 3.2).
mtype_matches = _samp_mtype_matches


def _prefixes(mtype: str) -> list[str]:
    """Index keys an MType falls under: '' (for ``*``) and each ``a.``, ``a.b.``, ..."""
    atoms = mtype.split(".")
    return [""] + [".".join(atoms[:i]) + "." for i in range(1, len(atoms))]


class EventBus:
    """Index of listeners by MType pattern and hub event kind.

    Listeners are called in the order they subscribed (rule file order) and their return values
    are collected by :meth:`publish`.
    """

    def __init__(self) -> None:
        self._exact: dict[str, list[tuple[int, Listener]]] = {}
        self._prefix: dict[str, list[tuple[int, Listener]]] = {}
        self._hub: dict[str, list[tuple[int, Listener]]] = {}
        self._seq = itertools.count()

    @staticmethod
    def _add(table: dict[str, list[tuple[int, Listener]]], key: str, listener: Listener,
             seq: int) -> Callable[[], None]:
        entry = (seq, listener)
        table.setdefault(key, []).append(entry)

        def remove() -> None:
            lst = table.get(key, [])
            if entry in lst:
                lst.remove(entry)
            if not lst:
                table.pop(key, None)
        return remove

    def on_mtype(self, pattern: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for SAMP messages matching ``pattern``; returns an unsubscriber."""
        seq = next(self._seq)
        if pattern == "*":
            return self._add(self._prefix, "", listener, seq)
        if pattern.endswith(".*"):
            return self._add(self._prefix, pattern[:-1], listener, seq)
        return self._add(self._exact, pattern, listener, seq)

    def on_hub(self, kind: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for hub events of ``kind``; returns an unsubscriber."""
        return self._add(self._hub, kind, listener, next(self._seq))

    def listeners(self, event: Event) -> list[Listener]:
        """The listeners ``event`` goes to, in subscription order."""
        found: list[tuple[int, Listener]] = []
        if isinstance(event, SampMessage):
            found.extend(self._exact.get(event.mtype, ()))
            for p in _prefixes(event.mtype):
                found.extend(self._prefix.get(p, ()))
        elif isinstance(event, HubEvent):
            found.extend(self._hub.get(event.kind, ()))
        found.sort(key=lambda e: e[0])
        return [listener for _, listener in found]

    def publish(self, event: Event) -> list[Any]:
        """Hand ``event`` to its listeners; returns what they returned (None dropped)."""
        out = []
        for listener in self.listeners(event):
            rv = listener(event)
            if rv is not None:
                out.append(rv)
        return out

    def mtype_patterns(self) -> set[str]:
        """The MType patterns listened to (for ``declare_subscriptions``)."""
        return {p + "*" for p in self._prefix} | set(self._exact)
