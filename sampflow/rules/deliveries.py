"""File firings and the delivery ledger: what the engine records, and the one line per file.

For every firing of a ``files`` rule the engine goes through :class:`FileDeliveries`:

1. before the rule is admitted, a version already ``sent`` is dropped quietly (the same file
   seen twice: a live event and the catch-up scan, a rename and a close);
2. a condition that does not hold records ``skipped``;
3. ``pending`` is written before the first action runs, ``waiting`` while an action holds for
   a recipient, and ``sent`` / ``failed`` when the run ends: a run that should have sent
   something and sent nothing is ``failed``, never ``sent``;
4. each outcome is one log line at normal verbosity::

       sent m31.fits to SAOImageDS9 (812 ms)
       waiting m31.fits: SAOImageDS9 is not registered (held up to 2h)
       failed notes.vot (rule 'tables to TOPCAT'): topcat: Table load failed: ...
       skipped notes.fits: not a FITS image, FITS table or VOTable

At start, :class:`CatchUpPlanner` reconciles each watched folder with the ledger
(``catch_up: new | all | none``, see :mod:`sampflow.rules.triggers.files`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .astropy_warnings import summary
from .events import FileEvent
from .ledger import UNFINISHED, Ledger
from .model import (
    Broadcast,
    Call,
    FilesTrigger,
    Forward,
    HighlightRow,
    Notify,
    PointAt,
    Rule,
    SelectRows,
    SendFile,
)
from .trace import FiringRecord

__all__ = ["CatchUpPlanner", "FileDeliveries", "Found", "file_version", "scan_folder"]

log = logging.getLogger("sampflow.files")

_MESSAGING = (Notify, Call, Broadcast, Forward, SendFile, PointAt, HighlightRow, SelectRows)


def file_version(event: FileEvent) -> tuple[int | None, int | None]:
    """The ``(size, mtime_ns)`` of the event's file: from the event, else from ``stat``."""
    if event.size is not None:
        return event.size, event.mtime_ns
    try:
        st = os.stat(event.path)
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True, slots=True)
class Found:
    """A file the catch-up scan found: absolute path, size in bytes, mtime in ns."""

    path: str
    size: int
    mtime_ns: int


class CatchUpPlanner:
    """Decides, for one rule's watched folder, which files already there are to be run.

    Parameters
    ----------
    ledger : Ledger
        The delivery ledger.
    rule : str
        The rule's name.
    mode : {'new', 'all', 'none'}
        The trigger's ``catch_up``.
    """

    def __init__(self, ledger: Ledger, rule: str, mode: str) -> None:
        self.ledger = ledger
        self.rule = rule
        self.mode = mode

    def plan(self, folder: str, found: Iterable[Found]) -> list[tuple[str, str]]:
        """The files to run, oldest first, as ``(path, event kind)``.

        ``new``: files the ledger has not seen in this version (new or changed), and those
        left ``pending``, ``waiting`` or ``retry`` by the last run; on the rule's first run
        of this folder, the files already there are recorded ``skipped`` instead. ``all``:
        the same, first run included. ``none``: nothing. Unfinished rows whose file has gone
        are recorded ``failed``.

        Parameters
        ----------
        folder : str
            The watched folder (absolute).
        found : iterable of Found
            What the scan found.

        Returns
        -------
        list of (str, str)
            Path and kind (``existing``, or ``retry`` for a file asked for again).
        """
        found = sorted(found, key=lambda f: (f.mtime_ns, f.path))
        first = self.ledger.first_run(self.rule, folder)
        self.ledger.note_watch(self.rule, folder)
        if self.mode == "none":
            return []
        prefix = folder.rstrip(os.sep) + os.sep
        known = {e.path: e for e in self.ledger.entries(self.rule, prefix=prefix)}
        present = {f.path for f in found}
        for gone in known.values():
            if gone.state in UNFINISHED and gone.path not in present:
                self.ledger.finish(self.rule, gone.path, "failed",
                                   "the file was gone when the engine started")
        out: list[tuple[str, str]] = []
        for f in found:
            entry = known.get(f.path)
            if entry is None and first and self.mode == "new":
                self.ledger.skip(self.rule, f.path, f.size, f.mtime_ns,
                                 "already in the folder when the rule first ran "
                                 "(catch_up: new; use catch_up: all to send these)")
                continue
            if entry is None or not entry.same_version(f.size, f.mtime_ns):
                out.append((f.path, "existing"))
            elif entry.state in UNFINISHED:
                out.append((f.path, "retry" if entry.state == "retry" else "existing"))
        return out


class FileDeliveries:
    """The engine's bookkeeping of file firings (see the module docstring).

    Parameters
    ----------
    ledger : Ledger
        Where states are kept.
    dry_run : bool
        Report what would be sent; states are still kept (in a read-only ledger's memory).
    """

    #: How many reported "skipped" file versions are remembered (one line per version).
    REPORTED = 4096

    def __init__(self, ledger: Ledger, *, dry_run: bool = False) -> None:
        self.ledger = ledger
        self.dry_run = dry_run
        self._reported: OrderedDict[tuple[str, int | None, int | None], None] = OrderedDict()

    def planner(self, rule: Rule, trigger: FilesTrigger) -> CatchUpPlanner:
        """The catch-up planner of one rule's files trigger."""
        return CatchUpPlanner(self.ledger, rule.name, trigger.catch_up)

    # -- before a run -------------------------------------------------------------------------
    def already_sent(self, rule: Rule, event: FileEvent) -> bool:
        """Whether this version of the file was sent by `rule` already (drop the firing)."""
        if event.kind in ("deleted", "retry"):
            return False
        entry = self.ledger.get(rule.name, event.path)
        if entry is None or entry.state != "sent":
            return False
        size, mtime_ns = file_version(event)
        if entry.same_version(size, mtime_ns):
            log.debug("rule %r: %s already sent; not again", rule.name, event.path)
            return True
        return False

    def skipped(self, rule: Rule, event: FileEvent, reason: str,
                unreadable: str | None = None, notes: tuple[str, ...] = ()) -> None:
        """Record that `rule`'s condition did not hold for the file.

        Parameters
        ----------
        rule : Rule
        event : FileEvent
        reason : str
            Recorded in the ledger (logged at debug level: other rules may take the file).
        unreadable : str, optional
            Why the file's content could not be told (not FITS, unreadable): said once per
            file version at normal verbosity, whichever rule finds it first.
        notes : tuple of str
            Astropy's warnings about the file (:attr:`FileFacts.warnings`), said on that line.
        """
        if event.kind == "deleted":
            return
        size, mtime_ns = file_version(event)
        self.ledger.skip(rule.name, event.path, size, mtime_ns, reason)
        log.debug("rule %r: skipped %s: %s", rule.name, event.path, reason)
        if unreadable:
            key = (event.path, size, mtime_ns)
            if key not in self._reported:
                self._reported[key] = None
                if len(self._reported) > self.REPORTED:
                    self._reported.popitem(last=False)
                log.info("skipped %s: %s%s", os.path.basename(event.path), unreadable,
                         summary(notes))

    # -- a run --------------------------------------------------------------------------------
    def begin(self, rule: Rule, event: FileEvent) -> None:
        """``pending``, before any action runs."""
        if event.kind != "deleted":
            size, mtime_ns = file_version(event)
            self.ledger.begin(rule.name, event.path, size, mtime_ns)

    def waiting(self, rule: Rule, event: FileEvent, reason: str | None,
                hold_until: float | None) -> None:
        """An action waits for a recipient (`reason`), or stopped waiting (None)."""
        if event.kind == "deleted":
            return
        if reason is None:
            self.ledger.resume(rule.name, event.path)
            return
        self.ledger.wait(rule.name, event.path, reason, hold_until or 0.0)
        log.info("waiting %s: %s", os.path.basename(event.path), reason)

    def finished(self, rule: Rule, event: FileEvent, record: FiringRecord,
                 error: str | None, notes: tuple[str, ...] = ()) -> None:
        """Record and report how the run ended, in one line per file.

        A run of a rule with messaging actions that delivered nothing is ``failed`` (and its
        record's status becomes ``error``), so no "ok" is ever claimed for a send that did
        not happen. `notes` (astropy's warnings about the file, :attr:`FileFacts.warnings`)
        end the line.
        """
        name = os.path.basename(event.path)
        tail = summary(notes)
        to = list(dict.fromkeys(str(s.get("to_name") or s.get("to")) for s in record.sent
                                if not s.get("error")))
        if error is None and not to and any(isinstance(a, _MESSAGING) for a in rule.actions):
            error = "nothing was sent (no recipient)"
            record.status, record.error = "error", error
        if event.kind == "deleted":
            if error is not None:
                log.warning("failed %s (deleted; rule %r): %s%s", name, rule.name, error, tail)
            return
        if error is not None:
            self.ledger.finish(rule.name, event.path, "failed", error)
            log.warning("failed %s (rule %r): %s%s", name, rule.name, error, tail)
            return
        self.ledger.finish(rule.name, event.path, "sent", recipients=to)
        if not to:
            log.info("done %s (rule %r: nothing to send)%s", name, rule.name, tail)
        elif self.dry_run:
            log.info("would send %s to %s (dry run)%s", name, ", ".join(to), tail)
        else:
            log.info("sent %s to %s (%.0f ms)%s", name, ", ".join(to), record.duration_ms,
                     tail)

    def cancelled(self, rule: Rule, event: FileEvent) -> None:
        """The run was cancelled (the engine is stopping): the row stays unfinished, so the
        next start runs it again."""
        log.debug("rule %r: %s left unfinished for the next start", rule.name, event.path)


async def scan_folder(root: str, matches: Callable[[str], bool], recursive: bool
                      ) -> list[Found]:
    """Regular files under `root` that `matches`, with their versions (listed off the loop;
    ``lstat`` only, nothing is opened)."""
    def scan() -> list[Found]:
        out: list[Found] = []
        for dirpath, dirnames, filenames in os.walk(root):
            if not recursive:
                dirnames.clear()
            for name in filenames:
                full = os.path.join(dirpath, name)
                if not matches(full):
                    continue
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append(Found(full, st.st_size, st.st_mtime_ns))
        return out

    return await asyncio.get_running_loop().run_in_executor(None, scan)

