"""``sampflow hub`` as a real process: lockfile ownership, stale lockfiles, SIGTERM (item 9).

Hubs are started through the command line (`samphub.SampflowHub`) on a temporary lockfile and
stopped by PID.
"""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest
from samphub import Recorder, SampflowHub

from sampflow.samp.lockfile import read_lockfile_unchecked
from sampflow.samp.lockfile_helpers import hub_answers


def test_lockfile_is_private_and_names_the_profile_version(tmp_path: Path) -> None:
    with SampflowHub(tmp_path / "lock") as hub:
        mode = stat.S_IMODE(hub.lockfile.stat().st_mode)
        assert mode == 0o600, oct(mode)
        info = read_lockfile_unchecked(hub.lockfile)
        assert info["samp.profile.version"] == "1.3"
        assert info["samp.hub.xmlrpc.url"].startswith("http://127.0.0.1:")
        assert len(info["samp.secret"]) >= 16


def test_second_hub_on_a_live_lockfile_exits_nonzero_naming_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with SampflowHub(lock, log_dir=tmp_path / "a") as first:
        before = lock.read_bytes()
        second = SampflowHub(lock, log_dir=tmp_path / "b")
        second.spawn()
        code = second.wait_exit(60)
        output = second.log_tail()
        assert code != 0, output
        assert first.url in output, output
        assert str(lock) in output, output
        assert lock.read_bytes() == before  # never overwritten
        assert hub_answers(first.url)


def test_kill_9_leaves_a_stale_lockfile_that_a_new_hub_replaces(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    first = SampflowHub(lock, log_dir=tmp_path / "a").start()
    old = read_lockfile_unchecked(lock)
    first.kill()
    assert lock.exists() and read_lockfile_unchecked(lock) == old  # stale: its hub is gone
    assert not hub_answers(old["samp.hub.xmlrpc.url"])
    with SampflowHub(lock, log_dir=tmp_path / "b") as second:
        new = read_lockfile_unchecked(lock)
        assert new["samp.secret"] != old["samp.secret"]
        assert new["hub.start.pid"] == str(second.pid)
        assert hub_answers(second.url)
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert not lock.exists()


@pytest.mark.parametrize("content", [
    "", "samp.secret=x\nsamp.hub.xmlrpc.url=http://127.0.0.1:9/xmlrpc\n",
    "samp.secret=x\nsamp.hub.xmlrpc.url=not a url\n",
], ids=["empty", "dead-url", "bad-url"])
def test_stale_or_broken_lockfile_is_replaced(tmp_path: Path, content: str) -> None:
    lock = tmp_path / "lock"
    lock.write_text(content)
    with SampflowHub(lock) as hub:
        assert read_lockfile_unchecked(lock)["samp.secret"] == hub.secret


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_removes_the_lockfile_and_tells_subscribed_clients(
        tmp_path: Path, sig: signal.Signals) -> None:
    import asyncio

    lock = tmp_path / "lock"
    hub = SampflowHub(lock).start()
    listener = await Recorder("listener", {"samp.hub.event.shutdown": {}}).connect(lock)
    deaf = await Recorder("deaf", {"test.x": {}}).connect(lock)
    try:
        os.kill(hub.pid, sig)
        code = await asyncio.to_thread(hub.wait_exit, 30)
        assert code == 0, hub.log_tail()
        assert not lock.exists(), hub.log_tail()
        [event] = await listener.wait_messages("samp.hub.event.shutdown", timeout=10)
        assert event["samp.params"] == {} or isinstance(event["samp.params"], dict)
        assert listener.received[-1][1] == listener.client.hub_id
        assert deaf.messages() == []
    finally:
        hub.kill()
        await listener.close()
        await deaf.close()


def test_stopping_hub_leaves_a_lockfile_that_is_no_longer_its_own(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    first = SampflowHub(lock, log_dir=tmp_path / "a").start()
    try:
        lock.unlink()  # someone removed it; another hub took the name
        with SampflowHub(lock, log_dir=tmp_path / "b") as second:
            first.stop(check_lockfile=False)
            assert lock.exists() and read_lockfile_unchecked(lock)["samp.secret"] == second.secret
            assert hub_answers(second.url)
    finally:
        first.kill()


def test_verbose_hub_logs_registrations_and_messages(tmp_path: Path) -> None:
    import xmlrpc.client

    with SampflowHub(tmp_path / "lock", verbose=True) as hub:
        proxy = xmlrpc.client.ServerProxy(hub.url)
        reg = proxy.samp.hub.register(hub.secret)
        key = reg["samp.private-key"]
        proxy.samp.hub.notifyAll(key, {"samp.mtype": "test.logged", "samp.params": {}})
        proxy.samp.hub.unregister(key)
    log = hub.log_tail(20000)
    assert reg["samp.self-id"] in log
    assert "test.logged" in log
