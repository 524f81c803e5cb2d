"""Trigger platform for files: ``on: {files: FOLDER, patterns: [...], settle: 1s, ...}``.

A file fires when it is *complete*:

* its size and modification time have not changed for ``settle`` seconds and no event has come
  for it meanwhile, and
* where the platform reports opens and closes (Linux inotify), nobody still has it open: a
  writer that pauses longer than ``settle`` while keeping the file open does not make it fire
  early. (If a file stays open yet quiet for ``max(30 s, 10 × settle)``, it fires anyway, so a
  lost close cannot block it for ever.)

The event kind is that of the first event in the burst: a file created and then written is
``created``. A file written under a temporary name and renamed into place fires once, as
``moved`` (or as ``created`` when the temporary name matched the patterns too, as the file is
new). ``deleted`` fires at once. ``poll: SECONDS`` uses watchdog's polling observer (network
file systems), where only the size-and-time test applies.

Catch-up: when watching starts, the files already there are reconciled with the delivery
ledger (:class:`~sampflow.rules.deliveries.CatchUpPlanner`): with ``catch_up: new`` (the
default) the files that arrived or changed since the rule last ran, and those a stopped or
killed run left unfinished, fire ``existing`` (oldest first); ``all`` also fires, on the
rule's first run, the files that were there before; ``none`` fires nothing. A file still
being written (changed within ``settle``) waits to be complete like any other. When stderr is
a terminal a progress bar counts the runs they start (:class:`CatchUpProgress`).

Patterns and ignore globs are matched case-insensitively against the file name, or against the
path relative to the folder when they contain ``/``.

Threads: watchdog's observer thread only hands raw events to the asyncio loop with
``loop.call_soon_threadsafe``; all state lives on the loop.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from ..deliveries import CatchUpPlanner, scan_folder
from ..events import Event, FileEvent
from ..ledger import Ledger
from ..model import FilesTrigger
from .bus import EventBus

__all__ = ["CatchUpProgress", "FolderWatch", "attach"]

log = logging.getLogger(__name__)

_Stat = tuple[int, int]


def _stat(path: str) -> _Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


@dataclass(slots=True)
class _Pending:
    kind: str
    last: float
    stat: _Stat | None
    handle: asyncio.TimerHandle | None = None


class _Handler(FileSystemEventHandler):
    """Runs on the observer thread: hands each event to the loop, nothing else."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: Callable[[FileSystemEvent], None]):
        self._loop = loop
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        try:
            self._loop.call_soon_threadsafe(self._sink, event)
        except RuntimeError:  # loop closed while the observer was stopping
            pass


class FolderWatch:
    """Watch one folder for complete files and call ``fire(FileEvent)`` on the loop.

    Parameters
    ----------
    config : FilesTrigger
        What to watch.
    fire : callable
        Called on the event loop with each :class:`~sampflow.rules.events.FileEvent`.
    loop : asyncio.AbstractEventLoop
        The loop to deliver on.
    planner : CatchUpPlanner, optional
        Decides which files already there fire at start (default: an in-memory ledger, so
        ``new`` fires nothing and ``all`` everything).
    """

    def __init__(self, config: FilesTrigger, fire: Callable[[Event], Any],
                 loop: asyncio.AbstractEventLoop,
                 planner: CatchUpPlanner | None = None) -> None:
        self.config = config
        self._planner = planner or CatchUpPlanner(Ledger(None), "", config.catch_up)
        self._fire = fire
        self._loop = loop
        self._root = os.path.abspath(config.path)
        self._pending: dict[str, _Pending] = {}
        self._opens: dict[str, int] = {}
        self._observer: Any = None
        self._catch_up: asyncio.Task[None] | None = None
        self._hold_limit = max(30.0, 10 * config.settle)
        self.fired = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the observer (and the catch-up scan); raises if the folder does not exist."""
        if not os.path.isdir(self._root):
            raise FileNotFoundError(f"no such folder: {self._root}")
        cfg = self.config
        self._observer = PollingObserver(timeout=cfg.poll) if cfg.poll else Observer()
        self._observer.schedule(_Handler(self._loop, self._on_raw), self._root,
                                recursive=cfg.recursive)
        self._observer.daemon = True
        self._observer.start()
        if cfg.catch_up != "none":
            self._catch_up = self._loop.create_task(self._scan_existing())

    def stop(self) -> None:
        """Stop watching; pending files are forgotten."""
        if self._catch_up is not None:
            self._catch_up.cancel()
        for p in self._pending.values():
            if p.handle is not None:
                p.handle.cancel()
        self._pending.clear()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    # -- matching ----------------------------------------------------------------------------
    def matches(self, path: str) -> bool:
        """Whether ``path`` is inside the folder and matches the patterns and not ``ignore``."""
        rel = os.path.relpath(path, self._root)
        if rel.startswith(".."):
            return False
        if os.sep in rel and not self.config.recursive:
            return False
        rel = rel.replace(os.sep, "/").lower()
        name = rel.rsplit("/", 1)[-1]

        def hit(pattern: str) -> bool:
            p = pattern.lower()
            return fnmatch.fnmatchcase(rel if "/" in p else name, p)
        return any(hit(p) for p in self.config.patterns) and not any(
            hit(p) for p in self.config.ignore)

    # -- events (on the loop) ----------------------------------------------------------------
    def _on_raw(self, ev: FileSystemEvent) -> None:
        src = os.fsdecode(ev.src_path)
        if isinstance(ev, FileMovedEvent):
            dest = os.fsdecode(ev.dest_path)
            old = self._pending.pop(src, None)
            self._opens.pop(src, None)
            if old is not None and old.handle is not None:
                old.handle.cancel()
            if dest and self.matches(dest):
                self._touch(dest, old.kind if old is not None else "moved")
            return
        if not self.matches(src):
            return
        if isinstance(ev, FileCreatedEvent):
            self._touch(src, "created")
        elif isinstance(ev, FileModifiedEvent):
            if src in self._pending or "modified" in self.config.events:
                self._touch(src, "modified")
        elif isinstance(ev, FileOpenedEvent):
            self._opens[src] = self._opens.get(src, 0) + 1
        elif isinstance(ev, (FileClosedEvent, FileClosedNoWriteEvent)):
            n = self._opens.pop(src, 0) - 1
            if n > 0:
                self._opens[src] = n
            if isinstance(ev, FileClosedEvent) and (
                    src in self._pending or "modified" in self.config.events):
                self._touch(src, "modified")
        elif isinstance(ev, FileDeletedEvent):
            old = self._pending.pop(src, None)
            self._opens.pop(src, None)
            if old is not None and old.handle is not None:
                old.handle.cancel()
            if "deleted" in self.config.events:
                self._emit("deleted", src)

    def _touch(self, path: str, kind: str) -> None:
        now = self._loop.time()
        p = self._pending.get(path)
        if p is None:
            p = self._pending[path] = _Pending(kind, now, _stat(path))
        else:
            p.last, p.stat = now, _stat(path)
        if p.handle is None:
            p.handle = self._loop.call_at(now + self.config.settle, self._check, path)

    def _check(self, path: str) -> None:
        p = self._pending.get(path)
        if p is None:
            return
        p.handle = None
        now = self._loop.time()
        due = p.last + self.config.settle
        if now < due - 1e-3:
            p.handle = self._loop.call_at(due, self._check, path)
            return
        st = _stat(path)
        if st is None:
            del self._pending[path]
            return
        held = self._opens.get(path, 0) > 0 and now - p.last < self._hold_limit
        if st != p.stat or held:
            if st != p.stat:
                p.stat, p.last = st, now
            p.handle = self._loop.call_at(now + max(self.config.settle, 0.05), self._check, path)
            return
        del self._pending[path]
        if p.kind in self.config.events or p.kind in ("existing", "retry"):
            self._emit(p.kind, path, st)

    def _emit(self, kind: str, path: str, version: _Stat | None = None) -> Any:
        self.fired += 1
        size, mtime_ns = version if version is not None else (None, None)
        try:
            return self._fire(FileEvent(kind, path, size=size, mtime_ns=mtime_ns))
        except Exception:  # the engine isolates rules; this only guards the watcher itself
            log.exception("file trigger for %s failed", path)
            return None

    async def _scan_existing(self) -> None:
        found = await scan_folder(self._root, self.matches, self.config.recursive)
        planned = self._planner.plan(self._root, found)
        versions = {f.path: (f.size, f.mtime_ns) for f in found}
        progress = CatchUpProgress.for_terminal(len(planned), f"catch-up {self._root}")
        recent = time.time_ns() - int(self.config.settle * 1e9)
        try:
            for path, kind in planned:
                version = versions[path]
                if path in self._pending:  # a live event has it already
                    result = None
                elif version[1] > recent:  # may still be being written: settle first
                    self._touch(path, kind)
                    result = None
                else:
                    result = self._emit(kind, path, version)
                if progress is not None:
                    progress.track(result)
                await asyncio.sleep(0)
            if progress is not None:
                await progress.wait()
        finally:
            if progress is not None:
                progress.close()


class CatchUpProgress:
    """A one-line progress bar on a terminal for the runs a catch-up scan started.

    ``track(result)`` takes what the engine returned for one file (a future of the run, or
    None when no run started: the condition did not hold); the bar counts runs that finished.

    Parameters
    ----------
    total : int
        How many files the scan found.
    label : str
        Shown before the bar.
    stream : text file
        Where to draw (stderr).
    """

    WIDTH = 30

    def __init__(self, total: int, label: str, stream: Any) -> None:
        self.total = total
        self.label = label
        self.stream = stream
        self.done = 0
        self._pending: set[asyncio.Future[Any]] = set()
        self._last_draw = 0.0
        self._closed = False

    @classmethod
    def for_terminal(cls, total: int, label: str, stream: Any = None
                     ) -> "CatchUpProgress | None":
        """A bar when ``stream`` (default stderr) is a terminal and there is work, else None."""
        stream = sys.stderr if stream is None else stream
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(total, label, stream) if tty and total > 0 else None

    def track(self, result: Any) -> None:
        """Count ``result``'s run as done when it finishes (at once if it is not a future)."""
        if isinstance(result, asyncio.Future) and not result.done():
            self._pending.add(result)
            result.add_done_callback(self._finished)
        else:
            self._advance()

    def _finished(self, fut: asyncio.Future[Any]) -> None:
        self._pending.discard(fut)
        self._advance()

    def _advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.done >= self.total or now - self._last_draw >= 0.1:
            self._last_draw = now
            self.draw()

    def render(self) -> str:
        """The bar's text, e.g. ``catch-up /data: [#######.......]  12/30  40%``."""
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"{self.label}: [{bar}] {self.done}/{self.total} {frac:4.0%}"

    def draw(self) -> None:
        """Redraw the line in place."""
        if self._closed:
            return
        try:
            self.stream.write("\r" + self.render())
            self.stream.flush()
        except (OSError, ValueError):
            self._closed = True

    async def wait(self) -> None:
        """Wait until every tracked run has finished."""
        while self._pending:
            await asyncio.wait(set(self._pending))

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._closed:
            return
        self.draw()
        try:
            self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
        self._closed = True


def attach(config: FilesTrigger, fire: Callable[[Event], Any], bus: EventBus,
           planner: CatchUpPlanner | None = None) -> Callable[[], None]:
    """Start watching ``config.path``; returns the detach function.

    Parameters
    ----------
    config : FilesTrigger
        What to watch.
    fire : callable
        Called on the loop with each `FileEvent`.
    bus : EventBus
        Unused (file events do not go through the bus).
    planner : CatchUpPlanner, optional
        The engine's catch-up planner for this rule (the delivery ledger).

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    """
    watch = FolderWatch(config, fire, asyncio.get_running_loop(), planner)
    watch.start()
    return watch.stop
