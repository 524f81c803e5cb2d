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

Threads: watchdog's observer thread only appends raw events to a thread-safe queue; one
``loop.call_soon_threadsafe`` wakes the loop per batch, not per event (a burst of thousands of
events must not fill the loop's self-pipe, which also carries signals: a full pipe loses
SIGTERM), and the loop drains the queue in slices. All state lives on the loop. Stopping the
observer (which joins its threads) happens on a helper thread, never on the loop.

A watched folder that is deleted (or moved away) is reported at once with a warning; the watch
then polls for it every :data:`REARM_POLL` seconds and re-arms when it is back, treating the
files already in the new folder as ``created``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
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
from ..offload import offload
from .bus import EventBus

__all__ = ["REARM_POLL", "CatchUpProgress", "FolderWatch", "attach"]

log = logging.getLogger(__name__)

#: Seconds between checks that a watched folder still exists (and, once gone, is back).
REARM_POLL = 1.0
#: Raw events handled per loop callback; the rest wait for the next turn of the loop.
_DRAIN_SLICE = 256

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
    """Runs on the observer thread: queues each event and wakes the loop once per batch.

    Directory events are dropped, except the deletion or move of the watched folder itself.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: Callable[[FileSystemEvent], None],
                 root: str) -> None:
        self._loop = loop
        self._sink = sink
        self._root = root
        self._queue: deque[FileSystemEvent] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self.closed = False

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self.closed:
            return
        if event.is_directory and not (isinstance(event, (DirDeletedEvent, DirMovedEvent))
                                       and os.fsdecode(event.src_path) == self._root):
            return
        with self._lock:
            self._queue.append(event)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # loop closed while the observer was stopping
            pass

    def _drain(self) -> None:
        """On the loop: hand a slice of the queued events to the sink."""
        with self._lock:
            n = min(len(self._queue), _DRAIN_SLICE)
            batch = [self._queue.popleft() for _ in range(n)]
            more = bool(self._queue)
            self._scheduled = more
        for event in batch:
            if self.closed:
                return
            try:
                self._sink(event)
            except Exception:  # one bad event must not lose the rest of the batch
                log.exception("handling file event %r failed", event)
        if more:
            self._loop.call_soon(self._drain)


def _stop_observer(observer: Any) -> None:
    """Stop and join a watchdog observer on a daemon thread (both may block)."""
    def stop() -> None:
        try:
            observer.stop()
            observer.join(timeout=5)
        except Exception:  # pragma: no cover - the observer is going away anyway
            log.debug("stopping the file observer failed", exc_info=True)
    threading.Thread(target=stop, name="sampflow-observer-stop", daemon=True).start()


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
        self._handler: _Handler | None = None
        self._guard: asyncio.Task[None] | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder
        self._lost_at: float | None = None  # wall time the folder was found gone
        self._catch_up: asyncio.Task[None] | None = None
        self._hold_limit = max(30.0, 10 * config.settle)
        self.fired = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the observer (and the catch-up scan); raises if the folder does not exist."""
        if not os.path.isdir(self._root):
            raise FileNotFoundError(f"no such folder: {self._root}")
        st = os.stat(self._root)
        self._identity = (st.st_dev, st.st_ino)
        self._arm()
        self._guard = self._loop.create_task(self._keep_watching())
        if self.config.catch_up != "none":
            self._catch_up = self._loop.create_task(self._scan_existing())

    def _arm(self) -> None:
        cfg = self.config
        self._handler = _Handler(self._loop, self._on_raw, self._root)
        self._observer = PollingObserver(timeout=cfg.poll) if cfg.poll else Observer()
        self._observer.schedule(self._handler, self._root, recursive=cfg.recursive)
        self._observer.daemon = True
        self._observer.start()

    def _disarm(self) -> None:
        if self._handler is not None:
            self._handler.closed = True
            self._handler = None
        if self._observer is not None:
            _stop_observer(self._observer)
            self._observer = None

    def stop(self) -> None:
        """Stop watching; pending files are forgotten. Does not block the loop."""
        for task in (self._catch_up, self._guard):
            if task is not None:
                task.cancel()
        for p in self._pending.values():
            if p.handle is not None:
                p.handle.cancel()
        self._pending.clear()
        self._disarm()

    # -- a deleted folder: warn, poll, re-arm ------------------------------------------------
    @property
    def watching(self) -> bool:
        """False while the watched folder is gone (waiting for it to come back)."""
        return self._lost_at is None

    def _folder_gone(self, how: str) -> None:
        if self._lost_at is not None:
            return
        self._lost_at = time.time()
        log.warning("watched folder %s %s; no files are seen until it comes back (checking "
                    "every %g s)", self._root, how, REARM_POLL)
        for p in self._pending.values():
            if p.handle is not None:
                p.handle.cancel()
        self._pending.clear()
        self._opens.clear()
        self._disarm()

    async def _keep_watching(self) -> None:
        """Poll the folder: notice it going (if no event said so) and coming back."""
        while True:
            await asyncio.sleep(REARM_POLL)
            try:
                st = await offload(os.stat, self._root)
            except (OSError, TimeoutError):
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                st = None
            identity = (st.st_dev, st.st_ino) if st is not None else None
            if self._lost_at is None:
                if identity is None:
                    self._folder_gone("was deleted or moved away")
                elif identity != self._identity:
                    self._folder_gone("was replaced")
                else:
                    continue
            if identity is None:
                continue
            await self._rearm(identity)

    async def _rearm(self, identity: tuple[int, int]) -> None:
        lost_at = self._lost_at or 0.0
        same = identity == self._identity
        self._identity = identity
        self._lost_at = None
        try:
            self._arm()
        except OSError as exc:  # gone again already
            self._folder_gone(f"cannot be watched ({exc})")
            return
        log.warning("watched folder %s is back; watching it again", self._root)
        # Files put there before the new observer started: new, unless the folder is the
        # same one moved back (then only those changed since it went).
        try:
            found = await offload(self._files_now, None if not same else lost_at - 1.0)
        except (OSError, TimeoutError) as exc:
            log.warning("cannot list %s: %s", self._root, exc)
            return
        for path in found:
            if self._lost_at is None and path not in self._pending:
                self._touch(path, "created")

    def _files_now(self, newer_than: float | None) -> list[str]:
        """Matching files in the folder (blocking; for the pool), oldest first."""
        found: list[tuple[float, str]] = []
        for dirpath, dirnames, filenames in os.walk(self._root):
            if not self.config.recursive:
                dirnames.clear()
            for name in filenames:
                full = os.path.join(dirpath, name)
                if self.matches(full):
                    try:
                        mtime = os.stat(full).st_mtime
                    except OSError:
                        continue
                    if newer_than is None or mtime >= newer_than:
                        found.append((mtime, full))
        return [p for _, p in sorted(found)]

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
        if ev.is_directory:  # only the watched folder itself is passed on
            self._folder_gone("was deleted" if isinstance(ev, DirDeletedEvent)
                              else "was moved away")
            return
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
