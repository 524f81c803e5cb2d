"""Process control: spawn, stop by process group, leak tracking, waiting, environments.

Part of the ``peers`` test helpers; see ``tests/peers/__init__.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import DEFAULT_GRACE, POLL_INTERVAL, PeerError, PeerStartError

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


def track_group(pgid: int, label: str) -> None:
    """Count the process group `pgid` (named `label`) among those started here, so that
    :func:`kill_survivors` stops it if it outlives its owner."""
    _LIVE_GROUPS[pgid] = label


def stop_group(pgid: int, popen: subprocess.Popen[Any] | None, grace: float) -> bool:
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
        stop_group(pgid, None, grace)
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


def owner_token() -> str:
    """This process's owner mark, ``pid:starttime``: the value of :data:`OWNER_VAR` for the
    processes it starts."""
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
        stop_group(pgid, None, grace)
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
        if not stop_group(self.pid, self.popen, grace):
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
            env={**env, OWNER_VAR: owner_token()},
            cwd=log_dir,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    track_group(popen.pid, name)
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = POLL_INTERVAL,
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
