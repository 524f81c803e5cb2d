"""A lab of three linked desktops: real TOPCAT on hub A, real DS9 on hub B (issue 13).

One real ``nats-server`` and three ``sampflow link`` hubs (A, B, C), each its own process
on its own lockfile; TOPCAT registers with A and DS9 with B under Xvfb, as on their own
desktops. Each scenario is driven the way a user drives it:

- a script on C (``sampflow send ... --to "topcat (proxy@A)"``) loads a VOTable that lives
  in C's folder into TOPCAT on A: the ``file://`` URL is served by C's link; TOPCAT's own
  copy (``table.get.stil``) is then read on A;
- a rule on A (``sampflow run rules/watch-folder.yaml``) sends a new FITS image to
  ``SAOImageDS9 (proxy@B)``, and DS9 on B is asked what it shows (``ds9.get file``, and
  the ``OBJECT`` of its FITS header: DS9 names its own download of A's served URL);
- JSAMP's hubtester runs against hub C while proxies of TOPCAT and DS9 sit on it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import peers as peerlib
import pytest
import samphub
from astropy.io import fits
from astropy.table import Table
from linkfed import Federation, NatsServer

from sampflow.samp.client.aio import AsyncSAMPClient

pytestmark = [pytest.mark.peer, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    folder = tmp_path_factory.mktemp("lab")
    with NatsServer(folder / "nats") as server, \
            Federation(folder, server.url, "A", "B", "C") as federation:
        yield federation
    logs = federation.logs(1_000_000)
    assert "Traceback" not in logs, logs


@pytest.fixture(scope="module")
def topcat(module_peers: peerlib.PeerLauncher, lab: Federation) -> peerlib.PeerHandle:
    return module_peers.topcat(lab["A"])


@pytest.fixture(scope="module")
def ds9(module_peers: peerlib.PeerLauncher, lab: Federation) -> peerlib.PeerHandle:
    return module_peers.ds9(lab["B"])


async def connected(hub: samphub.SampflowHub, name: str) -> AsyncSAMPClient:
    client = AsyncSAMPClient(name, callable=False)
    await client.connect(lockfile=str(hub.lockfile))
    return client


@pytest.fixture
async def on_a(lab: Federation) -> AsyncIterator[AsyncSAMPClient]:
    client = await connected(lab["A"], "checker-a")
    yield client
    await client.disconnect()


@pytest.fixture
async def on_b(lab: Federation) -> AsyncIterator[AsyncSAMPClient]:
    client = await connected(lab["B"], "checker-b")
    yield client
    await client.disconnect()


async def wait_named(client: AsyncSAMPClient, name: str, timeout: float = 60.0) -> str:
    async with asyncio.timeout(timeout):
        while True:
            for cid in await client.get_registered_clients():
                if (await client.get_metadata(cid)).get("samp.name") == name:
                    return cid
            await asyncio.sleep(0.2)


async def ds9_get(client: AsyncSAMPClient, ds9_id: str, cmd: str,
                  done: Callable[[str], bool], tries: int = 60) -> str:
    """``ds9.get`` of `cmd` until `done(answer)` (bounded); the answer comes as ``value``, or
    as a ``url`` of a file when long."""
    text = ""
    for _ in range(tries):
        response = await client.call_and_wait(ds9_id, samphub.msg("ds9.get", cmd=cmd), 60)
        result = response.get("samp.result") or {}
        if "value" in result:
            text = str(result["value"]).strip()
        elif "url" in result:
            text = Path(urllib.parse.urlsplit(result["url"]).path).read_text()
        if done(text):
            return text
        await asyncio.sleep(0.5)
    return text


async def test_script_on_c_loads_a_votable_into_topcat_on_a(
        lab: Federation, topcat: peerlib.PeerHandle, on_a: AsyncSAMPClient,
        tmp_path: Path) -> None:
    table = Table({"name": ["alpha", "beta", "gamma"], "ra": [83.82, 10.68, 201.37],
                   "dec": [-5.39, 41.27, -43.02]})
    votable = tmp_path / "c-desk" / "lab.vot"  # on C's "machine"
    votable.parent.mkdir()
    table.write(votable, format="votable")
    probe = await connected(lab["C"], "probe-c")
    try:
        await wait_named(probe, "topcat (proxy@A)")
    finally:
        await probe.disconnect()
    argv = [*samphub.sampflow_argv(), "send", "table.load.votable", f"url={votable.as_uri()}",
            "table-id=lab-t1", "name=lab table", "--to", "topcat (proxy@A)", "--wait", "60",
            "--lockfile", str(lab["C"].lockfile)]
    script = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                     timeout=120, env=samphub.hub_env(tmp_path), check=False)
    assert script.returncode == 0, (script.stdout, script.stderr, lab.logs())
    assert "samp.ok" in script.stdout, script.stdout
    stil = await samphub.call_until_ok(
        on_a, topcat.public_id,
        samphub.msg("table.get.stil", **{"table-id": "lab-t1", "format": "csv"}),
        retry_hub_failures=True)
    assert stil["samp.status"] == "samp.ok", (stil, topcat.process.log_tail())
    url = stil["samp.result"]["url"]
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read())
    rows = list(csv.DictReader(io.StringIO(text.decode())))
    assert [r["name"] for r in rows] == ["alpha", "beta", "gamma"]
    # TOPCAT read the table from C's link, not from C's file system.
    assert f"served {votable}" in lab["C"].log_tail(200_000), lab.logs()


async def test_rule_on_a_shows_an_image_in_ds9_on_b(
        lab: Federation, ds9: peerlib.PeerHandle, on_a: AsyncSAMPClient,
        on_b: AsyncSAMPClient, tmp_path: Path,
        engines: Callable[..., samphub.EngineRun]) -> None:
    await wait_named(on_a, "SAOImageDS9 (proxy@B)")
    folder = tmp_path / "a-incoming"
    folder.mkdir()
    engine = engines([ROOT / "rules" / "watch-folder.yaml"], "--set", f"folder={folder}",
                     "--set", "images_to=SAOImageDS9 (proxy@B)",
                     "--lockfile", str(lab["A"].lockfile), "--hub", "connect")
    engine.wait_connected()
    y, x = np.mgrid[0:64, 0:64]
    image = fits.PrimaryHDU(np.exp(-((x - 20.0) ** 2 + (y - 40.0) ** 2) / 30.0)
                            .astype("float32"))
    image.header["OBJECT"] = "linked lab"
    staged = tmp_path / "staged.fits"
    image.writeto(staged)
    staged.rename(folder / "lab-image.fits")
    (record,) = await asyncio.to_thread(
        engine.wait_records, lambda r: str(r["event"].get("path", "")).endswith("lab-image.fits"))
    assert record["status"] == "ok", record
    # The rule notifies: DS9 may still be fetching when asked, so ask until it shows it.
    # DS9 fetched the URL that A's link serves into a temporary file of its own, so it
    # names that copy; its header says which image it is.
    value = await ds9_get(on_b, ds9.public_id, "file", lambda v: v.split("[")[0].endswith(
        ".fits"))
    assert value.split("[")[0].endswith(".fits"), (value, ds9.process.log_tail(), lab.logs())
    text = await ds9_get(on_b, ds9.public_id, "fits header", lambda v: "linked lab" in v)
    assert "linked lab" in text, text
    assert f"served {folder / 'lab-image.fits'}" in lab["A"].log_tail(200_000), lab.logs()
    assert engine.terminate() == 0


def test_hubtester_passes_on_a_linked_hub_with_proxies(
        run_jsamp: Callable[..., Any], lab: Federation, topcat: peerlib.PeerHandle,
        ds9: peerlib.PeerHandle) -> None:
    async def proxies_present() -> None:
        probe = await connected(lab["C"], "probe-c")
        try:
            await wait_named(probe, "topcat (proxy@A)")
            await wait_named(probe, "SAOImageDS9 (proxy@B)")
        finally:
            await probe.disconnect()

    asyncio.run(proxies_present())
    code, out, err = run_jsamp("hubtester", hub=lab["C"], timeout=300)
    assert code == 0, (f"hubtester failed ({code}):\n{out[-4000:]}\n{err[-4000:]}\n"
                       f"{lab.logs()}")
    assert all(hub.running() for hub in lab.hubs.values())
