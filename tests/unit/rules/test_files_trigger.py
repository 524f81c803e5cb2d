"""File trigger against a real temporary folder (inotify on Linux; polling too).

No test sleeps to wait for the watcher: a test waits for the events it expects, and checks
that nothing more fired by waiting for a barrier file written after (`waiting.barrier`): the
watcher fires files in the order their last events came, so once the barrier has fired,
anything earlier would have too. The watch is in place when `attach` returns (watchdog adds
the inotify watch, or takes the polling observer's first snapshot, before starting its
thread).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sampflow.rules.events import FileEvent
from sampflow.rules.model import FilesTrigger
from sampflow.rules.triggers import EventBus, attach
from sampflow.rules.triggers.files import FolderWatch

from .waiting import barrier, until


class Collector:
    def __init__(self) -> None:
        self.events: list[FileEvent] = []
        self.changed = asyncio.Event()

    def __call__(self, event: FileEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while len(self.events) < n:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)

    def fired(self, path: str) -> bool:
        return any(e.path == path for e in self.events)

    def real(self) -> list[FileEvent]:
        """The events but the barriers'."""
        return [e for e in self.events if not Path(e.path).name.startswith("barrier")]


async def _watch(tmp_path: Path, **kw):
    fired = Collector()
    detach = attach(FilesTrigger(str(tmp_path), **kw), fired, EventBus())
    return fired, detach


async def test_slow_chunked_single_handle_fires_once_after_close(tmp_path: Path) -> None:
    fired, detach = await _watch(tmp_path, patterns=("*.fits",), settle=0.3)
    try:
        path = tmp_path / "m31.fits"
        with open(path, "wb") as f:
            for i in range(4):  # pauses longer than settle while the file stays open
                f.write(b"x" * 2880)
                f.flush()
                await barrier(tmp_path, f"barrier{i}.fits", fired.fired)
                assert not fired.fired(str(path))
        await until(lambda: fired.fired(str(path)), what="m31.fits to fire")
        await barrier(tmp_path, "barrier-after.fits", fired.fired)
        assert [(e.kind, e.path) for e in fired.real()] == [("created", str(path))]
        assert os.path.getsize(path) == 4 * 2880
    finally:
        detach()


async def test_slow_chunked_reopening_writer_fires_once(tmp_path: Path) -> None:
    fired, detach = await _watch(tmp_path, patterns=("*.fits",), settle=0.5)
    try:
        path = tmp_path / "ngc.fits"
        for _ in range(5):  # a writer that appends with a new open each time
            with open(path, "ab") as f:
                f.write(b"y" * 2880)
            # The writer's own pace, shorter than settle but longer in all: the input of
            # this test, not a wait for the watcher (the waits are the two below).
            await asyncio.sleep(0.15)
        await until(lambda: fired.fired(str(path)), what="ngc.fits to fire")
        await barrier(tmp_path, "barrier.fits", fired.fired)
        assert [(e.kind, e.path) for e in fired.real()] == [("created", str(path))]
    finally:
        detach()


async def test_write_then_rename_fires_once(tmp_path: Path) -> None:
    fired, detach = await _watch(tmp_path, patterns=("*.vot", "*.xml"), settle=0.2)
    try:
        tmp = tmp_path / ".cat.vot.part"
        tmp.write_bytes(b"<VOTABLE/>")
        os.rename(tmp, tmp_path / "cat.vot")
        # and a temporary name that itself matches the patterns
        tmp2 = tmp_path / "tmp123.xml"
        tmp2.write_bytes(b"<VOTABLE/>")
        os.rename(tmp2, tmp_path / "final.xml")
        await fired.wait_for(2)
        await barrier(tmp_path, "barrier.vot", fired.fired)
        got = sorted((Path(e.path).name, e.kind) for e in fired.real())
        assert got == [("cat.vot", "moved"), ("final.xml", "created")]
    finally:
        detach()


async def test_burst_of_1000_files_each_fire_once(tmp_path: Path) -> None:
    fired, detach = await _watch(tmp_path, patterns=("*.fits",), settle=0.2)
    try:
        def write_all() -> None:
            for i in range(1000):
                (tmp_path / f"f{i:04d}.fits").write_bytes(b"z" * 100)
        await asyncio.get_running_loop().run_in_executor(None, write_all)
        await fired.wait_for(1000, timeout=30)
        await barrier(tmp_path, "barrier.fits", fired.fired)
        paths = [e.path for e in fired.real()]
        assert len(paths) == 1000
        assert len(set(paths)) == 1000
    finally:
        detach()


async def test_patterns_ignore_case_and_recursion(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    fired, detach = await _watch(tmp_path, patterns=("*.fits",), ignore=("skip*",),
                                 settle=0.1, events=frozenset({"created", "deleted"}))
    try:
        (tmp_path / "A.FITS").write_bytes(b"1")
        (tmp_path / "skip.fits").write_bytes(b"1")
        (tmp_path / "note.txt").write_bytes(b"1")
        (tmp_path / "sub" / "deep.fits").write_bytes(b"1")  # not recursive
        await fired.wait_for(1)
        await barrier(tmp_path, "barrier1.fits", fired.fired)
        (tmp_path / "A.FITS").unlink()
        await until(lambda: len(fired.real()) == 2, what="the deletion")
        await barrier(tmp_path, "barrier2.fits", fired.fired)
        assert [(Path(e.path).name, e.kind) for e in fired.real()] == [
            ("A.FITS", "created"), ("A.FITS", "deleted")]
    finally:
        detach()


async def test_catch_up_emits_existing_files(tmp_path: Path) -> None:
    for name in ("old.fits", "other.txt", "new.fits"):
        (tmp_path / name).write_bytes(b"1")
    os.utime(tmp_path / "old.fits", (1, 1))
    fired, detach = await _watch(tmp_path, patterns=("*.fits",), catch_up=True, settle=0.1)
    try:
        await fired.wait_for(2)
        assert [(Path(e.path).name, e.kind) for e in fired.events] == [
            ("old.fits", "existing"), ("new.fits", "existing")]
    finally:
        detach()


async def test_polling_observer(tmp_path: Path) -> None:
    fired, detach = await _watch(tmp_path, patterns=("*.fits",), settle=0.2, poll=0.1)
    try:
        (tmp_path / "p.fits").write_bytes(b"1" * 10)
        await fired.wait_for(1)
        await barrier(tmp_path, "barrier.fits", fired.fired)
        assert [Path(e.path).name for e in fired.real()] == ["p.fits"]
    finally:
        detach()


def test_matches_relative_patterns(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    try:
        w = FolderWatch(FilesTrigger(str(tmp_path), patterns=("night*/*.fits",), recursive=True),
                        lambda e: None, loop)
        assert w.matches(str(tmp_path / "night1" / "a.fits"))
        assert not w.matches(str(tmp_path / "day" / "a.fits"))
        assert not w.matches("/elsewhere/a.fits")
    finally:
        loop.close()


async def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        attach(FilesTrigger(str(tmp_path / "nope")), lambda e: None, EventBus())
