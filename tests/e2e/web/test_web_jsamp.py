"""JSAMP's ``hubtester`` against ``sampflow hub`` with the Web Profile on, and through it.

Through the Web Profile, JSAMP's clients connect to the standard's fixed port 21012
(``SAMP_HUB=web-appname:HubTester``), so that test holds an exclusive file lock while it runs:
pytest-xdist workers take turns. The hub consents automatically
(``--web-allow-all-for-testing``) and lets web clients send every MType
(``--web-harmless '*'``): hubtester's ``test.*`` MTypes are not on the harmless list, which
JSAMP's own web hub also enforces by default.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import peers
import pytest
from browser import web_port_of
from samphub import SampflowHub

pytestmark = [pytest.mark.peer, pytest.mark.timeout(300)]

WEB_PORT = 21012


@contextlib.contextmanager
def port_21012_lock(timeout: float = 240.0) -> Iterator[None]:
    """Hold the machine-wide lock for tests that need port 21012 (blocks until free)."""
    path = Path(tempfile.gettempdir()) / "sampflow-tests-web-port-21012.lock"
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_hubtester_standard_profile_with_web_profile_on(tmp_path: Path, run_jsamp) -> None:  # type: ignore[no-untyped-def]
    with SampflowHub(tmp_path / "lock", log_dir=tmp_path, args=["--web-port", "0"]) as hub:
        code, out, err = run_jsamp("hubtester", hub=hub, timeout=240)
        assert code == 0, f"hubtester failed:\n{out[-3000:]}\n{err[-3000:]}\n{hub.log_tail()}"


def test_hubtester_through_web_profile(tmp_path: Path, peer_policy) -> None:  # type: ignore[no-untyped-def]
    try:
        peers.require("java", str(peers.JSAMP_JAR))
    except peers.PeerUnavailable as exc:
        peer_policy.unavailable(exc)
    home = tmp_path / "home"
    home.mkdir()
    with port_21012_lock():
        # Other hubs started without --web-port 0 (benchmarks, other tests) may hold the
        # port for a while: wait for it, within bounds.
        deadline = time.monotonic() + 180
        while not port_free(WEB_PORT) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert port_free(WEB_PORT), "port 21012 stayed taken by a process outside this test"
        args = ["--web-port", str(WEB_PORT), "--web-allow-all-for-testing", "--web-harmless", "*"]
        with SampflowHub(tmp_path / "lock", log_dir=tmp_path, args=args) as hub:
            assert web_port_of(hub) == WEB_PORT
            env = {**peers.peer_env(home=home), "SAMP_HUB": "web-appname:HubTester"}
            tester = peers.spawn(["java", "-jar", str(peers.JSAMP_JAR), "hubtester"],
                                 name="hubtester-web", env=env, log_dir=tmp_path)
            try:
                code = tester.popen.wait(240)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                tester.stop()
            assert code == 0, (f"hubtester through the Web Profile: status {code}\n"
                               f"{tester.log_tail(6000)}\n--- hub ---\n{hub.log_tail()}")
            assert hub.running()
            assert "consenting without asking" in hub.log_tail(200000)

