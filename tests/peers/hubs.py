"""Hubs and probes: lockfiles, a small XML-RPC probe client, JSAMP's hub and tools.

Part of the ``peers`` test helpers; see ``tests/peers/__init__.py``.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import xmlrpc.client
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Self

from sampflow.samp.lockfile import LockfileError, read_lockfile_unchecked

from .base import JSAMP_JAR, PeerStartError, require
from .process import (
    OWNER_VAR,
    ManagedProcess,
    owner_token,
    peer_env,
    spawn,
    stop_group,
    track_group,
    wait_until,
)

# --------------------------------------------------------------------------------------------
# Hub access from the test side (xmlrpc.client is fine here: tests only)


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> Any:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


def _proxy(url: str, timeout: float) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(url, transport=_TimeoutTransport(timeout), allow_none=False)


def _ping(lockfile: Path) -> dict[str, str] | None:
    try:
        info = read_lockfile_unchecked(lockfile)
        _proxy(info["samp.hub.xmlrpc.url"], 2.0).samp.hub.ping()
    except (OSError, KeyError, LockfileError, xmlrpc.client.Error):
        return None
    return info


def wait_for_hub(
    lockfile: Path, *, timeout: float = 30.0, process: ManagedProcess | None = None
) -> dict[str, str]:
    """Wait until ``lockfile`` exists and its hub answers ``samp.hub.ping``.

    Parameters
    ----------
    lockfile : pathlib.Path
    timeout : float
        Seconds before giving up.
    process : ManagedProcess, optional
        The hub process, to fail fast if it exits.

    Returns
    -------
    dict
        The parsed lockfile.

    Raises
    ------
    PeerStartError
    """
    return wait_until(
        lambda: _ping(lockfile), timeout=timeout, what=f"a hub at {lockfile}", process=process
    )


class ProbeClient:
    """A minimal, non-callable SAMP client driving a hub through ``xmlrpc.client``.

    Use it as a context manager: it registers on entry and unregisters on exit.

    Parameters
    ----------
    lockfile : pathlib.Path
        Lockfile of the hub (any hub).
    name : str
        ``samp.name`` declared for the probe.
    timeout : float
        Socket timeout of each XML-RPC request, in seconds.

    Attributes
    ----------
    self_id, hub_id, private_key : str
        Set once registered.
    """

    def __init__(
        self, lockfile: Path, *, name: str = "sampflow-test-probe", timeout: float = 10.0
    ) -> None:
        self.lockfile = Path(lockfile)
        self.name = name
        self.timeout = timeout
        self._info = read_lockfile_unchecked(self.lockfile)
        self.url = self._info["samp.hub.xmlrpc.url"]
        self.private_key = ""
        self.self_id = ""
        self.hub_id = ""

    def _hub(self, timeout: float | None = None) -> Any:
        return _proxy(self.url, self.timeout if timeout is None else timeout).samp.hub

    def __enter__(self) -> Self:
        reg = self._hub().register(self._info["samp.secret"])
        self.private_key = reg["samp.private-key"]
        self.self_id = reg["samp.self-id"]
        self.hub_id = reg["samp.hub-id"]
        try:
            self._hub().declareMetadata(self.private_key, {"samp.name": self.name})
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Unregister from the hub (ignoring a hub that has already gone)."""
        if self.private_key:
            with contextlib.suppress(OSError, xmlrpc.client.Error):
                self._hub(timeout=5.0).unregister(self.private_key)
            self.private_key = ""

    def clients(self) -> dict[str, dict[str, Any]]:
        """Return ``public id -> metadata`` of every other registered client (hub included).

        A client that unregisters between the two hub calls (a federated hub's proxy, say)
        is left out rather than failing the call.
        """
        hub = self._hub()
        found = {}
        for cid in hub.getRegisteredClients(self.private_key):
            try:
                found[cid] = hub.getMetadata(self.private_key, cid)
            except xmlrpc.client.Fault:
                if cid in hub.getRegisteredClients(self.private_key):
                    raise  # a fault about a client still there is a real one
        return found

    def subscriptions(self, client_id: str) -> dict[str, Any]:
        """Return the subscriptions map of ``client_id``."""
        return self._hub().getSubscriptions(self.private_key, client_id)

    def find(self, samp_name: str) -> list[str]:
        """Return public ids of clients whose ``samp.name`` equals ``samp_name``."""
        return [cid for cid, meta in self.clients().items() if meta.get("samp.name") == samp_name]

    def call_and_wait(
        self,
        recipient: str,
        mtype: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send a message with ``samp.hub.callAndWait`` and return the response map.

        Parameters
        ----------
        recipient : str
            Public id of the receiving client.
        mtype : str
        params : mapping, optional
        timeout : float
            SAMP timeout in seconds (the socket timeout is a little longer).

        Returns
        -------
        dict
            The response: ``samp.status``, ``samp.result`` or ``samp.error``.
        """
        message = {"samp.mtype": mtype, "samp.params": dict(params or {})}
        return self._hub(timeout=timeout + 10.0).callAndWait(
            self.private_key, recipient, message, str(int(timeout))
        )

    def notify(self, recipient: str, mtype: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification with ``samp.hub.notify``."""
        message = {"samp.mtype": mtype, "samp.params": dict(params or {})}
        self._hub().notify(self.private_key, recipient, message)


def wait_for_client(
    lockfile: Path,
    samp_name: str,
    *,
    timeout: float = 60.0,
    mtype: str | None = None,
    process: ManagedProcess | None = None,
    exclude: Sequence[str] = (),
) -> str:
    """Wait until a client called ``samp_name`` is registered with the hub of ``lockfile``.

    A probe client stays registered during the wait and unregisters afterwards.

    Parameters
    ----------
    lockfile : pathlib.Path
    samp_name : str
        Expected ``samp.name`` metadata (``"SAOImageDS9"``, ``"topcat"``, ``"Aladin"``).
    timeout : float
        Seconds before giving up.
    mtype : str, optional
        Also wait until the client is subscribed to this MType (i.e. ready to receive it).
    process : ManagedProcess, optional
        The peer's process, to fail fast if it exits.
    exclude : sequence of str
        Public ids to ignore (clients of that name registered before this peer started).

    Returns
    -------
    str
        The client's public id.

    Raises
    ------
    PeerStartError
    """
    with ProbeClient(lockfile) as probe:

        def ready() -> str | None:
            for cid in probe.find(samp_name):
                if cid in exclude:
                    continue
                if mtype is None or mtype in probe.subscriptions(cid):
                    return cid
            return None

        what = f"{samp_name} to register" + (f" and subscribe to {mtype}" if mtype else "")
        return str(wait_until(ready, timeout=timeout, what=what, process=process, interval=0.25))


# --------------------------------------------------------------------------------------------
# Hubs


class SampHub(Protocol):
    """What peers need from a hub: the path of its Standard Profile lockfile."""

    @property
    def lockfile(self) -> Path: ...


@dataclass(frozen=True)
class HubHandle:
    """A running hub, whoever started it.

    Attributes
    ----------
    lockfile : pathlib.Path
        Its Standard Profile lockfile (peers are pointed at this).
    url : str
        ``samp.hub.xmlrpc.url`` from the lockfile.
    secret : str
        ``samp.secret`` from the lockfile.
    process : ManagedProcess or None
        The hub's process when started here; None for a hub running elsewhere (e.g. in-process).
    started_in : float
        Seconds from start until it answered ``samp.hub.ping``.
    """

    lockfile: Path
    url: str
    secret: str
    process: ManagedProcess | None = None
    started_in: float = 0.0

    @classmethod
    def from_lockfile(cls, lockfile: Path, *, timeout: float = 30.0) -> HubHandle:
        """Wait for the hub of any lockfile (e.g. sampflow's) and describe it.

        Parameters
        ----------
        lockfile : pathlib.Path
        timeout : float
            Seconds to wait for the hub to answer ``samp.hub.ping``.
        """
        info = wait_for_hub(lockfile, timeout=timeout)
        return cls(Path(lockfile), info["samp.hub.xmlrpc.url"], info["samp.secret"])


@contextlib.contextmanager
def jsamp_hub(
    lockfile: Path,
    *,
    home: Path,
    log_dir: Path | None = None,
    profiles: str = "std",
    timeout: float = 30.0,
) -> Iterator[HubHandle]:
    """Run JSAMP's hub (``hub -mode no-gui``), writing its lockfile at ``lockfile``.

    Parameters
    ----------
    lockfile : pathlib.Path
        Where the hub writes its lockfile; it must not exist yet.
    home : pathlib.Path
        Temporary home (``-Duser.home``).
    log_dir : pathlib.Path, optional
        Directory for the hub's log; defaults to ``home``.
    profiles : str
        ``-profiles`` argument (``"std"``, or ``"std,web"``).
    timeout : float
        Seconds to wait for the hub to answer ``samp.hub.ping``.

    Yields
    ------
    HubHandle
        Stopped (by process group) when the block exits.

    Raises
    ------
    PeerUnavailable, PeerStartError
    """
    require("java", str(JSAMP_JAR))
    lockfile = Path(lockfile).resolve()
    Path(home).mkdir(parents=True, exist_ok=True)
    if lockfile.exists():
        raise PeerStartError(f"lockfile {lockfile} already exists")
    t0 = time.monotonic()
    proc = spawn(
        ["java", "-jar", str(JSAMP_JAR), "hub", "-mode", "no-gui", "-profiles", profiles],
        name="jsamp-hub",
        env=peer_env(home=home, lockfile=lockfile),
        log_dir=Path(log_dir or home),
    )
    try:
        info = wait_for_hub(lockfile, timeout=timeout, process=proc)
        yield HubHandle(
            lockfile,
            info["samp.hub.xmlrpc.url"],
            info["samp.secret"],
            proc,
            time.monotonic() - t0,
        )
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------------
# JSAMP command-line tools


class ToolResult(NamedTuple):
    """Outcome of :func:`run_jsamp_tool`: unpacks as ``(returncode, stdout, stderr)``."""

    returncode: int
    stdout: str
    stderr: str


def run_jsamp_tool(
    tool: str,
    *args: str,
    lockfile: Path,
    home: Path,
    timeout: float = 120.0,
    java_options: Sequence[str] = (),
) -> ToolResult:
    """Run a JSAMP tool (``hubtester``, ``calcstorm``, ``messagesender``, ...) against a hub.

    Parameters
    ----------
    tool : str
        JSAMP command, e.g. ``"calcstorm"``.
    *args : str
        Its arguments, e.g. ``"-nclient", "10", "-nquery", "100", "-mode", "sync"``
        (``-help`` lists them).
    lockfile : pathlib.Path
        Lockfile of the hub to test (any hub).
    home : pathlib.Path
        Temporary home (``-Duser.home``).
    timeout : float
        Seconds before the tool's process group is killed.
    java_options : sequence of str
        Extra JVM options.

    Returns
    -------
    ToolResult
        ``(returncode, stdout, stderr)``.

    Raises
    ------
    PeerUnavailable
        If java or the JSAMP jar is missing.
    subprocess.TimeoutExpired
        After killing the process group when ``timeout`` passes (with the output so far).

    Example (not run: it starts real programs)::

        code, out, err = run_jsamp_tool("hubtester", lockfile=lock, home=tmp)
    """
    require("java", str(JSAMP_JAR))
    Path(home).mkdir(parents=True, exist_ok=True)
    argv = ["java", "-jar", str(JSAMP_JAR), tool, *args]
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **peer_env(home=home, lockfile=lockfile, java_options=java_options),
            OWNER_VAR: owner_token(),
        },
        cwd=home,
        start_new_session=True,
    )
    track_group(popen.pid, f"jsamp {tool}")
    try:
        try:
            out, err = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(popen.pid, popen, grace=2.0)
            out, err = popen.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, out, err) from None
        return ToolResult(
            popen.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )
    finally:
        stop_group(popen.pid, popen, grace=2.0)
