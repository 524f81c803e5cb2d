"""Smoke tests of the real-peer fixtures (``tests/peers/``) against JSAMP's own hub.

They prove the fixtures, not sampflow: later the same fixtures are aimed at sampflow's hub by
overriding ``samp_hub``. Each test records how long its peer took to start
(``record_property``, visible in ``--junitxml`` output) and prints it (``-s``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import peers as peerlib
import pytest

from sampflow.samp.lockfile import read_lockfile_unchecked

pytestmark = pytest.mark.peer

RecordProperty = Callable[[str, object], None]


def _report(record_property: RecordProperty, what: str, seconds: float) -> None:
    record_property(f"{what}_start_s", round(seconds, 2))
    print(f"{what} ready in {seconds:.2f} s")


def test_jsamp_hub_answers_ping(
    jsamp_hub: peerlib.HubHandle, record_property: RecordProperty
) -> None:
    _report(record_property, "jsamp_hub", jsamp_hub.started_in)
    assert jsamp_hub.lockfile.is_file()
    info = read_lockfile_unchecked(jsamp_hub.lockfile)
    assert info["samp.hub.xmlrpc.url"] == jsamp_hub.url
    assert info["samp.secret"] == jsamp_hub.secret
    with peerlib.ProbeClient(jsamp_hub.lockfile) as probe:
        assert probe.hub_id in probe.clients()
    # The lockfile is where we said, never the real ~/.samp.
    assert jsamp_hub.lockfile.parent != Path.home()


def test_hubtester_passes_against_jsamp_hub(run_jsamp, samp_hub) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_jsamp("hubtester", hub=samp_hub, timeout=180)
    assert code == 0, f"hubtester failed ({code}):\n{out[-3000:]}\n{err[-3000:]}"


def test_calcstorm_runs(run_jsamp, samp_hub) -> None:  # type: ignore[no-untyped-def]
    result = run_jsamp(
        "calcstorm", "-nclient", "3", "-nquery", "20", "-mode", "sync", hub=samp_hub, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Elapsed time" in result.stdout + result.stderr


def test_tool_timeout_kills_process_group(peers, samp_hub) -> None:  # type: ignore[no-untyped-def]
    # snooper runs until killed: the runner must stop it and leave nothing behind.
    before = peerlib.live_groups()
    with pytest.raises(subprocess.TimeoutExpired):
        peers.run_jsamp_tool("snooper", hub=samp_hub, timeout=3)
    assert peerlib.live_groups() == before


def test_xvfb_display_is_private(xvfb_display: peerlib.XDisplay) -> None:
    assert xvfb_display.display.startswith(":")
    assert xvfb_display.process.running()
    assert "DISPLAY" not in peerlib.peer_env(home=Path("/nonexistent"))


def test_ds9_registers_and_answers_ds9_get(
    samp_hub: peerlib.SampHub,
    ds9_peer: peerlib.PeerHandle,
    record_property: RecordProperty,
) -> None:
    _report(record_property, "ds9", ds9_peer.started_in)
    with peerlib.ProbeClient(samp_hub.lockfile) as probe:
        meta = probe.clients()[ds9_peer.public_id]
        assert meta["samp.name"] == "SAOImageDS9"
        response = probe.call_and_wait(
            ds9_peer.public_id, "ds9.get", {"cmd": "version"}, timeout=30
        )
    assert response["samp.status"] == "samp.ok", response
    assert "ds9" in str(response["samp.result"].get("value", "")).lower(), response


def test_topcat_registers(
    samp_hub: peerlib.SampHub,
    topcat_peer: peerlib.PeerHandle,
    record_property: RecordProperty,
) -> None:
    _report(record_property, "topcat", topcat_peer.started_in)
    with peerlib.ProbeClient(samp_hub.lockfile) as probe:
        assert probe.clients()[topcat_peer.public_id]["samp.name"] == "topcat"
        assert "table.load.votable" in probe.subscriptions(topcat_peer.public_id)


def test_aladin_registers(
    samp_hub: peerlib.SampHub,
    aladin_peer: peerlib.PeerHandle,
    record_property: RecordProperty,
) -> None:
    _report(record_property, "aladin", aladin_peer.started_in)
    with peerlib.ProbeClient(samp_hub.lockfile) as probe:
        assert probe.clients()[aladin_peer.public_id]["samp.name"] == "Aladin"
        pointed = probe.call_and_wait(
            aladin_peer.public_id, "coord.pointAt.sky", {"ra": "83.82", "dec": "-5.39"}, timeout=30
        )
        assert pointed["samp.status"] == "samp.ok", pointed
        where = probe.call_and_wait(aladin_peer.public_id, "coord.get.sky", {}, timeout=30)
    assert where["samp.status"] == "samp.ok", where
    assert float(where["samp.result"]["ra"]) == pytest.approx(83.82, abs=1e-3)
    assert float(where["samp.result"]["dec"]) == pytest.approx(-5.39, abs=1e-3)


def test_peer_is_stopped_after_its_block(peers: peerlib.PeerLauncher, tmp_path: Path) -> None:
    """A peer started with the context manager is gone (whole process group) after the block,
    also when the block raises."""
    hub = peers.jsamp_hub()
    display = peers.x_display()
    with (
        pytest.raises(RuntimeError, match="boom"),
        peerlib.ds9(hub.lockfile, display=display, home=tmp_path / "ds9") as peer,
    ):
        pgid = peer.pid
        raise RuntimeError("boom")
    assert pgid not in peerlib.live_groups()
    # (A peer killed by signal does not unregister: the hub keeps listing it until a delivery
    # to it fails. Tests that care about the client list should use a fresh hub.)


@pytest.fixture(scope="module")
def shared_hub_and_ds9(module_peers: peerlib.PeerLauncher):  # type: ignore[no-untyped-def]
    """Module-scoped pattern: one hub and one DS9 shared by several tests."""
    hub = module_peers.jsamp_hub()
    return hub, module_peers.ds9(hub)


@pytest.mark.parametrize("cmd", ["version", "mode"])
def test_module_scoped_ds9_is_shared(shared_hub_and_ds9, cmd: str) -> None:  # type: ignore[no-untyped-def]
    hub, ds9 = shared_hub_and_ds9
    assert ds9.process.running()
    with peerlib.ProbeClient(hub.lockfile) as probe:
        response = probe.call_and_wait(ds9.public_id, "ds9.get", {"cmd": cmd}, timeout=30)
    assert response["samp.status"] == "samp.ok", response
