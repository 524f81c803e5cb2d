"""Lockfile discovery, parsing, atomic creation and removal (`sampflow.samp.lockfile`)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from sampflow.samp.errors import SAMPHubError
from sampflow.samp.lockfile import (
    LockfileError,
    LockfileExists,
    create_lockfile,
    format_lockfile,
    lockfile_location,
    parse_lockfile,
    read_lockfile,
    read_lockfile_unchecked,
    remove_lockfile_if_ours,
)

PARAMS = {"samp.secret": "s3cr=t", "samp.hub.xmlrpc.url": "http://127.0.0.1:1/xmlrpc"}


def test_parse_is_tolerant() -> None:
    text = ("# comment\n\n  samp.secret = a=b=c  \r\n#samp.secret=commented\n"
            "junk line without equals\nsamp.hub.xmlrpc.url=http://h:1/x?q=1\n"
            "empty=\n")
    assert parse_lockfile(text) == {"samp.secret": "a=b=c",
                                    "samp.hub.xmlrpc.url": "http://h:1/x?q=1", "empty": ""}


def test_format_round_trips_and_names_the_profile_version() -> None:
    text = format_lockfile(PARAMS)
    assert text.startswith("#")
    assert "samp.profile.version=1.3\n" in text
    assert parse_lockfile(text) == {"samp.profile.version": "1.3", **PARAMS}


def test_create_is_mode_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        create_lockfile(tmp_path / "sub" / "lock", PARAMS)
    finally:
        os.umask(old)
    path = tmp_path / "sub" / "lock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_lockfile(path)["samp.secret"] == "s3cr=t"
    assert os.listdir(path.parent) == ["lock"]  # no temporary file left behind


def test_create_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    create_lockfile(path, PARAMS)
    with pytest.raises(LockfileExists):
        create_lockfile(path, {**PARAMS, "samp.secret": "other"})
    assert read_lockfile(path)["samp.secret"] == "s3cr=t"
    assert os.listdir(tmp_path) == ["lock"]


def test_concurrent_creates_have_exactly_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        try:
            create_lockfile(path, {**PARAMS, "samp.secret": f"s{i}"})
            results.append(f"s{i}")
        except LockfileExists:
            results.append("lost")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r != "lost"]
    assert len(winners) == 1
    assert read_lockfile(path)["samp.secret"] == winners[0]


def test_remove_only_if_ours(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    create_lockfile(path, PARAMS)
    assert remove_lockfile_if_ours(path, "someone-else") is False
    assert path.exists()
    assert remove_lockfile_if_ours(path, "s3cr=t") is True
    assert not path.exists()
    assert remove_lockfile_if_ours(path, "s3cr=t") is False


def test_read_lockfile_requires_secret_and_url(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.write_text("samp.secret=x\n")
    with pytest.raises(SAMPHubError, match="samp.hub.xmlrpc.url"):
        read_lockfile(path)
    with pytest.raises(SAMPHubError):
        read_lockfile(tmp_path / "missing")


def test_location_from_samp_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lockfile_location({}) == str(tmp_path / ".samp")
    assert lockfile_location({"SAMP_HUB": ""}) == str(tmp_path / ".samp")
    target = tmp_path / "dir with space" / "lock"
    url = "std-lockurl:" + target.as_uri()
    assert lockfile_location({"SAMP_HUB": url}) == str(target)
    assert lockfile_location({"SAMP_HUB": "std-lockurl:http://h:1/lock"}) == "http://h:1/lock"
    with pytest.raises(SAMPHubError):
        lockfile_location({"SAMP_HUB": "web-appname:foo"})
    monkeypatch.setenv("SAMP_HUB", url)
    assert lockfile_location() == str(target)


def test_unchecked_reader_takes_what_a_starting_hub_has_written(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    assert read_lockfile_unchecked(path) == {}  # nothing yet
    path.write_text("# being written\nsamp.secret=s1\n")
    path.chmod(0o666)  # the trust checks are not this reader's
    assert read_lockfile_unchecked(path) == {"samp.secret": "s1"}
    with pytest.raises(SAMPHubError):
        read_lockfile(path)  # lacks samp.hub.xmlrpc.url (and is writable by everyone)


def test_unchecked_reader_still_opens_only_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(LockfileError, match="folder"):
        read_lockfile_unchecked(tmp_path / "folder")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(LockfileError, match="not a regular file"):
        read_lockfile_unchecked(fifo)  # never opened, so never blocks


def test_create_with_replace_swaps_the_lockfile_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    create_lockfile(path, PARAMS)
    with pytest.raises(LockfileExists):
        create_lockfile(path, {**PARAMS, "samp.secret": "other"})
    create_lockfile(path, {**PARAMS, "samp.secret": "other"}, replace=True)
    assert read_lockfile(path)["samp.secret"] == "other"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]  # no temporary file left
