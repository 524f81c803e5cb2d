"""TOPCAT and SAO DS9, under Xvfb, through ``sampflow hub`` (issue 2, item 4).

One ``sampflow hub`` process, one TOPCAT and one DS9 per module (they are slow to start). The
messages are sent by sampflow's `AsyncSAMPClient` with ``callAndWait``; each load is then
confirmed by asking the application what it holds (``table.get.stil`` for TOPCAT, ``ds9.get``
of ``file`` for DS9). The demo data are made with astropy in a temporary folder.
"""

from __future__ import annotations

import csv
import io
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import peers as peerlib
import pytest
import samphub
from astropy.io import fits
from astropy.table import Table

from sampflow.samp.client.aio import AsyncSAMPClient

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("desktop-data")


@pytest.fixture(scope="module")
def fits_image(data_dir: Path) -> Path:
    y, x = np.mgrid[0:64, 0:64]
    image = np.exp(-((x - 32.0) ** 2 + (y - 28.0) ** 2) / 50.0).astype("float32")
    hdu = fits.PrimaryHDU(image)
    hdu.header["OBJECT"] = "sampflow demo"
    path = data_dir / "demo_image.fits"
    hdu.writeto(path)
    return path


@pytest.fixture(scope="module")
def votable(data_dir: Path) -> Path:
    table = Table({"name": ["alpha", "beta", "gamma"], "ra": [83.82, 10.68, 201.37],
                   "dec": [-5.39, 41.27, -43.02], "mag": [4.0, 3.4, 6.8]})
    path = data_dir / "demo.vot"
    table.write(path, format="votable")
    return path


@pytest.fixture(scope="module")
def sampflow_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[samphub.SampflowHub]:
    folder = tmp_path_factory.mktemp("sampflow-hub")
    with samphub.running_hub(folder / "samp.lock", log_dir=folder, verbose=True) as hub:
        yield hub


@pytest.fixture(scope="module")
def topcat(module_peers: peerlib.PeerLauncher,
           sampflow_hub: samphub.SampflowHub) -> peerlib.PeerHandle:
    return module_peers.topcat(sampflow_hub)


@pytest.fixture(scope="module")
def ds9(module_peers: peerlib.PeerLauncher,
        sampflow_hub: samphub.SampflowHub) -> peerlib.PeerHandle:
    return module_peers.ds9(sampflow_hub)


@pytest.fixture
async def client(sampflow_hub: samphub.SampflowHub) -> AsyncIterator[AsyncSAMPClient]:
    c = AsyncSAMPClient("sampflow-desktop-test")
    await c.connect(lockfile=str(sampflow_hub.lockfile))
    try:
        yield c
    finally:
        await c.disconnect()


def fetch(url: str) -> bytes:
    if url.startswith("file:"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)).read_bytes()
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (TOPCAT's URL)
        return response.read()


async def check_registered(client: AsyncSAMPClient, peer: peerlib.PeerHandle, name: str,
                           mtype: str) -> None:
    assert peer.public_id in await client.get_registered_clients()
    assert (await client.get_metadata(peer.public_id))["samp.name"] == name
    assert peer.public_id in await client.get_subscribed_clients(mtype)
    response = await client.call_and_wait(peer.public_id, samphub.msg("samp.app.ping"), 30)
    assert response["samp.status"] == "samp.ok", response


async def test_table_load_votable_to_topcat(client: AsyncSAMPClient, topcat: peerlib.PeerHandle,
                                           votable: Path) -> None:
    await check_registered(client, topcat, "topcat", "table.load.votable")
    response = await client.call_and_wait(
        topcat.public_id,
        samphub.msg("table.load.votable", url=votable.as_uri(), **{"table-id": "sf-t1"},
                name="sampflow demo"),
        60)
    assert response["samp.status"] == "samp.ok", response
    # TOPCAT answers the load before the table is in its list: poll (bounded).
    stil = await samphub.call_until_ok(
        client, topcat.public_id,
        samphub.msg("table.get.stil", **{"table-id": "sf-t1", "format": "csv"}))
    assert stil["samp.status"] == "samp.ok", (stil, response, topcat.process.log_tail())
    text = fetch(stil["samp.result"]["url"]).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == ["alpha", "beta", "gamma"]
    assert [float(r["ra"]) for r in rows] == pytest.approx([83.82, 10.68, 201.37])


async def test_image_load_fits_to_ds9(client: AsyncSAMPClient, ds9: peerlib.PeerHandle,
                                      fits_image: Path) -> None:
    await check_registered(client, ds9, "SAOImageDS9", "image.load.fits")
    response = await client.call_and_wait(
        ds9.public_id, samphub.msg("image.load.fits", url=fits_image.as_uri(), name="demo"), 60)
    assert response["samp.status"] == "samp.ok", response
    loaded = await samphub.call_until_ok(client, ds9.public_id, samphub.msg("ds9.get", cmd="file"))
    assert loaded["samp.status"] == "samp.ok", loaded
    value = str(loaded["samp.result"]["value"]).strip()
    assert Path(value.split("[")[0]).resolve() == fits_image.resolve(), value
