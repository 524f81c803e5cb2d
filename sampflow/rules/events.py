"""Typed events: the rules engine's only input.

Every source (a SAMP message, a hub administrative event, a file that became complete, a timer
tick) is turned into one of the frozen dataclasses below before it reaches the engine, which
dispatches on ``type(event)``.

The union :data:`Event` names them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

__all__ = [
    "FILE_EVENT_KINDS",
    "HUB_EVENT_KINDS",
    "Event",
    "FileEvent",
    "HubEvent",
    "SampMessage",
    "TimerEvent",
]

#: The kinds of file event a rule may ask for (``existing`` is only emitted by ``catch_up``).
FILE_EVENT_KINDS = ("created", "modified", "moved", "deleted")
#: The kinds of hub event a rule may ask for.
HUB_EVENT_KINDS = ("registered", "unregistered", "metadata", "subscriptions")


@dataclass(frozen=True, slots=True)
class SampMessage:
    """A SAMP message received by the engine's client.

    Parameters
    ----------
    kind : {"notification", "call"}
        How it was sent; a call expects a reply.
    sender_id : str
        The sender's public id.
    sender_name : str or None
        The sender's ``samp.name`` if known.
    mtype : str
        The message's MType.
    params : dict
        ``samp.params`` (SAMP values: strings, lists and maps).
    msg_id : str or None
        The message id for a call, ``None`` for a notification.
    sender_profile : str or None
        How the sender is connected: ``"standard"``, ``"web"`` (a browser page, Web
        Profile), ``"hub"``, or None when the hub cannot tell (only sampflow's hub answers
        the ``sampflow.hub.profile`` call).
    """

    kind: Literal["notification", "call"]
    sender_id: str
    sender_name: str | None
    mtype: str
    params: dict[str, Any] = field(default_factory=dict)
    msg_id: str | None = None
    sender_profile: str | None = None
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in ("notification", "call"):
            raise ValueError(f"kind must be 'notification' or 'call', not {self.kind!r}")
        if not isinstance(self.mtype, str) or not self.mtype:
            raise ValueError("mtype must be a non-empty string")
        if not isinstance(self.params, dict):
            raise ValueError("params must be a dict")
        if self.kind == "call" and not self.msg_id:
            raise ValueError("a call needs a msg_id")

    @property
    def message(self) -> dict[str, Any]:
        """The message as a SAMP map (``samp.mtype`` and ``samp.params``)."""
        return {"samp.mtype": self.mtype, "samp.params": self.params}


@dataclass(frozen=True, slots=True)
class HubEvent:
    """A client appeared, left, or changed its metadata or subscriptions.

    Parameters
    ----------
    kind : {"registered", "unregistered", "metadata", "subscriptions"}
        ``registered`` is emitted once the client has declared its name (its first metadata), so
        that rules can match it by name.
    client_id : str
        The client's public id.
    client_name : str or None
        Its ``samp.name``, when known.
    data : dict
        The new metadata or subscriptions map, empty otherwise.
    """

    kind: str
    client_id: str
    client_name: str | None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in HUB_EVENT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(HUB_EVENT_KINDS)}, not {self.kind!r}")


@dataclass(frozen=True, slots=True)
class FileEvent:
    """A watched file became complete (or was deleted).

    Parameters
    ----------
    kind : {"created", "modified", "moved", "deleted", "existing", "retry"}
        ``existing`` comes from ``catch_up`` for files already there at start; ``retry`` from
        ``sampflow retry`` (the delivery ledger).
    path : str
        Absolute path of the file.
    time : float
        Unix time of the event, in seconds.
    size : int, optional
        The file's size in bytes when it was found complete (the version the delivery
        ledger records; None for ``deleted``).
    mtime_ns : int, optional
        Its modification time then, in nanoseconds since the epoch.
    """

    kind: str
    path: str
    time: float = field(default_factory=time.time)
    size: int | None = None
    mtime_ns: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FILE_EVENT_KINDS + ("existing", "retry"):
            raise ValueError(f"unknown file event kind {self.kind!r}")
        if not Path(self.path).is_absolute():
            raise ValueError(f"path must be absolute: {self.path!r}")


@dataclass(frozen=True, slots=True)
class TimerEvent:
    """A periodic timer ticked.

    Parameters
    ----------
    every : float
        The period in seconds.
    count : int
        How many times it has ticked, starting at 1.
    """

    every: float
    count: int
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.every <= 0:
            raise ValueError("every must be positive")


Event = Union[SampMessage, HubEvent, FileEvent, TimerEvent]
