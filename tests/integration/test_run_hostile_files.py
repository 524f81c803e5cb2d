"""``sampflow run`` against hostile files in a watched folder (issue 9, item 9).

Each engine is a real ``sampflow run rules/watch-folder.yaml`` process with its own embedded
hub (no hub is running on its lockfile), stopped by PID. FIFOs named like FITS files must never
be opened (an open for reading blocks until a writer comes), and a 10 GB sparse FITS image must
be classified from its header alone: the engine keeps answering SAMP and exits on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from samphub import Recorder

from sampflow.samp.lockfile import read_lockfile_unchecked
from sampflow.samp.lockfile_helpers import hub_answers

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"

pytestmark = pytest.mark.timeout(240)


def read_bytes_of(pid: int) -> int:
    """Bytes the process has read through read(2) and friends (``rchar`` of /proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


def write_image(path: Path) -> Path:
    import numpy as np
    from astropy.io import fits

    tmp = path.with_name(path.name + ".part")
    fits.writeto(tmp, np.arange(64, dtype="float32").reshape(8, 8))
    tmp.rename(path)
    return path


def write_sparse_image(path: Path, total: int) -> Path:
    from astropy.io import fits

    side = int((total // 4) ** 0.5)
    hdr = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", side),
                       ("NAXIS2", side)])
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as f:
        f.write(hdr.tostring().encode())
        f.truncate(2880 + -(-side * side * 4 // 2880) * 2880)
    tmp.rename(path)
    return path


async def still_answers(lockfile: Path, client: Recorder, engine_id: str) -> None:
    """The embedded hub answers samp.hub.ping and the engine answers samp.app.ping."""
    url = read_lockfile_unchecked(lockfile)["samp.hub.xmlrpc.url"]
    assert await asyncio.to_thread(hub_answers, url, 10.0), "the embedded hub does not answer"
    reply = await client.client.call_and_wait(
        engine_id, {"samp.mtype": "samp.app.ping", "samp.params": {}}, 20)
    assert reply.get("samp.status") == "samp.ok", reply


async def test_fifos_and_a_ten_gigabyte_sparse_file_do_not_freeze_the_engine(
        tmp_path: Path, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    lock = tmp_path / "lock"
    engine = engines([RULES / "watch-folder.yaml"], "--lockfile", str(lock), "--set",
                     f"folder={folder}", "--set", "images_to=receiver", "--set",
                     "settle=200ms")
    engine_id = await engine.await_connected()
    receiver = await Recorder("receiver", {"image.load.fits": {}}).connect(lock)
    try:
        # More FIFOs than the file-facts pool has threads (and than the default pool's
        # minimum), each named like a FITS file.
        for i in range(12):
            os.mkfifo(folder / f"x{i:02d}.fits")
        # A real image after them: once it has arrived, the engine has looked at the FIFOs
        # (the watcher fires files in the order of their last events).
        first = write_image(folder / "first.fits")
        got = await receiver.wait_messages("image.load.fits", 1, timeout=60)
        assert got[0]["samp.params"]["url"] == first.as_uri()
        await still_answers(lock, receiver, engine_id)

        before = read_bytes_of(engine.pid)
        big = write_sparse_image(folder / "big.fits", 10 * 2**30)
        assert big.stat().st_size >= 10 * 10**9
        got = await receiver.wait_messages("image.load.fits", 2, timeout=60)
        assert got[1]["samp.params"]["url"] == big.as_uri()
        read = read_bytes_of(engine.pid) - before
        assert read < 50 * 2**20, f"the engine read {read} bytes to classify a sparse file"
        await still_answers(lock, receiver, engine_id)

        real = write_image(folder / "real.fits")
        got = await receiver.wait_messages("image.load.fits", 3, timeout=60)
        assert got[2]["samp.params"]["url"] == real.as_uri()
        assert engine.popen.poll() is None
    finally:
        await receiver.close()
    records = engine.records()
    fifo_runs = [r for r in records if r["event"]["path"].endswith(".fits")
                 and Path(r["event"]["path"]).name.startswith("x")]
    assert fifo_runs == [], fifo_runs  # their condition (file.kind) never held
    assert engine.terminate(30) == 0, engine.log()[-3000:]
    assert not lock.exists(), "the embedded hub left its lockfile"
    assert "Traceback" not in engine.log(), engine.log()[-3000:]
