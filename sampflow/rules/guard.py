"""Loop prevention for re-broadcast rules.

The engine never reacts to its own messages (the client's id), and nothing is added to what it
sends. Beyond that, it remembers a fingerprint (MType and canonical params) of every message it
sends and of every message it receives, for ``window`` seconds. An incoming message is an *echo*
and is dropped when

* the engine itself sent the same message within the window (a tool, or another engine,
  passing it back), unless it comes from the client whose message the engine was relaying
  (the user clicking the same row again in the tool the rule listens to), or
* it received the same message from a *different* sender within the window (the copy that a
  second engine re-broadcast).

Two engines re-broadcasting the same traffic therefore stop after one hop each, and a tool that
repeats its own message (the user clicking the same row again) is still heard.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["EchoGuard", "fingerprint"]


def fingerprint(mtype: str, params: Any) -> str:
    """A stable digest of a message's MType and params.

    Examples
    --------
    >>> fingerprint("a.b", {"x": "1", "y": ["2"]}) == fingerprint("a.b", {"y": ["2"], "x": "1"})
    True
    """
    text = json.dumps([mtype, params], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class EchoGuard:
    """Remembers recent messages; see the module docstring.

    Parameters
    ----------
    window : float
        Seconds during which a repeat counts as an echo; 0 disables the guard.
    clock : callable
        Monotonic time source (for tests).
    """

    def __init__(self, window: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._sent: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._received: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def _prune(self, now: float) -> None:
        tables: tuple[OrderedDict[str, Any], ...] = (self._sent, self._received)
        for table in tables:
            while table:
                t = next(iter(table.values()))[0]
                if now - t <= self.window:
                    break
                table.popitem(last=False)

    def note_sent(self, mtype: str, params: Any, origin: str | None = None) -> None:
        """Record a message the engine sends; ``origin`` is the id of the client whose message
        caused it (the sender of the incoming message being relayed), if any."""
        if self.window <= 0:
            return
        now = self._clock()
        self._prune(now)
        fp = fingerprint(mtype, params)
        self._sent.pop(fp, None)
        self._sent[fp] = (now, origin)

    def is_echo(self, mtype: str, params: Any, sender_id: str) -> bool:
        """Whether an incoming message is an echo; records it as received if it is not."""
        if self.window <= 0:
            return False
        now = self._clock()
        self._prune(now)
        fp = fingerprint(mtype, params)
        sent = self._sent.get(fp)
        if sent is not None and sent[1] != sender_id:
            return True
        seen = self._received.get(fp)
        if seen is not None and seen[1] != sender_id:
            return True
        self._received.pop(fp, None)
        self._received[fp] = (now, sender_id)
        return False
