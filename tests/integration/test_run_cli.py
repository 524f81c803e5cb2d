"""``sampflow run`` as a user runs it: the command line, a real hub process, real sockets.

Every engine is a ``sampflow run ... --no-web-profile`` subprocess with its own temporary home,
lockfile and ``--trace`` file, stopped by PID (SIGTERM). The hub is ``sampflow hub`` (through
`samphub.SampflowHub`); the other clients are `samphub.Recorder` (asyncio, in this process).
The ready rule sets under ``rules/`` are run unchanged, with ``--set`` for their variables.

Covers issue 3's "Done when" items 2 (re-broadcast, two engines do not loop), 3 (pointAt from
a highlighted row, with a Python stand-in for Aladin), 4 (a bad rule file is refused and
nothing connects), 5 (1,000 files in a burst), and ``--dry-run``, SIGTERM, ``validate``,
``schema`` and reconnection after the hub goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from samphub import Recorder, SampflowHub, hub_env, msg, running_hub, sampflow_argv

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"

pytestmark = pytest.mark.timeout(240)


# ------------------------------------------------------------------------------------ helpers

@pytest.fixture
def hub(tmp_path: Path) -> Iterator[SampflowHub]:
    """``sampflow hub --no-web-profile`` on a temporary lockfile, stopped by PID."""
    with running_hub(tmp_path / "hub" / "lock", log_dir=tmp_path / "hub",
                     args=["--no-web-profile"], check_lockfile=False) as h:
        yield h


@contextlib.asynccontextmanager
async def recorders(lockfile: Path, *specs: tuple[str, dict[str, Any]]
                    ) -> AsyncIterator[list[Recorder]]:
    rs = [Recorder(name, subs) for name, subs in specs]
    try:
        for r in rs:
            await r.connect(lockfile)
        yield rs
    finally:
        for r in rs:
            with contextlib.suppress(Exception):
                await r.close()


async def names(client: Recorder) -> dict[str, str]:
    """public id -> samp.name of every registered client (as `client` sees them)."""
    out = {}
    for cid in await client.client.get_registered_clients():
        md = await client.client.get_metadata(cid)
        out[cid] = md.get("samp.name", "")
    return out


async def wait_subscribed(client: Recorder, engine_id: str, mtype: str,
                          timeout: float = 20.0) -> None:
    """Wait until the engine has declared its subscriptions (it registers first)."""
    deadline = time.monotonic() + timeout
    while mtype not in await client.client.get_subscriptions(engine_id):
        assert time.monotonic() < deadline, f"engine never subscribed to {mtype}"
        await asyncio.sleep(0.05)


def write_votable(path: Path, rows: list[tuple[str, float, float]]) -> Path:
    from astropy.table import Table

    t = Table(rows=rows, names=("name", "RA", "DEC"))
    t["RA"].unit = t["DEC"].unit = "deg"
    t.write(path, format="votable", overwrite=True)
    return path


def write_image(path: Path, size: int = 8) -> Path:
    import numpy as np
    from astropy.io import fits

    fits.writeto(path, np.arange(size * size, dtype="float32").reshape(size, size),
                 overwrite=True)
    return path


# ------------------------------------------------------------ 4. a bad file is refused early

BAD_RULES = """\
client: {name: bad-engine}
rules:
  - name: wrong mode
    on: {mtype: table.select.rowList}
    mode: sometimes
    do: [{forward: {}}]
  - name: wrong duration and action
    on: {files: /tmp, settle: soon}
    do:
      - send_fil: DS9
  - name: bad expression
    on: {mtype: "table..x"}
    if: "params['row' =="
    do: [{log: hi}]
"""


def test_rule_file_with_errors_is_refused_and_nothing_connects(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_RULES)
    engine = engines([bad], "--lockfile", str(hub.lockfile))
    code = engine.popen.wait(60)
    out = engine.log()
    assert code != 0, out
    found = re.findall(rf"^{re.escape(str(bad))}:(\d+):(\d+): (.*)$", out, re.MULTILINE)
    lines = sorted({int(line) for line, _, _ in found})
    # mode (5), settle (8), send_fil (10), MType pattern (12), the condition (13)
    assert lines == [5, 8, 10, 12, 13], out
    assert any("rules[0].mode: expected one of single" in text for *_, text in found), out
    assert "nothing was started" in out
    import peers as peerlib

    with peerlib.ProbeClient(hub.lockfile) as probe:
        clients = probe.clients()
    assert set(clients) == {probe.hub_id}, clients  # the hub only (the probe is not listed)
    assert not engine.trace.exists()


def test_missing_watched_folder_is_refused_and_nothing_connects(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    missing = tmp_path / "not-made-yet"
    engine = engines([RULES / "watch-folder.yaml"], "--set", f"folder={missing}",
                     "--lockfile", str(hub.lockfile))
    code = engine.popen.wait(60)
    out = engine.log()
    assert code == 1, out
    found = re.findall(r"watch-folder\.yaml:(\d+):(\d+): rule '([^']+)': watched folder "
                       rf"{re.escape(str(missing))} does not exist", out)
    assert len(found) == 2, out  # the image rule and the table rule
    assert "nothing was started" in out
    import peers as peerlib

    with peerlib.ProbeClient(hub.lockfile) as probe:
        assert set(probe.clients()) == {probe.hub_id}


def test_validate_and_schema_commands(tmp_path: Path) -> None:
    for f in sorted(RULES.glob("*.yaml")):
        done = subprocess.run([*sampflow_argv(), "validate", str(f)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "OK" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_RULES)
    done = subprocess.run([*sampflow_argv(), "validate", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert f"{bad}:5:11: rules[0].mode: expected one of single" in done.stderr
    done = subprocess.run([*sampflow_argv(), "validate", str(RULES / "watch-folder.yaml"),
                           "--set", "nosuch=1"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "nosuch" in done.stderr
    done = subprocess.run([*sampflow_argv(), "schema"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert "rules" in json.dumps(schema) and "send_file" in json.dumps(schema)


# ------------------------------------------------- 2. re-broadcast; two engines do not loop

async def test_rebroadcast_reaches_each_other_client_once_and_two_engines_do_not_loop(
        hub: SampflowHub, engines: Any) -> None:
    rules = RULES / "rebroadcast-selections.yaml"
    first = engines([rules], "--lockfile", str(hub.lockfile), "--hub", "connect")
    second = engines([rules], "--lockfile", str(hub.lockfile), "--hub", "connect")
    a_id = await first.await_connected()
    b_id = await second.await_connected()
    sel = {"table.select.rowList": {}, "table.highlight.row": {}}
    async with recorders(hub.lockfile, ("topcat", sel), ("viewer", sel),
                         ("other", {"table.select.rowList": {}}), ("deaf", {})) as rs:
        topcat, viewer, other, deaf = rs
        await wait_subscribed(topcat, a_id, "table.select.rowList")
        await wait_subscribed(topcat, b_id, "table.select.rowList")
        params = {"table-id": "t1", "url": "file:///data/t1.vot", "row-list": ["1", "3", "5"]}
        selection = msg("table.select.rowList", **params)
        await topcat.client.notify(a_id, selection)
        await viewer.wait_messages("table.select.rowList", 1)
        await other.wait_messages("table.select.rowList", 1)
        # The user sends the same subset again at once: heard again (not taken for an echo).
        await topcat.client.notify(a_id, selection)
        await viewer.wait_messages("table.select.rowList", 2)
        await other.wait_messages("table.select.rowList", 2)
        await asyncio.sleep(3.0)  # any echo or loop would show up meanwhile
        for r in (viewer, other):
            assert r.messages("table.select.rowList") == [selection] * 2, r.received
        assert topcat.messages() == [] and deaf.messages() == []
        # The second engine got each once (as a subscribed client) and did not pass it on.
        relayed = [s for rec in first.records() for s in rec["sent"]]
        assert sorted(s["to"] for s in relayed) == sorted(
            [viewer.id, other.id, b_id] * 2), relayed
        assert [s for rec in second.records() for s in rec["sent"]] == []

        # A highlight sent to the second engine goes the same way.
        hl = msg("table.highlight.row", **{"table-id": "t1", "url": "file:///data/t1.vot",
                                           "row": "3"})
        await topcat.client.notify(b_id, hl)
        await viewer.wait_messages("table.highlight.row", 1)
        await asyncio.sleep(3.0)
        assert viewer.messages("table.highlight.row") == [hl]
        assert other.messages("table.highlight.row") == []  # not subscribed to it
        assert len(viewer.messages("table.select.rowList")) == 2
        assert topcat.messages() == []

        # Messages from a client not called topcat are not relayed.
        await viewer.client.notify(a_id, msg("table.select.rowList", **{**params,
                                                                          "row-list": ["9"]}))
        await asyncio.sleep(2.0)
        assert len(other.messages("table.select.rowList")) == 2
    for e in (first, second):
        assert e.terminate() == 0, e.log()[-3000:]


# ----------------------------------------------- 3. highlighted row -> coord.pointAt.sky

async def test_highlighted_row_points_aladin_at_its_position(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    table = write_votable(tmp_path / "cat.vot", [("a", 10.5, -20.25), ("b", 83.82, -5.39),
                                                 ("c", 201.365, -43.019)])
    url = table.resolve().as_uri()
    engine = engines([RULES / "aladin-follow-highlight.yaml"], "--lockfile", str(hub.lockfile),
                     "--hub", "connect")
    engine_id = await engine.await_connected()
    async with recorders(hub.lockfile, ("topcat", {}),
                         ("Aladin", {"coord.pointAt.sky": {}, "table.highlight.row": {}})) as rs:
        topcat, aladin = rs
        await wait_subscribed(topcat, engine_id, "table.load.votable")
        # TOPCAT broadcasts the table it loaded, later a row highlight.
        await topcat.client.notify_all(msg("table.load.votable", url=url, name="cat.vot",
                                           **{"table-id": "topcat-t1"}))
        await asyncio.sleep(0.5)
        await topcat.client.notify_all(msg("table.highlight.row", row="1",
                                           **{"table-id": "topcat-t1", "url": url}))
        got = await aladin.wait_messages("coord.pointAt.sky", 1)
        assert float(got[0]["samp.params"]["ra"]) == pytest.approx(83.82)
        assert float(got[0]["samp.params"]["dec"]) == pytest.approx(-5.39)
        # By table-id alone (no url), another row.
        await topcat.client.notify(engine_id, msg("table.highlight.row", row="2",
                                                  **{"table-id": "topcat-t1"}))
        got = await aladin.wait_messages("coord.pointAt.sky", 2)
        assert float(got[1]["samp.params"]["ra"]) == pytest.approx(201.365)
        assert float(got[1]["samp.params"]["dec"]) == pytest.approx(-43.019)
        # Aladin's own highlights do not bounce back to it.
        await aladin.client.notify(engine_id, msg("table.highlight.row", row="0",
                                                  **{"table-id": "topcat-t1"}))
        await asyncio.sleep(1.5)
        assert len(aladin.messages("coord.pointAt.sky")) == 2
    pointed = [s for rec in engine.records() for s in rec["sent"]]
    assert [s["mtype"] for s in pointed] == ["coord.pointAt.sky"] * 2
    assert engine.terminate() == 0


# --------------------------------------------------------- 5. 1,000 files in a burst

async def test_thousand_files_in_a_burst_are_each_sent_once(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    engine = engines([RULES / "watch-folder.yaml"], "--lockfile", str(hub.lockfile),
                     "--hub", "connect", "--set", f"folder={folder}", "--set",
                     "images_to=receiver", "--set", "settle=300ms")
    await engine.await_connected()
    async with recorders(hub.lockfile, ("receiver", {"image.load.fits": {}})) as rs:
        (receiver,) = rs
        source = write_image(tmp_path / "source.fits")
        data = source.read_bytes()
        n = 1000
        for i in range(n):  # written under a temporary name, renamed into place
            part = folder / f"img{i:04d}.fits.part"
            part.write_bytes(data)
            part.rename(folder / f"img{i:04d}.fits")
        got = await receiver.wait_messages("image.load.fits", n, timeout=180)
        await asyncio.sleep(3.0)
        got = receiver.messages("image.load.fits")
        urls = [m["samp.params"]["url"] for m in got]
        assert len(urls) == n, f"{len(urls)} messages for {len(set(urls))} files"
        assert set(urls) == {(folder / f"img{i:04d}.fits").as_uri() for i in range(n)}
        assert engine.popen.poll() is None, engine.log()[-3000:]
        # still up and reacting
        write_image(folder / "late.fits")
        await receiver.wait_messages("image.load.fits", n + 1, timeout=60)
    # The receiver may hear the last load before the engine has written its record.
    records = await asyncio.to_thread(engine.wait_records, lambda r: True, n + 1, 30.0)
    assert all(r["status"] == "ok" for r in records), [r for r in records
                                                       if r["status"] != "ok"][:3]
    assert len(records) == n + 1
    assert engine.terminate() == 0


# ------------------------------------------------------------------------- --dry-run

async def test_dry_run_prints_would_be_messages_and_sends_nothing(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    engine = engines([RULES / "watch-folder.yaml"], "--lockfile", str(hub.lockfile),
                     "--set", f"folder={folder}", "--set", "images_to=receiver",
                     "--dry-run")
    await engine.await_connected()
    async with recorders(hub.lockfile, ("receiver", {"image.load.fits": {}})) as rs:
        (receiver,) = rs
        image = write_image(folder / "dry.fits")
        deadline = time.monotonic() + 30
        while not engine.records():
            assert time.monotonic() < deadline, engine.log()[-3000:]
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert receiver.messages() == []
    (record,) = engine.records()
    assert record["dry_run"] and record["sent"][0]["dry_run"]
    assert record["sent"][0]["mtype"] == "image.load.fits"
    assert record["sent"][0]["params"]["url"] == image.as_uri()
    log = engine.log()
    assert re.search(r"dry run: would send image\.load\.fits to receiver: .*dry\.fits", log), log
    assert engine.terminate() == 0


# ------------------------------------------------------- SIGTERM: exit 0, unregistered

async def test_sigterm_exits_zero_and_unregisters(hub: SampflowHub, engines: Any) -> None:
    engine = engines([RULES / "rebroadcast-selections.yaml"], "--lockfile",
                     str(hub.lockfile))
    engine_id = await engine.await_connected()
    async with recorders(hub.lockfile, ("watcher", {})) as rs:
        (watcher,) = rs
        assert engine_id in await names(watcher)
        assert engine.terminate() == 0, engine.log()[-3000:]
        assert engine_id not in await names(watcher)
    # It joined the running hub rather than starting one.
    assert "started an embedded SAMP hub" not in engine.log()


# ------------------------------------------------ the hub goes away: the engine reconnects

async def test_engine_reconnects_when_the_hub_is_replaced(
        tmp_path: Path, engines: Any) -> None:
    lock = tmp_path / "hub" / "lock"
    lock.parent.mkdir()
    first = SampflowHub(lock, log_dir=tmp_path / "hub1", args=["--no-web-profile"]).start()
    second = None
    try:
        engine = engines([RULES / "rebroadcast-selections.yaml"], "--lockfile", str(lock),
                         "--hub", "connect")
        await engine.await_connected()
        first.kill()  # kill -9: no shutdown event, a stale lockfile
        await asyncio.sleep(1.0)
        second = SampflowHub(lock, log_dir=tmp_path / "hub2",
                             args=["--no-web-profile"]).start()
        new_id = await engine.await_connected(2, timeout=60)
        async with recorders(lock, ("watcher", {})) as rs:
            registered = await names(rs[0])
        assert registered.get(new_id) == "sampflow", registered
        assert "went away" in engine.log()
        assert engine.popen.poll() is None
        assert engine.terminate() == 0
    finally:
        first.kill()
        if second is not None:
            second.stop(check_lockfile=False)


# ---------------------------------------------- 6. (part) no hub: the engine starts one

async def test_without_a_hub_run_starts_an_embedded_one(tmp_path: Path, engines: Any) -> None:
    lock = tmp_path / "lock"
    engine = engines([RULES / "rebroadcast-selections.yaml"], "--lockfile", str(lock))
    engine_id = await engine.await_connected()
    assert "started an embedded SAMP hub" in engine.log()
    assert lock.is_file()
    async with recorders(lock, ("latecomer", {})) as rs:
        assert (await names(rs[0])).get(engine_id) == "sampflow"
    assert engine.terminate() == 0
    assert not lock.exists()  # the embedded hub removed its lockfile


# ------------------------------------------------ catch-up: a progress bar on a terminal

def test_catch_up_shows_a_progress_bar_on_a_terminal(tmp_path: Path, hub: SampflowHub) -> None:
    import pty
    import select

    import peers as peerlib

    folder = tmp_path / "incoming"
    folder.mkdir()
    n = 40
    for i in range(n):
        write_image(folder / f"old{i:02d}.fits")
    (folder / "notes.txt").write_text("not an image")
    trace = tmp_path / "trace.jsonl"
    home = tmp_path / "home"
    home.mkdir()
    master, slave = pty.openpty()
    argv = [*sampflow_argv(), "run", str(RULES / "watch-folder.yaml"), "--no-web-profile",
            "--lockfile", str(hub.lockfile), "--hub", "connect", "--trace", str(trace),
            "--set", f"folder={folder}", "--set", "catch_up=yes", "--set",
            "images_to=receiver", "--dry-run"]
    output = b""
    with peerlib.ProbeClient(hub.lockfile, name="receiver"):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                env=hub_env(home), cwd=tmp_path, start_new_session=True)
        os.close(slave)
        try:
            deadline = time.monotonic() + 90
            while f"{n}/{n}".encode() not in output:
                assert time.monotonic() < deadline and proc.poll() is None, output[-3000:]
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    with contextlib.suppress(OSError):
                        output += os.read(master, 65536)
            # Each rule of the set watches the folder with its own bar: the table rule's
            # (no runs: every file is an image) may finish first, so wait for the trace too,
            # reading the terminal meanwhile (a full pty blocks the engine's log writes).
            while not trace.exists() or len(trace.read_text().splitlines()) < n:
                if time.monotonic() > deadline or proc.poll() is not None:
                    with contextlib.suppress(OSError):
                        output += os.read(master, 65536)
                    pytest.fail("not every file fired:\n" + output.decode("utf-8", "replace"))
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    with contextlib.suppress(OSError):
                        output += os.read(master, 65536)
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            os.close(master)
    text = output.decode("utf-8", "replace")
    assert re.search(rf"catch-up {re.escape(str(folder))}: \[#+\] {n}/{n} 100%", text), text
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert sorted(r["event"]["path"] for r in records) == sorted(
        str(folder / f"old{i:02d}.fits") for i in range(n))
    assert {r["event"]["kind"] for r in records} == {"existing"}
