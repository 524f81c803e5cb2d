"""The delivery ledger: what each rule did with each file, kept on disk.

A watched folder is only trustworthy if the engine remembers, across restarts and crashes,
which files it has delivered. The ledger is that memory: one SQLite database (the standard
library's :mod:`sqlite3`, WAL journal) in the user's state directory, one row per
``(rule, path)`` holding the state of the file's newest version:

=========  ===============================================================================
state      meaning
=========  ===============================================================================
pending    a run for this file has started and has not finished (written *before* sending)
waiting    the recipient is not registered; the run waits for it (``hold:``)
sent       every message of the run was delivered (written *after* sending)
failed     the run failed for good (the reason is kept: a recipient's ``samp.errortxt``)
skipped    the rule decided not to send it (its condition, or it was there before the
           first run of a ``catch_up: new`` watch)
retry      ``sampflow retry`` asked for it to be sent again
=========  ===============================================================================

A *version* of a file is its ``(size, mtime_ns)``: a file rewritten in place is a new version
and is sent again. Crash safety comes from the order of writes: ``pending`` is committed before
the first message goes out and ``sent`` after the last one is delivered, so a ``kill -9`` at any
point leaves at most the files in flight as ``pending``; they are sent again at the next start
(at most one duplicate each), and nothing is lost.

Writes are single-row statements in autocommit mode (tens of microseconds with
``synchronous=NORMAL``, which survives a killed process; only an operating-system crash can
lose the last transactions), so they run on the engine's loop; the ledger benchmark in
``benchmarks/`` measures them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STATES", "Entry", "Ledger", "default_state_dir"]

#: The states a row may be in (see the module docstring).
STATES = ("pending", "waiting", "sent", "failed", "skipped", "retry")

#: States whose file must be run again at the next start: it was in flight, waiting for a
#: recipient, or asked for again.
UNFINISHED = ("pending", "waiting", "retry")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    rule      TEXT NOT NULL,
    path      TEXT NOT NULL,
    size      INTEGER,
    mtime_ns  INTEGER,
    state     TEXT NOT NULL CHECK (state IN ('pending', 'waiting', 'sent', 'failed',
                                              'skipped', 'retry')),
    reason    TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '',
    attempts  INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    updated   REAL NOT NULL,
    hold_until REAL,
    PRIMARY KEY (rule, path)
);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state);
CREATE TABLE IF NOT EXISTS watches (
    rule      TEXT NOT NULL,
    folder    TEXT NOT NULL,
    first_run REAL NOT NULL,
    last_run  REAL NOT NULL,
    PRIMARY KEY (rule, folder)
);
"""

_COLUMNS = ("rule, path, size, mtime_ns, state, reason, recipients, attempts, first_seen, "
            "updated, hold_until")


def default_state_dir() -> Path:
    """The directory the ledger lives in when ``--state`` is not given.

    ``$SAMPFLOW_STATE_DIR`` when set, else the platform's per-user state directory
    (``~/.local/state/sampflow`` on Linux, from :func:`platformdirs.user_state_dir`).

    Returns
    -------
    pathlib.Path
        The directory (not created).
    """
    env = os.environ.get("SAMPFLOW_STATE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("sampflow", appauthor=False))


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger row: the newest known version of one file for one rule.

    Attributes
    ----------
    rule : str
        The rule's name.
    path : str
        Absolute path of the file.
    size : int or None
        Size in bytes of the version the state refers to.
    mtime_ns : int or None
        Modification time of that version, in nanoseconds since the epoch.
    state : str
        One of `STATES`.
    reason : str
        Why it failed, waits or was skipped (empty when sent).
    recipients : str
        ``samp.name`` of the clients it was sent (or is to be sent) to, comma-separated.
    attempts : int
        How many runs started for this version.
    first_seen, updated : float
        Unix times (seconds) of the first row for this path and of the last change.
    hold_until : float or None
        For ``waiting``: the Unix time after which the wait gives up.
    """

    rule: str
    path: str
    size: int | None
    mtime_ns: int | None
    state: str
    reason: str
    recipients: str
    attempts: int
    first_seen: float
    updated: float
    hold_until: float | None

    def same_version(self, size: int | None, mtime_ns: int | None) -> bool:
        """Whether ``(size, mtime_ns)`` is the version this row is about."""
        return self.size == size and self.mtime_ns == mtime_ns


class Ledger:
    """The delivery ledger (see the module docstring).

    Parameters
    ----------
    path : str or path-like, optional
        The database file, created (with its directory, mode 0700) if missing. None keeps the
        ledger in memory (tests, and engines built from Python without a state directory).
    readonly : bool
        Work on an in-memory copy of `path` (what ``--dry-run`` does): everything reads as
        usual, nothing is written to disk. A missing file reads as an empty ledger.

    Raises
    ------
    sqlite3.DatabaseError
        If `path` exists but is not a SQLite database.
    OSError
        If the directory cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.readonly = readonly
        if self.path is None or readonly:
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            if self.path is not None and self.path.exists():
                source = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
                try:
                    source.backup(self._db)
                finally:
                    source.close()
        else:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: str | os.PathLike[str] | None = None, *,
                     readonly: bool = False) -> "Ledger":
        """The ledger file ``ledger.sqlite3`` of `state_dir` (default `default_state_dir`).

        Parameters
        ----------
        state_dir : str or path-like, optional
            The state directory (``--state``).
        readonly : bool
            See the class.

        Returns
        -------
        Ledger
        """
        folder = Path(state_dir).expanduser() if state_dir else default_state_dir()
        return cls(folder / "ledger.sqlite3", readonly=readonly)

    def close(self) -> None:
        """Close the database (further calls fail)."""
        self._db.close()

    # -- reading ------------------------------------------------------------------------------
    def get(self, rule: str, path: str) -> Entry | None:
        """The row of `path` for `rule`, or None."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE rule=? AND path=?",
                               (rule, path)).fetchone()
        return Entry(*row) if row else None

    def entries(self, rule: str | None = None, states: Iterable[str] | None = None,
                prefix: str | None = None) -> list[Entry]:
        """Rows, oldest change first, filtered by `rule`, `states` and path `prefix`."""
        sql = f"SELECT {_COLUMNS} FROM deliveries WHERE 1=1"
        args: list[str | int] = []
        if rule is not None:
            sql += " AND rule=?"
            args.append(rule)
        if states is not None:
            states = tuple(states)
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        if prefix is not None:
            sql += " AND substr(path, 1, ?) = ?"
            args.extend([len(prefix), prefix])
        sql += " ORDER BY updated, path"
        return [Entry(*row) for row in self._db.execute(sql, args)]

    def summary(self) -> dict[str, dict[str, int]]:
        """``{rule: {state: count}}`` over the whole ledger."""
        out: dict[str, dict[str, int]] = {}
        for rule, state, n in self._db.execute(
                "SELECT rule, state, count(*) FROM deliveries GROUP BY rule, state"):
            out.setdefault(rule, {})[state] = n
        return out

    def first_run(self, rule: str, folder: str) -> bool:
        """Whether `rule` has never watched `folder` before (see `note_watch`)."""
        return self._db.execute("SELECT 1 FROM watches WHERE rule=? AND folder=?",
                                (rule, folder)).fetchone() is None

    # -- writing ------------------------------------------------------------------------------
    def note_watch(self, rule: str, folder: str) -> None:
        """Record that `rule` watches `folder` now (its first run is remembered)."""
        now = time.time()
        self._db.execute(
            "INSERT INTO watches (rule, folder, first_run, last_run) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (rule, folder) DO UPDATE SET last_run=excluded.last_run",
            (rule, folder, now, now))

    def _upsert(self, rule: str, path: str, state: str, *, size: int | None = None,
                mtime_ns: int | None = None, reason: str = "", recipients: str | None = None,
                hold_until: float | None = None, attempt: bool = False,
                version: bool = True) -> None:
        now = time.time()
        sets = ["state=excluded.state", "reason=excluded.reason", "updated=excluded.updated",
                "hold_until=excluded.hold_until"]
        if version:
            sets += ["size=excluded.size", "mtime_ns=excluded.mtime_ns"]
            # A new version starts its attempt count again.
            sets.append("attempts=CASE WHEN deliveries.size IS excluded.size AND "
                        "deliveries.mtime_ns IS excluded.mtime_ns THEN deliveries.attempts "
                        f"+ {int(attempt)} ELSE {int(attempt)} END")
        elif attempt:
            sets.append("attempts=deliveries.attempts + 1")
        if recipients is not None:
            sets.append("recipients=excluded.recipients")
        self._db.execute(
            f"INSERT INTO deliveries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (rule, path) DO UPDATE SET {', '.join(sets)}",
            (rule, path, size, mtime_ns, state, reason, recipients or "", int(attempt), now,
             now, hold_until))

    def begin(self, rule: str, path: str, size: int | None, mtime_ns: int | None) -> None:
        """Mark `path` ``pending`` for `rule` before anything is sent (counts an attempt).

        Parameters
        ----------
        rule : str
            The rule's name.
        path : str
            Absolute path of the file.
        size, mtime_ns : int or None
            The version being sent (bytes; nanoseconds since the epoch).
        """
        self._upsert(rule, path, "pending", size=size, mtime_ns=mtime_ns, attempt=True)

    def finish(self, rule: str, path: str, state: str, reason: str = "",
               recipients: Iterable[str] = ()) -> None:
        """Record how the run for `path` ended: ``sent``, ``failed`` or ``skipped``.

        Raises
        ------
        ValueError
            If `state` is not one of those three.
        """
        if state not in ("sent", "failed", "skipped"):
            raise ValueError(f"a run ends as sent, failed or skipped, not {state!r}")
        self._upsert(rule, path, state, reason=reason, recipients=", ".join(recipients),
                     version=False)

    def skip(self, rule: str, path: str, size: int | None, mtime_ns: int | None,
             reason: str) -> None:
        """Record that `rule` decided not to send this version of `path`."""
        self._upsert(rule, path, "skipped", size=size, mtime_ns=mtime_ns, reason=reason)

    def wait(self, rule: str, path: str, reason: str, hold_until: float,
             recipients: str = "") -> None:
        """Mark `path` ``waiting`` (for a recipient) until `hold_until` (Unix seconds)."""
        self._upsert(rule, path, "waiting", reason=reason, hold_until=hold_until,
                     recipients=recipients, version=False)

    def resume(self, rule: str, path: str) -> None:
        """Back to ``pending`` after a wait: the recipient is there, sending starts."""
        self._upsert(rule, path, "pending", version=False)

    def request_retry(self, *, paths: Iterable[str] = (), failed: bool = False,
                      rule: str | None = None) -> int:
        """Ask for files to be sent again (``sampflow retry``); returns how many rows changed.

        Parameters
        ----------
        paths : iterable of str
            These files (absolute paths), whatever their state.
        failed : bool
            Every ``failed`` row.
        rule : str, optional
            Only rows of this rule.
        """
        now = time.time()
        changed = 0
        where, args = "", list[str]()
        if rule is not None:
            where, args = " AND rule=?", [rule]
        if failed:
            changed += self._db.execute(
                "UPDATE deliveries SET state='retry', reason='retry requested', updated=? "
                f"WHERE state='failed'{where}", [now, *args]).rowcount
        for path in paths:
            changed += self._db.execute(
                "UPDATE deliveries SET state='retry', reason='retry requested', updated=? "
                f"WHERE path=? AND state != 'pending'{where}", [now, path, *args]).rowcount
        return changed
