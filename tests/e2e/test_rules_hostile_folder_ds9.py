"""A watched folder with hostile content, driving real DS9 (issue 9, items 9 and 10).

``sampflow run rules/watch-folder.yaml`` on a ``sampflow hub``, with SAO DS9 registered: FIFOs
named like FITS files sit in the folder (never opened: the engine stays responsive), a real
image still reaches DS9; then the folder is deleted and recreated, and the next image reaches
DS9 too. Loads are confirmed by asking DS9 (``ds9.get`` of ``file``).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import peers as peerlib
import pytest
import samphub
from astropy.io import fits

pytestmark = [pytest.mark.peer, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"


def put_image(path: Path) -> Path:
    buf = io.BytesIO()
    fits.PrimaryHDU(np.arange(64 * 64, dtype="float32").reshape(64, 64)).writeto(buf)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(buf.getvalue())
    tmp.rename(path)
    return path


def ds9_shows(lockfile: Path, ds9_id: str, expected: Path, timeout: float = 60.0) -> None:
    last: list[Any] = []

    def loaded() -> bool:
        with peerlib.ProbeClient(lockfile) as probe:
            answer = probe.call_and_wait(ds9_id, "ds9.get", {"cmd": "file"}, timeout=30)
        last[:] = [answer]
        value = str((answer.get("samp.result") or {}).get("value", "")).strip().split("[")[0]
        return bool(value) and os.path.exists(value) and os.path.samefile(value, expected)
    try:
        peerlib.wait_until(loaded, timeout=timeout, what=f"DS9 to show {expected}",
                           interval=0.5)
    except peerlib.PeerStartError as exc:
        raise AssertionError(f"{exc}; DS9's last answer: {last}") from None


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[samphub.SampflowHub]:
    with samphub.running_hub(tmp_path / "hub" / "samp.lock", log_dir=tmp_path / "hub",
                             args=["--no-web-profile"]) as h:
        yield h


def test_fifos_and_a_recreated_folder_with_real_ds9(
        tmp_path: Path, hub: samphub.SampflowHub, peers: peerlib.PeerLauncher,
        engines: Callable[..., samphub.EngineRun]) -> None:
    ds9 = peers.ds9(hub)
    folder = tmp_path / "incoming"
    folder.mkdir()
    for i in range(10):
        os.mkfifo(folder / f"pipe{i}.fits")
    engine = engines([RULES / "watch-folder.yaml"], "--set", f"folder={folder}", "--set",
                     "settle=300ms", "--lockfile", str(hub.lockfile), "--hub", "connect")
    engine_id = engine.wait_connected()
    for i in range(10, 20):  # FIFOs appearing while it watches
        os.mkfifo(folder / f"pipe{i}.fits")
    time.sleep(1.0)
    with peerlib.ProbeClient(hub.lockfile) as probe:  # the engine still answers SAMP
        reply = probe.call_and_wait(engine_id, "samp.app.ping", {}, timeout=20)
    assert reply.get("samp.status") == "samp.ok", reply
    first = put_image(folder / "first.fits")
    ds9_shows(hub.lockfile, ds9.public_id, first)

    shutil.rmtree(folder)
    deadline = time.monotonic() + 30
    while "watched folder" not in engine.log():
        assert time.monotonic() < deadline, engine.log()[-3000:]
        time.sleep(0.1)
    folder.mkdir()
    second = put_image(folder / "second.fits")
    ds9_shows(hub.lockfile, ds9.public_id, second)
    sent = [r for r in engine.records() if r["status"] == "ok"]
    assert sorted(Path(r["event"]["path"]).name for r in sent) == ["first.fits",
                                                                    "second.fits"], sent
    assert engine.terminate() == 0, engine.log()[-3000:]
