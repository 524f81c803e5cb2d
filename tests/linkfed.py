"""A real NATS server and a federation of ``sampflow link`` hubs, for tests (issue 13).

Plain Python, no pytest import::

    with NatsServer(tmp_path) as nats, Federation(tmp_path, nats.url, "A", "B", "C") as fed:
        fed["A"].lockfile             # each hub is a `samphub.SampflowHub` on its own lockfile
        nats.restart()                # same port, new process
        fed["B"].kill()               # SIGKILL by PID

Every process is started in its own session and stopped by its PID (`peers.process.spawn`
for ``nats-server``; `samphub.SampflowHub` for the hubs).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Self

from peers.process import ManagedProcess, spawn, wait_until
from samphub import Recorder, SampflowHub, hub_env

from sampflow.samp.errors import SAMPError

__all__ = ["SECRET", "TEST_SHARE", "Clients", "Federation", "NatsServer", "free_port", "names", "wait_proxy"]

#: The shared secret of test federations.
SECRET = "test-federation-secret"

#: What the integration-test hubs share: the defaults' kinds, test MTypes, and ``script.*``
#: (which must still never cross).
TEST_SHARE = ["table.*", "image.*", "coord.*", "samp.app.ping", "test.*", "script.*"]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class NatsServer:
    """One ``nats-server`` on a free loopback port.

    Parameters
    ----------
    folder : Path
        For its log.
    args : sequence of str
        More ``nats-server`` options (``--user``, ``--pass``, ...).
    """

    def __init__(self, folder: Path, args: tuple[str, ...] = ()) -> None:
        self.folder = Path(folder)
        self.args = list(args)
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> Self:
        binary = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
        assert binary, "nats-server is not installed (.ci/run installs it from Debian)"
        self.process = spawn([binary, "-a", "127.0.0.1", "-p", str(self.port), *self.args],
                             name="nats-server", env=hub_env(self.folder), log_dir=self.folder)
        wait_until(lambda: _accepts(self.port), timeout=15, what="nats-server to listen",
                   process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server, wait `down_for` seconds, start it again on the same port."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Federation:
    """Hubs started with ``sampflow link NATS_URL --name NAME``, one lockfile each.

    Parameters
    ----------
    folder : Path
        One sub-folder per hub (lockfile, log, home).
    nats_url : str
        The NATS server.
    *names : str
        Hub names.
    share : list of str, optional
        ``--share`` patterns for every hub.
    verbose : bool
        Run the hubs with ``-v``.
    secret : str
        The shared secret (``SAMPFLOW_LINK_SECRET``).
    """

    def __init__(self, folder: Path, nats_url: str, *names: str,
                 share: list[str] | None = None, verbose: bool = True,
                 secret: str = SECRET) -> None:
        self.hubs: dict[str, SampflowHub] = {}
        for name in names:
            sub = Path(folder) / f"hub-{name}"
            sub.mkdir(parents=True, exist_ok=True)
            self.hubs[name] = SampflowHub(
                sub / "lockfile", log_dir=sub, verbose=verbose,
                command=["link", nats_url, "--name", name],
                args=["--share", *share] if share else [],
                env={"SAMPFLOW_LINK_SECRET": secret})

    def __getitem__(self, name: str) -> SampflowHub:
        return self.hubs[name]

    def start(self) -> Self:
        try:
            for hub in self.hubs.values():
                hub.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for hub in self.hubs.values():
            if hub.running():
                hub.stop(check_lockfile=False)

    def logs(self, chars: int = 4000) -> str:
        """The end of every hub's log."""
        return "\n".join(f"--- hub {n}:\n{h.log_tail(chars)}" for n, h in self.hubs.items())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Clients:
    """`samphub.Recorder` clients connected to the hubs of a `Federation`; `close` them all."""

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.all: list[Recorder] = []

    async def on(self, hub: str, name: str, subscriptions: dict | None = None,
                 respond: Any = None) -> Recorder:
        """A recorder called `name` on hub `hub`, with `subscriptions` declared."""
        recorder = await Recorder(name, subscriptions, respond).connect(self.fed[hub].lockfile)
        await recorder.client.declare_metadata({"samp.name": name})
        self.all.append(recorder)
        return recorder

    async def close(self) -> None:
        for recorder in self.all:
            with contextlib.suppress(SAMPError, OSError):
                await recorder.close()


async def names(recorder: Recorder) -> dict[str, str]:
    """Public id -> samp.name of every client `recorder`'s hub shows it."""
    client = recorder.client
    out = {}
    for cid in await client.get_registered_clients():
        meta = await client.get_metadata(cid)
        out[cid] = meta.get("samp.name", "")
    return out


async def wait_proxy(recorder: Recorder, name: str, timeout: float = 20.0) -> str:
    """Wait until `recorder`'s hub shows a client called `name`; returns its public id."""
    async with asyncio.timeout(timeout):
        while True:
            found = [cid for cid, n in (await names(recorder)).items() if n == name]
            if found:
                return found[0]
            await asyncio.sleep(0.1)
