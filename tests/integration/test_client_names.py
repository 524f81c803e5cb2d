"""The one name rule (`sampflow.samp.names`) where it meets a real hub: `find_client_id` and
``sampflow send --to``. The hub is a `SAMPHubServer` in this process with its own lockfile in
``tmp_path``; the named clients are `SAMPIntegratedClient` stand-ins for DS9 and TOPCAT
(``samp.name`` ``SAOImageDS9`` and ``topcat``); ``sampflow send`` runs as a user runs it."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samphub import hub_env, sampflow_argv

from sampflow.samp import SAMPHubServer, SAMPIntegratedClient, find_client_id
from sampflow.samp.errors import SAMPClientError

pytestmark = pytest.mark.timeout(120)


class Stand:
    """A connected client called `name` that records ``test.echo`` notifications."""

    def __init__(self, name: str, hub: SAMPHubServer) -> None:
        self.client = SAMPIntegratedClient(name=name)
        self.client.connect(hub_params=hub.params)
        self.got: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        self.client.bind_receive_notification("test.echo", self._on)

    def _on(self, private_key: str, sender_id: str, mtype: str, params: dict[str, Any],
            extra: dict[str, Any]) -> None:
        self.got.append(params)
        self.arrived.set()

    @property
    def id(self) -> str:
        return self.client.get_public_id()


@pytest.fixture
def hub(hub_server: SAMPHubServer) -> SAMPHubServer:
    """The astropy-compatible hub these tests use (see conftest)."""
    return hub_server


@pytest.fixture
def desk(hub: SAMPHubServer) -> Iterator[dict[str, Stand]]:
    stands = {"ds9": Stand("SAOImageDS9", hub), "topcat": Stand("topcat", hub)}
    try:
        yield stands
    finally:
        for stand in stands.values():
            stand.client.disconnect()


def send(hub: SAMPHubServer, tmp_path: Path, to: str) -> subprocess.CompletedProcess[str]:
    assert hub.lockfile is not None
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run([*sampflow_argv(), "send", "test.echo", "n=7", "--to", to,
                           "--lockfile", hub.lockfile], capture_output=True, text=True,
                          env=hub_env(home), timeout=60, check=False)


def recipients(run: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split(":")[0] for line in run.stdout.splitlines() if line.endswith(": sent")}


@pytest.mark.parametrize("to, who", [("saoimage*", "ds9"), ("SAOImageDS9", "ds9"),
                                     ("*DS9", "ds9"), ("TOPCAT", "topcat")])
def test_send_to_a_samp_name_glob(hub: SAMPHubServer, desk: dict[str, Stand], tmp_path: Path,
                                  to: str, who: str) -> None:
    run = send(hub, tmp_path, to)
    assert run.returncode == 0, run.stderr
    assert recipients(run) == {desk[who].id}
    assert desk[who].arrived.wait(30)
    assert desk[who].got == [{"n": "7"}]


def test_send_to_a_public_id(hub: SAMPHubServer, desk: dict[str, Stand], tmp_path: Path) -> None:
    run = send(hub, tmp_path, desk["topcat"].id)
    assert run.returncode == 0, run.stderr
    assert recipients(run) == {desk["topcat"].id}
    assert desk["topcat"].arrived.wait(30)


def test_send_to_a_bare_ds9_names_nobody(hub: SAMPHubServer, desk: dict[str, Stand],
                                         tmp_path: Path) -> None:
    run = send(hub, tmp_path, "ds9")  # DS9's samp.name is SAOImageDS9: no substring match
    assert run.returncode == 1
    assert "no client named 'ds9'" in run.stderr
    assert recipients(run) == set()


def test_find_client_id_follows_the_same_rule(hub: SAMPHubServer,
                                              desk: dict[str, Stand]) -> None:
    # (getRegisteredClients leaves out the caller: each stand looks the other one up)
    ds9, topcat = desk["ds9"].id, desk["topcat"].id
    from_topcat, from_ds9 = desk["topcat"].client, desk["ds9"].client
    assert find_client_id(from_topcat, "saoimageds9") == ds9
    assert find_client_id(from_topcat, "SAOImage*") == ds9
    assert find_client_id(from_topcat, ds9) == ds9
    assert find_client_id(from_ds9, "TopCat") == topcat
    assert find_client_id(from_ds9, topcat) == topcat
    with pytest.raises(SAMPClientError):
        find_client_id(from_topcat, "ds9")
    assert ds9.upper() != ds9  # public ids are matched exactly, case and all
    with pytest.raises(SAMPClientError):
        find_client_id(from_topcat, ds9.upper())
