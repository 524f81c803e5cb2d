"""astropy's "Sending and Receiving Tables and Images over SAMP" page with the real TOPCAT
and SAO DS9 (under Xvfb), unchanged but for the import (issue 11).

https://docs.astropy.org/en/stable/samp/example_table_image.html: a table broadcast with
``notify_all``, found again with ``get_registered_clients`` / ``get_metadata`` and re-sent
to TOPCAT alone with ``notify``; an image broadcast to DS9. The hub is sampflow's in-process
``SAMPHubServer``; the page's ``client.connect()`` finds it through ``SAMP_HUB``. Each load
is confirmed by asking the application (TOPCAT ``table.get.stil``, DS9 ``ds9.get file``).
"""

from __future__ import annotations

import csv
import io
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import peers as peerlib
import pytest

pytestmark = [pytest.mark.peer, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from sampflow.samp import SAMPHubServer

    lockfile = tmp_path_factory.mktemp("astropy-examples") / "samp.lock"
    server = SAMPHubServer(lockfile=str(lockfile), web_profile=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def topcat(module_peers: peerlib.PeerLauncher, hub: Any) -> peerlib.PeerHandle:
    return module_peers.topcat(Path(hub.lockfile))


@pytest.fixture(scope="module")
def ds9(module_peers: peerlib.PeerLauncher, hub: Any) -> peerlib.PeerHandle:
    return module_peers.ds9(Path(hub.lockfile))


@pytest.fixture
def samp_hub_env(hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:" + Path(hub.lockfile).as_uri())


def ask_until_ok(client: Any, recipient: str, mtype: str, **params: str) -> dict[str, Any]:
    """Query the application until it has settled after a load (bounded)."""
    response: dict[str, Any] = {}
    for _ in range(60):
        response = client.ecall_and_wait(recipient, mtype, "60", **params)
        if response["samp.status"] == "samp.ok":
            return response
        time.sleep(0.5)
    return response


def test_sending_a_table_to_topcat(samp_hub_env: None, topcat: peerlib.PeerHandle,
                                   tmp_path: Path) -> None:
    from astropy.table import Table

    path = tmp_path / "aj285677t3_votable.xml"
    Table({"name": ["alpha", "beta"], "ra": [83.82, 10.68]}).write(str(path), format="votable")

    from sampflow.samp import SAMPIntegratedClient
    client = SAMPIntegratedClient()
    client.connect()
    try:
        params = {}
        params["url"] = path.as_uri()
        params["name"] = "Robitaille et al. (2008), Table 3"
        message = {}
        message["samp.mtype"] = "table.load.votable"
        message["samp.params"] = params
        assert topcat.public_id in client.notify_all(message)

        ids = client.get_registered_clients()
        c1 = next(i for i in ids if client.get_metadata(i).get("samp.name") == "topcat")
        assert c1 == topcat.public_id
        params["table-id"] = "astropy-example"  # so that the test can ask for it back
        client.notify(c1, message)

        stil = ask_until_ok(client, c1, "table.get.stil", **{"table-id": "astropy-example",
                                                             "format": "csv"})
        assert stil["samp.status"] == "samp.ok", (stil, topcat.process.log_tail())
        url = stil["samp.result"]["url"]
        if url.startswith("file:"):
            text = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)).read_text()
        else:
            with urllib.request.urlopen(url, timeout=30) as answer:
                text = answer.read().decode("utf-8")
        assert [row["name"] for row in csv.DictReader(io.StringIO(text))] == ["alpha", "beta"]
    finally:
        client.disconnect()


def test_sending_an_image_to_ds9(samp_hub_env: None, ds9: peerlib.PeerHandle,
                                 tmp_path: Path) -> None:
    from astropy.io import fits

    path = tmp_path / "MSX_E.fits"
    fits.PrimaryHDU(np.arange(64.0, dtype="float32").reshape(8, 8)).writeto(path)

    from sampflow.samp import SAMPIntegratedClient
    client = SAMPIntegratedClient()
    client.connect()
    try:
        params = {}
        params["url"] = path.as_uri()
        params["name"] = "MSX Band E Image of the Galactic Center"
        message = {}
        message["samp.mtype"] = "image.load.fits"
        message["samp.params"] = params
        assert ds9.public_id in client.notify_all(message)

        loaded = ask_until_ok(client, ds9.public_id, "ds9.get", cmd="file")
        assert loaded["samp.status"] == "samp.ok", loaded
        value = str(loaded["samp.result"]["value"]).strip()
        assert Path(value.split("[")[0]).resolve() == path.resolve(), value
    finally:
        client.disconnect()
