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
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Self

from peers.process import ManagedProcess, spawn, wait_until
from samphub import Recorder, SampflowHub, hub_env

from sampflow.samp.errors import SAMPError, SAMPProxyError
from sampflow.samp.lockfile import read_lockfile_unchecked

__all__ = ["SECRET", "TEST_SHARE", "Clients", "Federation", "NatsServer", "NetLab", "free_port",
           "names", "start_in_namespace", "wait_proxy"]

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

    def __init__(self, folder: Path, args: tuple[str, ...] = (), *, addr: str = "127.0.0.1",
                 prefix: tuple[str, ...] = ()) -> None:
        self.folder = Path(folder)
        self.args = list(args)
        self.addr = addr
        self.prefix = list(prefix)
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.addr}:{self.port}"

    def _ready(self) -> bool:
        if not self.prefix:
            return _accepts(self.port)
        # In another network namespace: its own log says when it listens.
        return self.process is not None and "Server is ready" in self.process.log_tail(100_000)

    def start(self) -> Self:
        binary = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
        assert binary, "nats-server is not installed (.ci/run installs it from Debian)"
        self.process = spawn([*self.prefix, binary, "-a", self.addr, "-p", str(self.port),
                              *self.args],
                             name="nats-server", env=hub_env(self.folder), log_dir=self.folder)
        wait_until(self._ready, timeout=15, what="nats-server to listen", process=self.process)
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
    """Public id -> samp.name of every client `recorder`'s hub shows it.

    A client that unregisters between the two hub calls (a proxy of a hub that just died) is
    left out; a fault about a client still registered is raised.
    """
    client = recorder.client
    out = {}
    for cid in await client.get_registered_clients():
        try:
            meta = await client.get_metadata(cid)
        except SAMPProxyError:
            if cid in await client.get_registered_clients():
                raise
            continue
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


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class NetLab:
    """Desktops in separate network namespaces, on one virtual switch (issue 13).

    A switch namespace holds a bridge (``10.213.0.1/24``, where the NATS server listens);
    each desktop namespace is wired to it by a veth pair and has its own loopback and one
    address (``10.213.0.11``, ``.12``, ...). Nothing is configured in the namespace the tests
    run in; `down` deletes every namespace (and so every interface) it made. Names carry a
    random tag, so parallel tests do not meet.

    Parameters
    ----------
    names : sequence of str
        Desktop names.
    """

    SWITCH_IP = "10.213.0.1"

    def __init__(self, names: list[str]) -> None:
        tag = secrets.token_hex(3)
        self.tag = tag
        self.switch = f"nl{tag}sw"
        self.namespaces = {name: f"nl{tag}{name}" for name in names}
        self.ips = {name: f"10.213.0.{11 + i}" for i, name in enumerate(names)}
        self._made: list[str] = []

    def exec_prefix(self, name: str | None = None) -> tuple[str, ...]:
        """``ip netns exec NS`` for desktop `name` (the switch namespace for None)."""
        return ("ip", "netns", "exec", self.namespaces[name] if name else self.switch)

    def up(self) -> Self:
        try:
            _ip("netns", "add", self.switch)
            self._made.append(self.switch)
            _ip("-n", self.switch, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "addr", "add", f"{self.SWITCH_IP}/24", "dev", "br0")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, (name, ns) in enumerate(self.namespaces.items()):
                _ip("netns", "add", ns)
                self._made.append(ns)
                port, peer = f"v{self.tag}{i}s", f"v{self.tag}{i}d"
                _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name",
                    peer, "netns", ns)
                _ip("-n", self.switch, "link", "set", port, "master", "br0")
                _ip("-n", self.switch, "link", "set", port, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "addr", "add", f"{self.ips[name]}/24", "dev", peer)
                _ip("-n", ns, "link", "set", peer, "up")
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30,
                           check=False)
        self._made.clear()

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def start_in_namespace(hub: SampflowHub, timeout: float = 30.0) -> SampflowHub:
    """Start `hub` (made with an ``ip netns exec`` prefix) and wait for its lockfile.

    Its XML-RPC URL is on the namespace's loopback, out of this process's reach, so this waits
    for the lockfile naming the hub's PID (the prefix execs, so the PID is the hub's).
    """
    hub.spawn()
    deadline = time.monotonic() + timeout
    while True:
        if not hub.running():
            raise AssertionError(f"hub exited:\n{hub.log_tail()}")
        if hub.lockfile.is_file():
            info = read_lockfile_unchecked(hub.lockfile)
            if info.get("hub.start.pid") == str(hub.pid):
                hub.info, hub.url, hub.secret = info, info["samp.hub.xmlrpc.url"], \
                    info["samp.secret"]
                return hub
        if time.monotonic() > deadline:
            hub.kill()
            raise AssertionError(f"hub did not start in {timeout} s:\n{hub.log_tail()}")
        time.sleep(0.05)
