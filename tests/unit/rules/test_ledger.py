"""The delivery ledger and the catch-up planner, on a real SQLite file (no sockets)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sampflow.rules.deliveries import CatchUpPlanner, Found
from sampflow.rules.ledger import Ledger, default_state_dir


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


def test_states_survive_reopening_and_a_new_version_counts_attempts_again(db: Path) -> None:
    ledger = Ledger(db)
    ledger.begin("r", "/d/a.fits", 10, 1000)
    ledger.finish("r", "/d/a.fits", "sent", recipients=["SAOImageDS9"])
    ledger.begin("r", "/d/b.fits", 20, 2000)  # in flight when the process dies
    ledger.close()
    again = Ledger(db)
    a, b = again.get("r", "/d/a.fits"), again.get("r", "/d/b.fits")
    assert a is not None and (a.state, a.recipients, a.attempts) == ("sent", "SAOImageDS9", 1)
    assert a.same_version(10, 1000) and not a.same_version(10, 1001)
    assert b is not None and b.state == "pending"
    again.begin("r", "/d/a.fits", 11, 1001)  # rewritten in place: a new version
    entry = again.get("r", "/d/a.fits")
    assert entry is not None and (entry.state, entry.attempts, entry.size) == ("pending", 1, 11)
    assert again.summary() == {"r": {"pending": 2}}
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_finish_refuses_an_unfinished_state(db: Path) -> None:
    with pytest.raises(ValueError, match="sent, failed or skipped"):
        Ledger(db).finish("r", "/d/a.fits", "pending")


def test_readonly_reads_the_file_and_never_writes_it(db: Path) -> None:
    Ledger(db).skip("r", "/d/a.fits", 1, 1, "not wanted")
    ro = Ledger(db, readonly=True)
    ro.begin("r", "/d/a.fits", 1, 1)
    ro.begin("r", "/d/new.fits", 1, 1)
    assert ro.get("r", "/d/new.fits") is not None
    fresh = Ledger(db)
    entry = fresh.get("r", "/d/a.fits")
    assert entry is not None and entry.state == "skipped"
    assert fresh.get("r", "/d/new.fits") is None
    assert not Ledger(db.parent / "missing.sqlite3", readonly=True).summary()
    assert not (db.parent / "missing.sqlite3").exists()


def test_a_file_that_is_not_a_database_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "ledger.sqlite3"
    bad.write_text("these are my notes, not a database\n" * 20)
    with pytest.raises(sqlite3.DatabaseError):
        Ledger(bad)
    assert bad.read_text().startswith("these are my notes")


def test_retry_marks_failed_rows_or_named_files(db: Path) -> None:
    ledger = Ledger(db)
    for name, state in (("a", "failed"), ("b", "failed"), ("c", "sent")):
        ledger.begin("r", f"/d/{name}", 1, 1)
        ledger.finish("r", f"/d/{name}", state, "why" if state == "failed" else "")
    ledger.begin("other", "/d/a", 1, 1)
    ledger.finish("other", "/d/a", "failed", "why")
    assert ledger.request_retry(failed=True, rule="r") == 2
    assert ledger.request_retry(paths=["/d/c"]) == 1
    assert ledger.summary() == {"r": {"retry": 3}, "other": {"failed": 1}}


def test_state_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPFLOW_STATE_DIR", str(tmp_path / "s"))
    assert default_state_dir() == tmp_path / "s"
    Ledger.in_state_dir().close()
    assert (tmp_path / "s" / "ledger.sqlite3").is_file()
    monkeypatch.delenv("SAMPFLOW_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "sampflow"


def found(*names: str, mtime: int = 5) -> list[Found]:
    return [Found(f"/d/{n}", 1, mtime) for n in names]


def test_catch_up_new_skips_what_was_there_at_the_first_run_then_sends_newcomers(
        db: Path) -> None:
    ledger = Ledger(db)
    planner = CatchUpPlanner(ledger, "r", "new")
    assert planner.plan("/d", found("old1", "old2")) == []
    assert ledger.summary() == {"r": {"skipped": 2}}
    # Next start: two new files, one rewritten, one still pending from a killed run.
    ledger.begin("r", "/d/inflight", 1, 5)
    plan = planner.plan("/d", found("old1", "inflight", "new1", "new2")
                        + [Found("/d/old2", 2, 9)])
    assert sorted(plan) == [("/d/inflight", "existing"), ("/d/new1", "existing"),
                            ("/d/new2", "existing"), ("/d/old2", "existing")]


def test_catch_up_all_sends_everything_not_sent_and_none_nothing(db: Path) -> None:
    ledger = Ledger(db)
    ledger.begin("r", "/d/done", 1, 5)
    ledger.finish("r", "/d/done", "sent")
    ledger.request_retry(paths=[])
    assert CatchUpPlanner(ledger, "r", "all").plan("/d", found("a", "done")) == [
        ("/d/a", "existing")]
    assert CatchUpPlanner(ledger, "r", "none").plan("/d", found("a", "b")) == []


def test_catch_up_records_unfinished_files_that_vanished_as_failed(db: Path) -> None:
    ledger = Ledger(db)
    ledger.note_watch("r", "/d")
    ledger.begin("r", "/d/gone", 1, 5)
    ledger.begin("r", "/elsewhere/x", 1, 5)
    ledger.request_retry(paths=["/d/gone"])
    assert CatchUpPlanner(ledger, "r", "new").plan("/d", []) == []
    gone = ledger.get("r", "/d/gone")
    assert gone is not None and gone.state == "failed" and "gone" in gone.reason
    other = ledger.get("r", "/elsewhere/x")
    assert other is not None and other.state == "pending"  # another folder: not ours
