"""Start and stop real SAMP peers for tests: Xvfb, JSAMP's hub and tools, DS9, TOPCAT, Aladin.

Everything here is plain Python (no pytest import) so that it can be used from fixtures,
benchmarks or an interactive session alike. ``tests/conftest.py`` wraps it in fixtures.

Rules every helper follows
--------------------------
* **Parallel-safe.** No fixed port, display number or temporary path: Xvfb chooses its own
  display (``-displayfd``), hubs choose their own ports, and every directory is given by the
  caller (``tmp_path`` in tests).
* **Hermetic.** A peer only ever sees a temporary ``HOME`` (and ``-Duser.home`` for Java) and
  the lockfile it is given; the real ``~/.samp`` is never read or written.
* **Hub-agnostic.** Peers take the path of a Standard Profile lockfile, whatever hub wrote it
  (JSAMP's today, sampflow's later); see :class:`HubHandle`.
* **Nothing left behind.** Each process starts in its own session (``start_new_session=True``)
  and is stopped by signalling its process group: SIGTERM, then SIGKILL after a grace period.
  Context managers stop their process in ``finally``, so a failing test still cleans up.
  Process groups that were never confirmed empty are listed by :func:`surviving_processes`
  and killed by :func:`kill_survivors` (also run at interpreter exit).

Exceptions
----------
::

    PeerError                 base class
    +-- PeerUnavailable       a program or jar is not installed (tests may skip or fail)
    +-- PeerStartError        a peer died, or did not become ready before its deadline

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:                       # doctest: +SKIP
...     tmp = Path(tmp)
...     with jsamp_hub(tmp / "lock", home=tmp) as hub, xvfb(tmp) as x:
...         with ds9(hub.lockfile, display=x.display, home=tmp) as peer:
...             with ProbeClient(hub.lockfile) as probe:
...                 probe.call_and_wait(peer.public_id, "ds9.get", {"cmd": "version"})
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Self

__all__ = [
    "JSAMP_JAR",
    "PEERS",
    "HubHandle",
    "ManagedProcess",
    "PeerError",
    "PeerHandle",
    "PeerLauncher",
    "PeerSpec",
    "PeerStartError",
    "PeerUnavailable",
    "ProbeClient",
    "SampHub",
    "ToolResult",
    "XDisplay",
    "aladin",
    "descendants",
    "ds9",
    "jsamp_hub",
    "kill_survivors",
    "live_groups",
    "missing",
    "peer_env",
    "read_lockfile",
    "reap_orphans",
    "require",
    "run_jsamp_tool",
    "spawn",
    "start_peer",
    "surviving_processes",
    "topcat",
    "wait_for_client",
    "wait_for_hub",
    "wait_until",
    "xvfb",
]

#: JSAMP's jar (Debian package ``jsamp``); override with ``SAMPFLOW_JSAMP_JAR``.
JSAMP_JAR = Path(os.environ.get("SAMPFLOW_JSAMP_JAR", "/usr/share/java/jsamp.jar"))

#: Seconds between SIGTERM and SIGKILL when stopping a process group.
DEFAULT_GRACE = 5.0

_POLL_INTERVAL = 0.1


# --------------------------------------------------------------------------------------------
# Errors


class PeerError(Exception):
    """Base class of every error raised by this module."""


class PeerUnavailable(PeerError):
    """A program or file a peer needs is not installed.

    Parameters
    ----------
    missing : sequence of str
        The programs or paths that were not found.
    """

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(
            "not installed: " + ", ".join(self.missing) + " (install them as .ci/run does)"
        )


class PeerStartError(PeerError):
    """A peer exited early, or did not become ready before its deadline."""


def missing(*names: str) -> PeerUnavailable | None:
    """Return a :class:`PeerUnavailable` naming the programs or paths not installed, or None.

    Parameters
    ----------
    *names : str
        Program names looked up on ``PATH``, or absolute file paths.
    """
    absent = [n for n in names if not (Path(n).exists() if os.path.isabs(n) else shutil.which(n))]
    return PeerUnavailable(absent) if absent else None


def require(*names: str) -> None:
    """Check that programs (looked up on ``PATH``) or absolute paths exist.

    Parameters
    ----------
    *names : str
        Program names such as ``"ds9"``, or absolute file paths such as ``"/usr/share/java/x.jar"``.

    Raises
    ------
    PeerUnavailable
        Listing every name that is missing.
    """
    exc = missing(*names)
    if exc is not None:
        raise exc


# --------------------------------------------------------------------------------------------
# Processes and process groups

# Process groups started by this interpreter and not yet confirmed empty.
_LIVE_GROUPS: dict[int, str] = {}


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """Return ``(pid, command)`` of the live (non-zombie) processes in a process group."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: best effort via signal 0 (counts zombies too)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [(pgid, "?")]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, tail = stat.rpartition(")")
        fields = tail.split()
        # fields: state, ppid, pgrp, ...
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append((int(entry.name), head.partition("(")[2]))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_group(pgid: int, popen: subprocess.Popen[Any] | None, grace: float) -> bool:
    """SIGTERM a process group, SIGKILL it after ``grace`` s; return True once it is empty."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not _group_members(pgid):
            break
        _signal_group(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if popen is not None:
                popen.poll()  # reap the direct child so that it does not linger as a zombie
            if not _group_members(pgid):
                break
            time.sleep(0.05)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5.0)
    empty = not _group_members(pgid)
    if empty:
        _LIVE_GROUPS.pop(pgid, None)
    return empty


def surviving_processes() -> list[tuple[int, str]]:
    """List processes still alive in any process group this interpreter started.

    Returns
    -------
    list of (int, str)
        ``(pid, command)`` pairs; empty when everything was stopped.
    """
    out = []
    for pgid in list(_LIVE_GROUPS):
        members = _group_members(pgid)
        if members:
            out.extend(members)
        else:
            _LIVE_GROUPS.pop(pgid, None)
    return out


def live_groups() -> dict[int, str]:
    """Return ``pgid -> label`` of the process groups started here and not yet confirmed empty."""
    surviving_processes()  # drops groups that have emptied meanwhile
    return dict(_LIVE_GROUPS)


def kill_survivors(grace: float = 1.0) -> list[tuple[int, str]]:
    """Stop every process group this interpreter started that is still alive.

    Parameters
    ----------
    grace : float
        Seconds between SIGTERM and SIGKILL.

    Returns
    -------
    list of (int, str)
        The ``(pid, command)`` pairs that were still alive before this call.
    """
    survivors = surviving_processes()
    for pgid in list(_LIVE_GROUPS):
        _stop_group(pgid, None, grace)
    return survivors


atexit.register(kill_survivors)


def descendants(pid: int | None = None) -> list[tuple[int, str]]:
    """List live (non-zombie) descendants of a process, by parent links in ``/proc``.

    Multiprocessing's helper processes (``resource_tracker``, ``forkserver``), which live
    until their interpreter exits by design, are left out. Linux only; empty elsewhere.

    Parameters
    ----------
    pid : int, optional
        Defaults to this process.

    Returns
    -------
    list of (int, str)
        ``(pid, command line)`` pairs.
    """
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        cmdlines[int(entry.name)] = cmd.strip()
    found, todo = [], list(children.get(root, []))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, []))
        if "multiprocessing" not in cmdlines[child]:
            found.append((child, cmdlines[child]))
    return found


#: Environment variable marking every process started here with its owner ``pid:starttime``,
#: so that :func:`reap_orphans` can find peers whose test process was killed outright.
OWNER_VAR = "SAMPFLOW_TEST_PEER_OWNER"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22: start time since boot


def _owner_token() -> str:
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def reap_orphans(grace: float = 1.0) -> list[tuple[int, str]]:
    """Kill peers left behind by test processes that no longer exist (e.g. SIGKILLed workers).

    Only processes carrying :data:`OWNER_VAR` in their environment are considered, and only
    when the owner named there (pid and start time) is gone. Linux only; no-op elsewhere.

    Parameters
    ----------
    grace : float
        Seconds between SIGTERM and SIGKILL.

    Returns
    -------
    list of (int, str)
        ``(pid, command)`` of the orphans that were found and stopped.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    marker = OWNER_VAR.encode() + b"="
    orphans: dict[int, list[tuple[int, str]]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        token = next((v[len(marker) :] for v in environ.split(b"\0") if v.startswith(marker)), None)
        if token is None:
            continue
        owner_pid, _, owner_start = token.decode().partition(":")
        if owner_pid.isdigit() and _start_time(int(owner_pid)) == owner_start:
            continue  # its owner is alive: not an orphan
        head, _, tail = stat.rpartition(")")
        fields = tail.split()
        if fields[0] in ("Z", "X"):
            continue
        orphans.setdefault(int(fields[2]), []).append((int(entry.name), head.partition("(")[2]))
    for pgid in orphans:
        _stop_group(pgid, None, grace)
    return [member for members in orphans.values() for member in members]


@dataclass
class ManagedProcess:
    """A process started by :func:`spawn`, in its own session and process group.

    Attributes
    ----------
    name : str
        A short label used in messages (``"ds9"``, ``"jsamp-hub"``).
    popen : subprocess.Popen
        The underlying process; its pid is also the process group id.
    log_path : pathlib.Path
        File receiving the process's stdout and stderr.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Process id of the started program (and id of its process group)."""
        return self.popen.pid

    def running(self) -> bool:
        """Return True while the started program itself has not exited."""
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """Return the last ``chars`` characters of the process's combined output."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", "replace")

    def check_alive(self) -> None:
        """Raise :class:`PeerStartError` (with the log tail) if the program has exited."""
        code = self.popen.poll()
        if code is not None:
            raise PeerStartError(
                f"{self.name} (pid {self.pid}) exited with status {code}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Raises
        ------
        PeerError
            If some process of the group is still alive after SIGKILL.
        """
        if not _stop_group(self.pid, self.popen, grace):
            raise PeerError(f"{self.name}: process group {self.pid} survived SIGKILL")


def spawn(
    argv: Sequence[str],
    *,
    name: str,
    env: Mapping[str, str],
    log_dir: Path,
    pass_fds: Sequence[int] = (),
) -> ManagedProcess:
    """Start a program in a new session, with its output going to a log file.

    Parameters
    ----------
    argv : sequence of str
        Program and arguments (never a shell string).
    name : str
        Label for messages and the log file name.
    env : mapping
        Complete environment of the program (see :func:`peer_env`).
    log_dir : pathlib.Path
        Directory for ``<name>-<pid>.log`` (created if needed); also the working directory.
    pass_fds : sequence of int
        File descriptors to keep open in the child.

    Returns
    -------
    ManagedProcess
        Stop it with :meth:`ManagedProcess.stop`, in a ``finally`` block.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, OWNER_VAR: _owner_token()},
            cwd=log_dir,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    _LIVE_GROUPS[popen.pid] = name
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = _POLL_INTERVAL,
) -> Any:
    """Poll ``predicate`` until it returns a truthy value, with a deadline.

    Parameters
    ----------
    predicate : callable
        Called without arguments; its first truthy result is returned.
    timeout : float
        Seconds before giving up.
    what : str
        Description used in the error message ("DS9 to register").
    process : ManagedProcess, optional
        If given, fail at once when it exits, and include its log in errors.
    interval : float
        Seconds between polls.

    Returns
    -------
    object
        The first truthy value returned by ``predicate``.

    Raises
    ------
    PeerStartError
        When the deadline passes or ``process`` exits first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None:
            process.check_alive()
        if time.monotonic() >= deadline:
            log = f"\nlog {process.log_path}:\n{process.log_tail()}" if process else ""
            raise PeerStartError(f"timed out after {timeout:g} s waiting for {what}{log}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Environment


def peer_env(
    *,
    home: Path,
    lockfile: Path | None = None,
    display: str | None = None,
    java_options: Sequence[str] = (),
) -> dict[str, str]:
    """Build a hermetic environment for a peer.

    Parameters
    ----------
    home : pathlib.Path
        Temporary home directory: ``HOME``, the ``XDG_*`` directories and Java's
        ``-Duser.home`` (through ``JAVA_TOOL_OPTIONS``, which launcher scripts pass on; the
        JVM then prints "Picked up JAVA_TOOL_OPTIONS" on stderr). Java clients also get
        ``-Djsamp.server.port=0`` so that none binds JSAMP's default fixed port.
    lockfile : pathlib.Path, optional
        Hub lockfile, announced as ``SAMP_HUB=std-lockurl:file://<abs path>``.
    display : str, optional
        X display such as ``":3"``; without it ``DISPLAY`` is removed.
    java_options : sequence of str
        Extra JVM options appended to ``JAVA_TOOL_OPTIONS``.

    Returns
    -------
    dict
        A copy of ``os.environ`` with the above set, and inherited ``SAMP_HUB``,
        ``JAVA_TOOL_OPTIONS``, ``_JAVA_OPTIONS`` and ``DISPLAY`` replaced or removed.
    """
    home = Path(home).resolve()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "SAMP_HUB",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "DISPLAY",
            "XAUTHORITY",
        )
    }
    env["HOME"] = str(home)
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        env[var] = str(home / sub)
    # jsamp.server.port=0: JSAMP clients (TOPCAT...) would otherwise try the fixed port 2525.
    env["JAVA_TOOL_OPTIONS"] = " ".join(
        [f"-Duser.home={home}", "-Djsamp.server.port=0", *java_options]
    )
    if lockfile is not None:
        env["SAMP_HUB"] = "std-lockurl:" + Path(lockfile).resolve().as_uri()
    if display is not None:
        env["DISPLAY"] = display
    return env


# --------------------------------------------------------------------------------------------
# Xvfb


@dataclass(frozen=True)
class XDisplay:
    """A running virtual X server.

    Attributes
    ----------
    display : str
        Value for ``DISPLAY``, e.g. ``":7"``.
    process : ManagedProcess
        The Xvfb process.
    """

    display: str
    process: ManagedProcess


@contextlib.contextmanager
def xvfb(
    log_dir: Path, *, screen: str = "1280x1024x24", timeout: float = 20.0
) -> Iterator[XDisplay]:
    """Run ``Xvfb`` on a display number it picks itself (``-displayfd``).

    Parameters
    ----------
    log_dir : pathlib.Path
        Directory for Xvfb's log.
    screen : str
        Geometry and depth of screen 0.
    timeout : float
        Seconds to wait for Xvfb to report its display.

    Yields
    ------
    XDisplay
        Stopped (by process group) when the block exits.

    Raises
    ------
    PeerUnavailable
        If ``Xvfb`` is not installed.
    PeerStartError
        If Xvfb exits or reports no display in time.
    """
    require("Xvfb")
    read_fd, write_fd = os.pipe()
    try:
        proc = spawn(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
            name="xvfb",
            env=peer_env(home=Path(log_dir)),
            log_dir=Path(log_dir),
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    try:
        try:
            number = _read_line(read_fd, timeout, proc)
        finally:
            os.close(read_fd)
        yield XDisplay(display=f":{number}", process=proc)
    finally:
        proc.stop()


def _read_line(fd: int, timeout: float, proc: ManagedProcess) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PeerStartError(f"Xvfb reported no display in {timeout:g} s:\n{proc.log_tail()}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:  # EOF: Xvfb exited
                proc.check_alive()
                raise PeerStartError(f"Xvfb closed -displayfd:\n{proc.log_tail()}")
            data += chunk
    return data.decode().strip()


# --------------------------------------------------------------------------------------------
# Hub access from the test side (xmlrpc.client is fine here: tests only)


def read_lockfile(lockfile: Path) -> dict[str, str]:
    """Parse a SAMP Standard Profile lockfile.

    Parameters
    ----------
    lockfile : pathlib.Path

    Returns
    -------
    dict
        ``key -> value`` for each ``key=value`` line (comments and blanks skipped).
    """
    info = {}
    for line in Path(lockfile).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            info[key.strip()] = value.strip()
    return info


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
        info = read_lockfile(lockfile)
        _proxy(info["samp.hub.xmlrpc.url"], 2.0).samp.hub.ping()
    except (OSError, KeyError, xmlrpc.client.Error):
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
        self._info = read_lockfile(self.lockfile)
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
        """Return ``public id -> metadata`` of every other registered client (hub included)."""
        hub = self._hub()
        return {
            cid: hub.getMetadata(self.private_key, cid)
            for cid in hub.getRegisteredClients(self.private_key)
        }

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

    Examples
    --------
    >>> code, out, err = run_jsamp_tool("hubtester", lockfile=lock, home=tmp)  # doctest: +SKIP
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
            OWNER_VAR: _owner_token(),
        },
        cwd=home,
        start_new_session=True,
    )
    _LIVE_GROUPS[popen.pid] = f"jsamp {tool}"
    try:
        try:
            out, err = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(popen.pid, popen, grace=2.0)
            out, err = popen.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, out, err) from None
        return ToolResult(
            popen.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )
    finally:
        _stop_group(popen.pid, popen, grace=2.0)


# --------------------------------------------------------------------------------------------
# GUI peers


@dataclass(frozen=True)
class PeerSpec:
    """How to start one kind of GUI peer.

    Attributes
    ----------
    key : str
        Short name (``"ds9"``).
    argv : tuple of str
        Command line.
    samp_name : str
        ``samp.name`` it registers with.
    ready_mtype : str
        It is ready once subscribed to this MType.
    requires : tuple of str
        Programs or paths that must be installed.
    timeout : float
        Default seconds to wait for registration.
    java : bool
        Whether it is a JVM (gets ``-Duser.home`` through ``JAVA_TOOL_OPTIONS``).
    needs_dot_samp : bool
        Whether it ignores ``SAMP_HUB`` and reads only ``<user.home>/.samp``.
    """

    key: str
    argv: tuple[str, ...]
    samp_name: str
    ready_mtype: str
    requires: tuple[str, ...]
    timeout: float
    java: bool = False
    needs_dot_samp: bool = False


#: The GUI peers known to the test suite, by key.
PEERS: dict[str, PeerSpec] = {
    "ds9": PeerSpec(
        key="ds9",
        argv=("ds9", "-samp", "connect"),
        samp_name="SAOImageDS9",
        ready_mtype="ds9.get",
        requires=("ds9",),
        timeout=60.0,
    ),
    "topcat": PeerSpec(
        key="topcat",
        # -samp: SAMP (not PLASTIC); -nohub: never start an internal hub of its own.
        argv=("topcat", "-samp", "-nohub"),
        samp_name="topcat",
        ready_mtype="table.load.votable",
        requires=("topcat", "java"),
        timeout=90.0,
        java=True,
    ),
    "aladin": PeerSpec(
        key="aladin",
        argv=("aladin",),
        samp_name="Aladin",
        ready_mtype="coord.pointAt.sky",
        requires=("aladin", "java"),
        timeout=120.0,
        java=True,
        needs_dot_samp=True,
    ),
}


@dataclass(frozen=True)
class PeerHandle:
    """A GUI peer registered with a hub.

    Attributes
    ----------
    spec : PeerSpec
        What was started.
    public_id : str
        Its SAMP public id on that hub.
    process : ManagedProcess
        Its process (``process.pid``; log in ``process.log_path``).
    lockfile : pathlib.Path
        Lockfile of the hub it registered with.
    home : pathlib.Path
        Its temporary home.
    started_in : float
        Seconds from launch until registered and subscribed.
    """

    spec: PeerSpec
    public_id: str
    process: ManagedProcess
    lockfile: Path
    home: Path
    started_in: float

    @property
    def pid(self) -> int:
        """Process id of the peer (and of its process group)."""
        return self.process.pid

    @property
    def samp_name(self) -> str:
        """``samp.name`` the peer registered with."""
        return self.spec.samp_name


@contextlib.contextmanager
def start_peer(
    spec: PeerSpec | str,
    lockfile: Path,
    *,
    display: str,
    home: Path,
    log_dir: Path | None = None,
    timeout: float | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[PeerHandle]:
    """Start a GUI peer against the hub of ``lockfile`` and wait until it is registered.

    Parameters
    ----------
    spec : PeerSpec or str
        A spec, or a key of :data:`PEERS` (``"ds9"``, ``"topcat"``, ``"aladin"``).
    lockfile : pathlib.Path
        Lockfile of a running hub (any hub).
    display : str
        X display (see :func:`xvfb`).
    home : pathlib.Path
        Temporary home for this peer; for Aladin the lockfile is copied to ``home/.samp``.
    log_dir : pathlib.Path, optional
        Directory for the peer's log; defaults to ``home``.
    timeout : float, optional
        Seconds to wait for registration; defaults to ``spec.timeout``.
    extra_args : sequence of str
        Appended to the command line.

    Yields
    ------
    PeerHandle
        The peer's process group is stopped when the block exits, even on error.

    Raises
    ------
    PeerUnavailable, PeerStartError
    """
    spec = PEERS[spec] if isinstance(spec, str) else spec
    require(*spec.requires)
    lockfile = Path(lockfile).resolve()
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if spec.needs_dot_samp:
        shutil.copyfile(lockfile, home / ".samp")
        (home / ".samp").chmod(0o600)
    with ProbeClient(lockfile) as probe:  # clients of that name already there are not ours
        before = probe.find(spec.samp_name)
    t0 = time.monotonic()
    proc = spawn(
        [*spec.argv, *extra_args],
        name=spec.key,
        env=peer_env(home=home, lockfile=lockfile, display=display),
        log_dir=Path(log_dir or home),
    )
    try:
        public_id = wait_for_client(
            lockfile,
            spec.samp_name,
            timeout=timeout or spec.timeout,
            mtype=spec.ready_mtype,
            process=proc,
            exclude=before,
        )
        yield PeerHandle(spec, public_id, proc, lockfile, home, time.monotonic() - t0)
    finally:
        proc.stop()


def ds9(lockfile: Path, **kwargs: Any) -> contextlib.AbstractContextManager[PeerHandle]:
    """Start SAO DS9 (``ds9 -samp connect``); see :func:`start_peer` for the arguments."""
    return start_peer(PEERS["ds9"], lockfile, **kwargs)


def topcat(lockfile: Path, **kwargs: Any) -> contextlib.AbstractContextManager[PeerHandle]:
    """Start TOPCAT (``topcat -samp -nohub``); see :func:`start_peer` for the arguments."""
    return start_peer(PEERS["topcat"], lockfile, **kwargs)


def aladin(lockfile: Path, **kwargs: Any) -> contextlib.AbstractContextManager[PeerHandle]:
    """Start Aladin Desktop (reads ``home/.samp``); see :func:`start_peer` for the arguments."""
    return start_peer(PEERS["aladin"], lockfile, **kwargs)


# --------------------------------------------------------------------------------------------
# A launcher bound to a scope (what the fixtures hand out)


@dataclass
class PeerLauncher:
    """Start peers whose lifetime ends with :meth:`close` (a fixture's scope).

    Parameters
    ----------
    make_dir : callable
        ``make_dir(label) -> Path`` returns a new, empty directory (``tmp_path_factory.mktemp``).
    display : callable, optional
        Returns the X display to use (called lazily, only for GUI peers), so that tests
        which start no GUI peer need no Xvfb.
    on_unavailable : callable, optional
        Called with a :class:`PeerUnavailable` before it propagates; it may raise instead
        (the test suite skips or fails there, per its ``--peers`` policy).

    Examples
    --------
    >>> launcher = PeerLauncher(make_dir=lambda label: Path(tempfile.mkdtemp()))  # doctest: +SKIP
    >>> hub = launcher.jsamp_hub()                                                 # doctest: +SKIP
    >>> launcher.close()                                                           # doctest: +SKIP
    """

    make_dir: Callable[[str], Path]
    display: Callable[[], str] | None = None
    on_unavailable: Callable[[PeerUnavailable], None] | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def _guarded(self, start: Callable[[], Any]) -> Any:
        missing_exc: PeerUnavailable | None = None
        try:
            return start()
        except PeerUnavailable as exc:
            missing_exc = exc
        assert missing_exc is not None
        # Outside the except block, so that a skip or fail carries no chained traceback.
        if self.on_unavailable is not None:
            self.on_unavailable(missing_exc)
        raise missing_exc

    def _display(self) -> str:
        if self.display is None:
            raise PeerError("this launcher has no X display")
        return self.display()

    def jsamp_hub(self, lockfile: Path | None = None, **kwargs: Any) -> HubHandle:
        """Start JSAMP's hub; its lockfile defaults to a new temporary path.

        Parameters
        ----------
        lockfile : pathlib.Path, optional
        **kwargs
            Passed to :func:`jsamp_hub` (``profiles``, ``timeout``).
        """
        home = self.make_dir("jsamp-hub")
        return self._guarded(
            lambda: self._stack.enter_context(
                jsamp_hub(lockfile or home / "samp.lock", home=home, **kwargs)
            )
        )

    def peer(self, key: str | PeerSpec, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start a GUI peer registered with ``hub`` (a :class:`SampHub` or a lockfile path).

        Parameters
        ----------
        key : str or PeerSpec
            ``"ds9"``, ``"topcat"``, ``"aladin"`` or a spec.
        hub : SampHub or pathlib.Path
        **kwargs
            Passed to :func:`start_peer` (``timeout``, ``extra_args``).
        """
        lockfile = Path(hub if isinstance(hub, (str, Path)) else hub.lockfile)
        spec = PEERS[key] if isinstance(key, str) else key

        def start() -> PeerHandle:
            require(*spec.requires)
            display = self._display()
            return self._stack.enter_context(
                start_peer(spec, lockfile, display=display, home=self.make_dir(spec.key), **kwargs)
            )

        return self._guarded(start)

    def ds9(self, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start DS9 registered with ``hub``; see :meth:`peer`."""
        return self.peer("ds9", hub, **kwargs)

    def topcat(self, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start TOPCAT registered with ``hub``; see :meth:`peer`."""
        return self.peer("topcat", hub, **kwargs)

    def aladin(self, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start Aladin registered with ``hub``; see :meth:`peer`."""
        return self.peer("aladin", hub, **kwargs)

    def run_jsamp_tool(
        self, tool: str, *args: str, hub: SampHub | Path, **kwargs: Any
    ) -> ToolResult:
        """Run a JSAMP tool against ``hub``; see :func:`run_jsamp_tool`."""
        lockfile = Path(hub if isinstance(hub, (str, Path)) else hub.lockfile)
        return self._guarded(
            lambda: run_jsamp_tool(
                tool, *args, lockfile=lockfile, home=self.make_dir(f"jsamp-{tool}"), **kwargs
            )
        )

    def close(self) -> None:
        """Stop everything started through this launcher, newest first."""
        self._stack.close()


if __name__ == "__main__":  # pragma: no cover - manual check: python tests/peers.py
    import tempfile

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with xvfb(tmp) as x, jsamp_hub(tmp / "lock", home=tmp / "hub") as h:
            print("display", x.display, "hub", h.url, f"{h.started_in:.1f} s")
            with start_peer(
                sys.argv[1] if len(sys.argv) > 1 else "ds9",
                h.lockfile,
                display=x.display,
                home=tmp / "peer",
            ) as p:
                print(p.samp_name, p.public_id, p.pid, f"{p.started_in:.1f} s")
    print("survivors:", surviving_processes())
