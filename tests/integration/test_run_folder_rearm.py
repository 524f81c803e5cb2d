"""A watched folder that is deleted and recreated (issue 9, item 10), through ``sampflow run``.

The engine (``sampflow run rules/watch-folder.yaml``, its own embedded hub) must warn at once
when the folder goes, keep running, and watch it again when it comes back: a file written after
the folder is recreated is sent.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from samphub import Recorder

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"

pytestmark = pytest.mark.timeout(180)


def write_image(path: Path) -> Path:
    import numpy as np
    from astropy.io import fits

    tmp = path.with_name(path.name + ".part")
    fits.writeto(tmp, np.arange(64, dtype="float32").reshape(8, 8))
    tmp.rename(path)
    return path


async def wait_log(engine: Any, text: str, count: int = 1, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.log().count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{engine.log()[-3000:]}"
        assert engine.popen.poll() is None, engine.log()[-3000:]
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("how", ["deleted", "moved"])
async def test_deleted_folder_warns_and_is_watched_again_when_recreated(
        tmp_path: Path, engines: Any, how: str) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    lock = tmp_path / "lock"
    engine = engines([RULES / "watch-folder.yaml"], "--lockfile", str(lock), "--set",
                     f"folder={folder}", "--set", "images_to=receiver", "--set",
                     "settle=200ms")
    await engine.await_connected()
    receiver = await Recorder("receiver", {"image.load.fits": {}}).connect(lock)
    try:
        first = write_image(folder / "first.fits")
        got = await receiver.wait_messages("image.load.fits", 1, timeout=60)
        assert got[0]["samp.params"]["url"] == first.as_uri()

        if how == "deleted":
            shutil.rmtree(folder)
        else:
            folder.rename(tmp_path / "elsewhere")
        await wait_log(engine, f"watched folder {folder}")  # both rules' watches say so
        assert "WARNING" in engine.log()

        folder.mkdir()
        await wait_log(engine, "is back; watching it again", 2)
        second = write_image(folder / "second.fits")
        got = await receiver.wait_messages("image.load.fits", 2, timeout=60)
        assert got[1]["samp.params"]["url"] == second.as_uri()

        # Deleted and recreated again at once (between two polls): still followed.
        shutil.rmtree(folder)
        folder.mkdir()
        third = write_image(folder / "third.fits")
        got = await receiver.wait_messages("image.load.fits", 3, timeout=60)
        assert got[2]["samp.params"]["url"] == third.as_uri()
        await asyncio.sleep(1.5)
        assert len(receiver.messages("image.load.fits")) == 3, receiver.messages()
    finally:
        await receiver.close()
    assert engine.terminate(30) == 0, engine.log()[-3000:]
    assert "Traceback" not in engine.log()
