"""Astropy's warnings about a watched file are said on that file's line, never bare (issue 10).

``sampflow run rules/watch-folder.yaml`` at normal verbosity (no ``-v``) against a
``sampflow hub`` process, with a `samphub.Recorder` named ``viewer`` taking images. The files
carry FITS cards astropy complains about: one that follows no known convention (astropy warns)
and one it cannot parse at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from samphub import Recorder, SampflowHub

ROOT = Path(__file__).resolve().parents[2]
WATCH = ROOT / "rules" / "watch-folder.yaml"

pytestmark = pytest.mark.timeout(120)

#: Card images astropy objects to: a keyword of more than 8 characters without HIERARCH
#: (an AstropyUserWarning) and a value it cannot parse (a VerifyError on reading the value).
ODD_CARDS = ("LONGKEYWORD= 5", "DATE-OBS= 2020-01-01")


@pytest.fixture
def hub(hub_process: SampflowHub) -> SampflowHub:
    """The hub these tests talk to: a ``sampflow hub`` process (see conftest)."""
    return hub_process


def odd_fits(naxis: int) -> bytes:
    """A valid FITS file (an 8x8 image, or no data when `naxis` is 0) with `ODD_CARDS` added
    before END."""
    import numpy as np
    from astropy.io import fits

    buf = io.BytesIO()
    data = np.arange(64, dtype="float32").reshape(8, 8) if naxis else None
    fits.PrimaryHDU(data).writeto(buf)
    raw = bytearray(buf.getvalue())
    end = next(i for i in range(0, 2880, 80) if raw[i:i + 8] == b"END     ")
    extra = b"".join(c.ljust(80).encode() for c in ODD_CARDS)
    raw[end:end + len(extra) + 80] = extra + b"END".ljust(80)
    return bytes(raw)


async def wait_line(engine: Any, pattern: str, timeout: float = 60.0) -> str:
    """The first log line matching `pattern` (fails with the log if none comes)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in engine.log().splitlines():
            if re.search(pattern, line):
                return line
        assert time.monotonic() < deadline, f"no {pattern!r} in:\n{engine.log()[-3000:]}"
        assert engine.popen.poll() is None, engine.log()[-3000:]
        await asyncio.sleep(0.1)


async def test_astropy_warnings_end_the_files_line_and_nothing_is_printed_bare(
        tmp_path: Path, hub: SampflowHub, engines: Any) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    viewer = Recorder("viewer", {"image.load.fits": {}})
    await viewer.connect(hub.lockfile)
    try:
        engine = engines([WATCH], "--lockfile", str(hub.lockfile), "--hub", "connect",
                         "--set", f"folder={folder}", "--set", "images_to=viewer",
                         "--set", "settle=200ms", verbose=False)
        await engine.await_connected()
        (folder / "odd.fits").write_bytes(odd_fits(naxis=2))
        (folder / "header-only.fits").write_bytes(odd_fits(naxis=0))

        sent = await wait_line(engine, r"sent odd\.fits to viewer")
        skipped = await wait_line(engine, r"skipped header-only\.fits")
        await viewer.wait_for(lambda r: r.messages("image.load.fits") or None, timeout=30)
    finally:
        with contextlib.suppress(Exception):
            await viewer.close()
    assert engine.terminate() == 0

    for line in (sent, skipped):
        assert "; astropy: " in line, line
        assert "LONGKEYWORD" in line, line  # astropy's own warning, condensed to one line
        assert "unparsable card 'DATE-OBS'" in line, line
    log = engine.log()
    assert "Warning" not in log and "warnings.warn" not in log, log
    assert log.count("LONGKEYWORD") == 2, log  # once per file, on its line
