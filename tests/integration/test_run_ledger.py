"""A watched folder that never loses a file (issue 10), through the command line.

``sampflow run rules/watch-folder.yaml`` runs as a user runs it (a subprocess with its own
home; ``SAMPFLOW_STATE_DIR`` is the test's, so restarts share one delivery ledger), against a
``sampflow hub`` process; the receiving tool is a `samphub.Recorder` named ``viewer`` (a real
SAMP client over real sockets, answering calls like DS9 does). ``sampflow status --json`` and
``sampflow retry`` are run as commands too.

Each loss the issue measured is reproduced: catch-up before the hub connects, files written
while the engine is stopped, a SIGKILL in the middle of a burst, a recipient that is away, a
load the recipient rejects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from samphub import Recorder, SampflowHub, hub_env, sampflow_argv

from sampflow.rules.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
WATCH = ROOT / "rules" / "watch-folder.yaml"
RULE = "new FITS images go to DS9"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def hub(hub_process: SampflowHub) -> SampflowHub:
    """The hub these tests talk to: a ``sampflow hub`` process (see conftest)."""
    return hub_process


@contextlib.asynccontextmanager
async def viewer(lockfile: Path, respond: Any = None) -> AsyncIterator[Recorder]:
    """A client named ``viewer`` subscribed to ``image.load.fits``, like DS9."""
    r = Recorder("viewer", {"image.load.fits": {}}, respond=respond)
    await r.connect(lockfile)
    try:
        yield r
    finally:
        with contextlib.suppress(Exception):
            await r.close()


def image_bytes() -> bytes:
    import io

    import numpy as np
    from astropy.io import fits

    buf = io.BytesIO()
    fits.PrimaryHDU(np.arange(64, dtype="float32").reshape(8, 8)).writeto(buf)
    return buf.getvalue()


def put(folder: Path, name: str, data: bytes) -> Path:
    """Write a file the way acquisition software does: a temporary name, then a rename."""
    part = folder / f"{name}.part"
    part.write_bytes(data)
    final = folder / name
    part.rename(final)
    return final


def loads(r: Recorder) -> Counter[str]:
    """How many times each URL reached the viewer."""
    return Counter(m["samp.params"]["url"] for m in r.messages("image.load.fits"))


def run_args(hub: SampflowHub, folder: Path, *more: str) -> list[str]:
    return ["--lockfile", str(hub.lockfile), "--hub", "connect", "--set", f"folder={folder}",
            "--set", "images_to=viewer", "--set", "settle=200ms", *more]


def status() -> dict[str, Any]:
    """``sampflow status --json --all`` (the state directory comes from the environment)."""
    out = subprocess.run([*sampflow_argv(), "status", "--json", "--all"], check=True,
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, HOME=os.environ.get("HOME", "/tmp")))
    return json.loads(out.stdout)


def counts() -> dict[str, int]:
    """The image rule's ``{state: count}`` (the table rule skips every image)."""
    return status()["rules"].get(RULE, {})


def entries() -> list[dict[str, Any]]:
    """The image rule's ledger rows."""
    return [e for e in status()["entries"] if e["rule"] == RULE]


async def wait_log(engine: Any, pattern: str, timeout: float = 60.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while (m := re.search(pattern, engine.log())) is None:
        assert time.monotonic() < deadline, f"no {pattern!r} in:\n{engine.log()[-3000:]}"
        assert engine.popen.poll() is None, engine.log()[-3000:]
        await asyncio.sleep(0.1)
    return m


async def viewer_returns_and_gets(engine: Any, hub: SampflowHub, image: Path) -> None:
    """The viewer registers again: the waiting file reaches it, once; the ledger says sent."""
    async with viewer(hub.lockfile) as back:
        await back.wait_for(lambda r: loads(r) or None, timeout=60)
        await wait_log(engine, rf"sent {re.escape(image.name)} to viewer")
    assert loads(back) == Counter({image.as_uri(): 1})
    assert counts() == {"sent": 1}


async def quiet(seconds: float = 2.0) -> None:
    """Give a process time to do something it must not do (a bound, not a speed claim)."""
    await asyncio.sleep(seconds)


# ------------------------------------------- catch-up runs only once the hub is connected

async def test_catch_up_before_the_hub_exists_waits_and_sends_every_file(
        tmp_path: Path, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    data = image_bytes()
    files = [put(folder, f"old{i:02d}.fits", data) for i in range(50)]
    lock = tmp_path / "hub" / "lock"
    lock.parent.mkdir()
    # The engine starts first and waits for a hub: its catch-up must not fire into the void.
    engine = engines([WATCH], "--lockfile", str(lock), "--hub", "connect", "--set",
                     f"folder={folder}", "--set", "images_to=viewer", "--set",
                     "settle=200ms", "--set", "catch_up=all")
    await wait_log(engine, "no SAMP hub to join")
    await quiet(1.0)
    assert engine.records() == [], "fired before the engine was connected"
    hub = SampflowHub(lock, log_dir=tmp_path / "hub", args=["--no-web-profile"]).start()
    try:
        async with viewer(lock) as r:
            await engine.await_connected(timeout=60)
            await r.wait_for(lambda r: len(loads(r)) == 50 or None, timeout=120)
            await quiet()
            assert loads(r) == Counter({f.as_uri(): 1 for f in files})
        records = engine.records()
        assert len(records) == 50 and all(rec["status"] == "ok" for rec in records)
        assert all(rec["sent"] and rec["sent"][0]["response"]["samp.status"] == "samp.ok"
                   for rec in records)
        assert counts() == {"sent": 50}
        assert engine.terminate() == 0
    finally:
        hub.stop(check_lockfile=False)


async def test_nothing_connected_means_nothing_recorded_as_sent(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    """No recipient at all and no hold: the run fails; it is never "ok" with a send."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    engine = engines([WATCH], *run_args(hub, folder, "--set", "hold=0"))
    await engine.await_connected()
    put(folder, "lonely.fits", image_bytes())
    await wait_log(engine, r"failed lonely\.fits \(rule .*\): .*viewer")
    (record,) = engine.records()
    assert record["status"] == "error" and record["sent"] == []
    assert counts() == {"failed": 1}
    assert engine.terminate() == 0


# --------------------------------------------------- files written while the engine is down

async def test_files_written_while_stopped_are_sent_once_and_never_again(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    data = image_bytes()
    before = [put(folder, f"before{i}.fits", data) for i in range(5)]
    async with viewer(hub.lockfile) as r:
        first = engines([WATCH], *run_args(hub, folder))
        await first.await_connected()
        await wait_log(first, "connected to the hub")
        await quiet()
        assert first.terminate() == 0
        # catch_up: new (the default): what was there before the first run is not sent.
        assert loads(r) == Counter()
        assert counts() == {"skipped": 5}

        n = 1000
        written = [put(folder, f"night{i:04d}.fits", data) for i in range(n)]
        second = engines([WATCH], *run_args(hub, folder))
        await r.wait_for(lambda r: len(loads(r)) >= n or None, timeout=240)
        await quiet()
        assert second.terminate() == 0
        assert loads(r) == Counter({f.as_uri(): 1 for f in written})

        third = engines([WATCH], *run_args(hub, folder), verbose=False)
        await third.await_connected()
        await quiet(3.0)
        assert third.terminate() == 0
        assert sum(loads(r).values()) == n, "a restart sent files again"
    assert counts() == {"sent": n, "skipped": len(before)}


# ------------------------------------------------------------- SIGKILL in the middle of a burst

async def test_sigkill_mid_burst_loses_nothing(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    data = image_bytes()
    n, kill_at = 400, 150
    names = [f"burst{i:04d}.fits" for i in range(n)]
    progress = threading.Event()
    written: list[Path] = []

    def writer() -> None:  # about 100 files a second, like a fast camera
        for i, name in enumerate(names):
            written.append(put(folder, name, data))
            if i == kill_at:
                progress.set()
            time.sleep(0.01)

    async with viewer(hub.lockfile) as r:
        first = engines([WATCH], *run_args(hub, folder))
        await first.await_connected()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        await asyncio.to_thread(progress.wait, 60)
        first.kill()  # kill -9: no chance to record anything more
        ledger = Ledger.in_state_dir(readonly=True)
        in_flight = len(ledger.entries(RULE, ("pending", "waiting")))
        ledger.close()
        second = engines([WATCH], *run_args(hub, folder))
        await asyncio.to_thread(thread.join, 60)
        await r.wait_for(lambda r: len(loads(r)) >= n or None, timeout=240)
        await quiet()
        got = loads(r)
        assert set(got) == {p.as_uri() for p in written}, "files were lost"
        duplicates = sum(got.values()) - n
        print(f"SIGKILL mid-burst: {duplicates} duplicate(s), {in_flight} file(s) in flight")
        assert duplicates <= in_flight
        assert second.terminate() == 0
    assert counts().get("sent") == n


# ---------------------------------------------------------- the recipient is away: hold

async def test_a_file_waits_for_its_recipient_across_a_restart(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    first = engines([WATCH], *run_args(hub, folder), verbose=False)
    await first.await_connected()
    m31 = put(folder, "m31.fits", image_bytes())
    await wait_log(first, r"waiting m31\.fits: viewer is not registered.*held up to 2h")
    (entry,) = entries()
    assert (entry["path"], entry["state"]) == (str(m31), "waiting")
    assert first.terminate() == 0  # stopped while the file waits
    assert counts() == {"waiting": 1}

    second = engines([WATCH], *run_args(hub, folder), verbose=False)
    await wait_log(second, r"waiting m31\.fits")
    async with viewer(hub.lockfile) as r:  # the viewer starts: the file goes to it
        await r.wait_for(lambda r: loads(r) or None, timeout=60)
        line = await wait_log(second, r"sent m31\.fits to viewer \((\d+) ms\)")
        await quiet()
        assert loads(r) == Counter({m31.as_uri(): 1})
    assert int(line.group(1)) >= 0
    assert counts() == {"sent": 1}
    # At normal verbosity: one line per file and no firing dumps.
    assert "'new FITS images go to DS9' on files" not in second.log()
    assert second.terminate() == 0


async def test_a_recipient_leaving_mid_call_gets_the_file_when_it_returns(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    arrived = asyncio.Event()

    async def die_on_it(sender_id: str, msg_id: str, message: dict[str, Any]) -> None:
        arrived.set()
        await asyncio.sleep(3600)  # never answers: the viewer quits meanwhile

    engine = engines([WATCH], *run_args(hub, folder))
    await engine.await_connected()
    async with viewer(hub.lockfile, respond=die_on_it) as first:
        image = put(folder, "crash.fits", image_bytes())
        await asyncio.wait_for(arrived.wait(), 60)
        await first.client.disconnect()
    await wait_log(engine, r"waiting crash\.fits")
    await viewer_returns_and_gets(engine, hub, image)
    assert engine.terminate() == 0


HANGING_VIEWER = """
import asyncio, sys
from sampflow.samp.client.aio import AsyncSAMPClient

async def main():
    client = AsyncSAMPClient("viewer")
    async def on_message(kind, sender, msg_id, message):
        print("GOT", flush=True)
        await asyncio.sleep(3600)   # never answers: it is about to crash
    client.on_message = on_message
    await client.connect(lockfile=sys.argv[1])
    await client.declare_subscriptions({"image.load.fits": {}})
    print("READY", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_recipient_crashing_mid_load_gets_the_file_when_it_returns(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    """The viewer dies (SIGKILL) while loading: the hub answers the call with an error of its
    own while the viewer still looks registered; that is not the viewer refusing the file."""
    import signal
    import sys

    folder = tmp_path / "incoming"
    folder.mkdir()
    engine = engines([WATCH], *run_args(hub, folder, "--set", "load_timeout=3s"))
    await engine.await_connected()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HANGING_VIEWER, str(hub.lockfile),
        stdout=asyncio.subprocess.PIPE, env=hub_env(tmp_path), start_new_session=True)
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"READY"
        image = put(folder, "crash.fits", image_bytes())
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"GOT"
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: no unregistration
        await proc.wait()
        await wait_log(engine, r"waiting crash\.fits")
        await viewer_returns_and_gets(engine, hub, image)
        assert "failed crash.fits" not in engine.log()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert engine.terminate() == 0


# ----------------------------------- a rejected load is failed with its text; retry sends it

async def test_a_rejected_load_is_failed_with_the_tools_text_and_retry_sends_it(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    answers = ["samp.error", "samp.ok"]

    async def picky(sender_id: str, msg_id: str, message: dict[str, Any]) -> dict[str, Any]:
        status = answers.pop(0) if answers else "samp.ok"
        if status == "samp.error":
            return {"samp.status": status,
                    "samp.error": {"samp.errortxt": "cannot read this image"}}
        return {"samp.status": status, "samp.result": {}}

    async with viewer(hub.lockfile, respond=picky) as r:
        engine = engines([WATCH], *run_args(hub, folder), verbose=False)
        await engine.await_connected()
        bad = put(folder, "bad.fits", image_bytes())
        await wait_log(engine, r"failed bad\.fits \(rule 'new FITS images go to DS9'\): "
                               r".*viewer: cannot read this image")
        (record,) = engine.records()
        assert record["status"] == "error"
        (entry,) = entries()
        assert entry["state"] == "failed" and "cannot read this image" in entry["reason"]

        out = subprocess.run([*sampflow_argv(), "retry", "--failed"], capture_output=True,
                             text=True, timeout=60, env=hub_env(tmp_path))
        assert out.returncode == 0 and "1 file(s) marked for retry" in out.stdout, out
        await r.wait_for(lambda r: sum(loads(r).values()) == 2 or None, timeout=60)
        await wait_log(engine, r"sent bad\.fits to viewer")
        assert loads(r) == Counter({bad.as_uri(): 2})
    assert counts() == {"sent": 1}
    assert engine.terminate() == 0


# ----------------------------------------------------------------------------- CLI habits

def test_status_of_an_empty_ledger_and_retry_without_arguments(tmp_path: Path) -> None:
    out = subprocess.run([*sampflow_argv(), "status"], capture_output=True, text=True,
                         timeout=60, env=hub_env(tmp_path))
    assert out.returncode == 0 and "ledger is empty" in out.stdout
    out = subprocess.run([*sampflow_argv(), "retry"], capture_output=True, text=True,
                         timeout=60, env=hub_env(tmp_path))
    assert out.returncode == 2 and "--failed" in out.stderr


async def test_dry_run_without_a_hub_starts_none_and_writes_no_lockfile_or_ledger(
        tmp_path: Path, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    lock = tmp_path / "lock"
    engine = engines([WATCH], "--lockfile", str(lock), "--set", f"folder={folder}",
                     "--set", "images_to=viewer", "--set", "settle=200ms", "--dry-run", "-v")
    await wait_log(engine, "dry run: no SAMP hub is running; not starting one")
    put(folder, "dry.fits", image_bytes())
    await wait_log(engine, r"would send dry\.fits to viewer \(dry run\)")
    assert not lock.exists()
    assert "started an embedded SAMP hub" not in engine.log()
    assert engine.terminate() == 0
    assert not (Path(os.environ["SAMPFLOW_STATE_DIR"]) / "ledger.sqlite3").exists()
