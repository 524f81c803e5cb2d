"""The ready rule sets driving real DS9, TOPCAT and Aladin under Xvfb (issue 3, items 1, 3, 6).

Run as a user runs them: ``sampflow run rules/<set>.yaml --set ...`` as a subprocess (with
``--no-web-profile``, its own home, lockfile and ``--trace`` file), stopped by PID with SIGTERM.
Loads are confirmed by asking the application what it holds: ``ds9.get`` of ``file`` for DS9,
``table.get.stil`` for TOPCAT, ``coord.get.sky`` for Aladin; "exactly once" is read from the
engine's trace (one firing, one message for that file) as well.

DS9 and TOPCAT are module-scoped on one ``sampflow hub`` (TOPCAT takes 15-25 s to start).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import peers as peerlib
import pytest
import samphub
from astropy.io import fits
from astropy.table import Table

pytestmark = [pytest.mark.peer, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"


def image_bytes(size: int = 256) -> bytes:
    y, x = np.mgrid[0:size, 0:size]
    data = np.exp(-((x - size / 2) ** 2 + (y - size / 3) ** 2) / 200.0).astype("float32")
    hdu = fits.PrimaryHDU(data)
    hdu.header["OBJECT"] = "sampflow slow write"
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def ds9_file(lockfile: Path, ds9_id: str, expected: Path, timeout: float = 30.0) -> str:
    """Ask DS9 (``ds9.get`` of ``file``) until it names ``expected``; returns its answer.

    The engine sends loads as notifications, so DS9 may still be loading when asked.
    """
    last: list[Any] = []

    def loaded() -> str | None:
        with peerlib.ProbeClient(lockfile) as probe:
            answer = probe.call_and_wait(ds9_id, "ds9.get", {"cmd": "file"}, timeout=30)
        last[:] = [answer]
        value = str((answer.get("samp.result") or {}).get("value", "")).strip()
        value = value.split("[")[0]  # DS9 may add an extension: file.fits[0]
        return value if value and os.path.exists(value) and os.path.samefile(
            value, expected) else None
    try:
        return str(peerlib.wait_until(loaded, timeout=timeout, what=f"DS9 to show {expected}",
                                      interval=0.5))
    except peerlib.PeerStartError as exc:
        raise AssertionError(f"{exc}; DS9's last answer: {last}") from None


def topcat_rows(lockfile: Path, topcat_id: str, table_id: str, timeout: float = 60.0
                ) -> list[dict[str, str]]:
    """The rows TOPCAT serves back (``table.get.stil`` as CSV) for ``table_id``."""
    last: list[Any] = []

    def rows() -> list[dict[str, str]] | None:
        with peerlib.ProbeClient(lockfile) as probe:
            answer = probe.call_and_wait(topcat_id, "table.get.stil",
                                         {"table-id": table_id, "format": "csv"}, timeout=60)
        last[:] = [answer]
        if answer.get("samp.status") != "samp.ok":
            return None
        with urllib.request.urlopen(answer["samp.result"]["url"], timeout=30) as resp:
            return list(csv.DictReader(io.StringIO(resp.read().decode())))
    try:
        return peerlib.wait_until(rows, timeout=timeout, what=f"TOPCAT to hold {table_id}",
                                  interval=0.5)
    except peerlib.PeerStartError as exc:
        raise AssertionError(f"{exc}; TOPCAT's last answer: {last}") from None


def events_for(records: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    return [r for r in records if r["event"].get("path") == str(path)]


# ------------------------------------------------------ module: one hub, DS9 and TOPCAT

@pytest.fixture(scope="module")
def desktop_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[samphub.SampflowHub]:
    folder = tmp_path_factory.mktemp("rules-desktop-hub")
    with samphub.running_hub(folder / "samp.lock", log_dir=folder,
                             args=["--no-web-profile"]) as hub:
        yield hub


@pytest.fixture(scope="module")
def ds9(module_peers: peerlib.PeerLauncher,
        desktop_hub: samphub.SampflowHub) -> peerlib.PeerHandle:
    return module_peers.ds9(desktop_hub)


@pytest.fixture(scope="module")
def topcat(module_peers: peerlib.PeerLauncher,
           desktop_hub: samphub.SampflowHub) -> peerlib.PeerHandle:
    return module_peers.topcat(desktop_hub)


def test_watch_folder_loads_a_slowly_written_image_in_ds9_exactly_once(
        tmp_path: Path, desktop_hub: samphub.SampflowHub, ds9: peerlib.PeerHandle,
        topcat: peerlib.PeerHandle, engines: Callable[..., samphub.EngineRun]) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    engine = engines([RULES / "watch-folder.yaml"], "--set", f"folder={folder}",
                     "--lockfile", str(desktop_hub.lockfile), "--hub", "connect")
    engine.wait_connected()
    target = folder / "slow-image.fits"  # (DS9 does not decode %20 in file:// URLs)
    data = image_bytes()
    chunks = [data[i:i + 32768] for i in range(0, len(data), 32768)]
    with open(target, "wb") as f:  # kept open, with pauses longer than the 1 s settle time
        for i, chunk in enumerate(chunks):
            f.write(chunk)
            f.flush()
            time.sleep(1.5 if i == len(chunks) // 2 else 0.3)
    (record,) = engine.wait_records(lambda r: r["event"].get("path") == str(target))
    time.sleep(3.0)  # a second firing for the same file would come meanwhile
    records = events_for(engine.records(), target)
    assert len(records) == 1, records
    assert record["status"] == "ok", record
    assert [(s["to"], s["mtype"]) for s in record["sent"]] == [
        (ds9.public_id, "image.load.fits")], record
    ds9_file(desktop_hub.lockfile, ds9.public_id, target)
    # TOPCAT was not sent the image.
    assert all(s["to"] != topcat.public_id for r in engine.records() for s in r["sent"])
    assert engine.terminate() == 0


def test_watch_folder_loads_tables_in_topcat(
        tmp_path: Path, desktop_hub: samphub.SampflowHub, ds9: peerlib.PeerHandle,
        topcat: peerlib.PeerHandle, engines: Callable[..., samphub.EngineRun]) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    engine = engines([RULES / "watch-folder.yaml"], "--set", f"folder={folder}",
                     "--lockfile", str(desktop_hub.lockfile), "--hub", "connect")
    engine.wait_connected()
    table = Table({"name": ["alpha", "beta", "gamma"], "ra": [83.82, 10.68, 201.37],
                   "dec": [-5.39, 41.27, -43.02]})
    staged = tmp_path / "stage"
    staged.mkdir()
    votable = folder / "catalogue.vot"
    table.write(staged / votable.name, format="votable")
    (staged / votable.name).rename(votable)  # dropped in
    fits_table = folder / "catalogue.fits"  # a FITS *table*: TOPCAT, not DS9
    table.write(staged / fits_table.name, format="fits")
    (staged / fits_table.name).rename(fits_table)
    by_path = {}
    for path, mtype in ((votable, "table.load.votable"), (fits_table, "table.load.fits")):
        (record,) = engine.wait_records(lambda r, p=path: r["event"].get("path") == str(p))
        assert record["status"] == "ok", record
        assert [(s["to"], s["mtype"]) for s in record["sent"]] == [(topcat.public_id, mtype)]
        by_path[path] = record["sent"][0]["params"]
    for path, params in by_path.items():
        rows = topcat_rows(desktop_hub.lockfile, topcat.public_id, params["table-id"])
        assert [r["name"] for r in rows] == ["alpha", "beta", "gamma"], (path, rows)
    assert engine.terminate() == 0


# ------------------------------------------- 6. no hub: sampflow run starts one, DS9 joins

def test_run_starts_a_hub_and_ds9_started_afterwards_joins_it(
        tmp_path: Path, peers: peerlib.PeerLauncher,
        engines: Callable[..., samphub.EngineRun]) -> None:
    lock = tmp_path / "samp.lock"
    folder = tmp_path / "incoming"
    folder.mkdir()
    engine = engines([RULES / "watch-folder.yaml"], "--set", f"folder={folder}",
                     "--lockfile", str(lock))
    engine.wait_connected()
    assert "started an embedded SAMP hub" in engine.log()
    hub = peerlib.HubHandle.from_lockfile(lock)
    ds9 = peers.ds9(hub)  # reads that lockfile (SAMP_HUB), registers with the embedded hub
    image = folder / "after-ds9.fits"
    image.write_bytes(image_bytes(64))
    (record,) = engine.wait_records(lambda r: r["event"].get("path") == str(image))
    assert record["status"] == "ok", (record, engine.log()[-3000:])
    assert [s["to"] for s in record["sent"]] == [ds9.public_id]
    ds9_file(lock, ds9.public_id, image)
    assert engine.terminate() == 0
    assert not lock.exists()


# ---------------------------------------------- 3. with real Aladin: where does it point?

def test_highlighted_row_points_real_aladin(
        tmp_path: Path, peers: peerlib.PeerLauncher,
        engines: Callable[..., samphub.EngineRun]) -> None:
    folder = tmp_path / "hub"
    with samphub.running_hub(folder / "samp.lock", log_dir=folder,
                             args=["--no-web-profile"]) as hub:
        aladin = peers.aladin(hub)
        engine = engines([RULES / "aladin-follow-highlight.yaml"], "--lockfile",
                         str(hub.lockfile), "--hub", "connect")
        engine_id = engine.wait_connected()
        table = tmp_path / "sources.vot"
        Table({"id": ["m42", "ngc5128"], "RAJ2000": [83.82, 201.365],
               "DEJ2000": [-5.39, -43.019]}).write(table, format="votable")
        url = table.as_uri()
        with peerlib.ProbeClient(hub.lockfile, name="topcat") as topcat:
            peerlib.wait_until(
                lambda: "table.load.votable" in topcat.subscriptions(engine_id),
                timeout=30, what="the engine's subscriptions")
            topcat.notify(engine_id, "table.load.votable",
                          {"url": url, "table-id": "tc-1", "name": "sources"})
            topcat.notify(engine_id, "table.highlight.row", {"table-id": "tc-1", "row": "0"})
            (record,) = engine.wait_records(lambda r: r["sent"] != [])
            assert record["status"] == "ok", record
            assert record["sent"][0]["to"] == aladin.public_id

            def pointed() -> dict[str, Any] | None:
                where = topcat.call_and_wait(aladin.public_id, "coord.get.sky", {},
                                             timeout=30)
                result = where.get("samp.result") or {}
                try:
                    ra, dec = float(result["ra"]), float(result["dec"])
                except (KeyError, ValueError):
                    return None
                return result if abs(ra - 83.82) < 1e-3 and abs(dec + 5.39) < 1e-3 else None
            peerlib.wait_until(pointed, timeout=60, what="Aladin to point at row 0")
        assert engine.terminate() == 0


# ----------------------------------------------------- examples/lab_desktop.py, as a user

def test_lab_desktop_example_loads_image_and_catalogue(
        tmp_path: Path, desktop_hub: samphub.SampflowHub, ds9: peerlib.PeerHandle,
        topcat: peerlib.PeerHandle) -> None:
    import sys

    data = tmp_path / "lab-data"
    env = samphub.hub_env(tmp_path)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "lab_desktop.py"),
                           "--lockfile", str(desktop_hub.lockfile), "--data", str(data),
                           "--timeout", "60", "--exit"],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "joined the running SAMP hub" in done.stdout, done.stdout
    assert "select rows 0, 1, 2, 3 in TOPCAT: ok" in done.stdout, done.stdout
    ds9_file(desktop_hub.lockfile, ds9.public_id, data / "trapezium.fits")
    rows = topcat_rows(desktop_hub.lockfile, topcat.public_id, "lab-demo-catalogue")
    assert [r["name"] for r in rows][:2] == ["theta1 Ori C", "theta1 Ori A"], rows
    assert len(rows) == 8
