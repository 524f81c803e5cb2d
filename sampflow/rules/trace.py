"""Firing records: one per rule run, logged on one line with ``-v`` and written as JSON lines
with ``--trace FILE``."""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from typing import IO, Any

__all__ = ["FiringRecord", "TraceWriter"]


@dataclass(slots=True)
class FiringRecord:
    """What one firing did.

    ``sent`` holds one entry per message sent (or, in a dry run, that would have been sent):
    action, recipient id and name, MType, params, response, duration in milliseconds.
    ``steps`` holds the other actions' notes (log lines, delays, programs run, failures).
    """

    rule: str
    trigger: str
    event: dict[str, Any]
    key: Any = None
    time: str = field(default_factory=lambda: _dt.datetime.now().astimezone().isoformat())
    status: str = "running"
    error: str | None = None
    duration_ms: float = 0.0
    dry_run: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def one_line(self) -> str:
        """The ``-v`` summary: rule, trigger, what was sent to whom, the response, the time."""
        parts = []
        for s in self.sent:
            resp = s.get("response")
            status = resp.get("samp.status", "") if isinstance(resp, dict) else ""
            parts.append(f"{s.get('mtype')} -> {s.get('to_name') or s.get('to')}"
                         + (f" [{status}]" if status else "")
                         + (" (dry run)" if s.get("dry_run") else ""))
        what = "; ".join(parts) or "nothing sent"
        tail = f" ERROR {self.error}" if self.error else ""
        return (f"{self.rule!r} on {self.trigger}: {what} - {self.status} in "
                f"{self.duration_ms:.1f} ms{tail}")


class TraceWriter:
    """Appends one JSON object per firing to a file (flushed at once)."""

    def __init__(self, target: str | os.PathLike[str] | IO[str]) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._fh: IO[str] = open(target, "a", encoding="utf-8")
            self._own = True
        else:
            self._fh, self._own = target, False

    def write(self, record: FiringRecord) -> None:
        """Write ``record`` as one line."""
        self._fh.write(json.dumps(record.as_dict(), default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file if this writer opened it."""
        if self._own:
            self._fh.close()
