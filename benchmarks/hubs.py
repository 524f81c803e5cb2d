"""Start, probe and stop the hubs under test, each as its own subprocess.

Every hub gets its own temporary folder holding its lockfile and a ``HOME`` of its own (so the
real ``~/.samp`` is never read or written), is stopped with SIGTERM by its PID and SIGKILLed
if it has not exited within a few seconds. `run_limited` runs a load generator the same way,
with a wall-clock limit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sampflow.samp.lockfile import LockfileError, read_lockfile_unchecked
from sampflow.samp.lockfile_helpers import hub_answers

__all__ = ["HUBS", "JSAMP_JAR", "Hub", "HubError", "LimitedRun", "run_limited", "client_env",
           "raise_fd_limit", "rss_kb", "cpu_seconds", "java_available", "kill_group",
           "spawn"]

HUBS = ("sampflow", "pyvo", "jsamp")
JSAMP_JAR = os.environ.get("JSAMP_JAR", "/usr/share/java/jsamp.jar")

#: Processes started here and not yet reaped; killed at interpreter exit whatever happens.
_LIVE: dict[int, subprocess.Popen] = {}


class HubError(RuntimeError):
    """A hub did not start, or stopped answering."""


def java_available() -> bool:
    """Whether ``java`` and the JSAMP jar are both present."""
    return shutil.which("java") is not None and Path(JSAMP_JAR).is_file()


def raise_fd_limit() -> None:
    """Raise the soft open-file limit to the hard one (500 clients need a few thousand)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def rss_kb(pid: int) -> int | None:
    """Resident set size of process `pid` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time used so far by process `pid` (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_env(lockfile: Path, home: Path) -> dict[str, str]:
    """Environment for a client of the hub whose lockfile is `lockfile`."""
    env = dict(os.environ)
    env["SAMP_HUB"] = f"std-lockurl:file://{lockfile}"
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def kill_group(popen: subprocess.Popen) -> None:
    """SIGKILL `popen` and the session it started (if still running) and reap it."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)  # its own session: only what it started
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(10)
    _LIVE.pop(popen.pid, None)


atexit.register(lambda: [kill_group(p) for p in list(_LIVE.values())])


def spawn(argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    """Start `argv` in a session of its own, output appended to `log_path`, with the open-file
    limit raised; it is killed (`kill_group`) at interpreter exit if still running."""
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                 start_new_session=True, preexec_fn=raise_fd_limit)
    _LIVE[popen.pid] = popen
    return popen


class Hub:
    """One hub subprocess of kind ``sampflow``, ``pyvo`` or ``jsamp``.

    Parameters
    ----------
    kind : str
        Which hub.
    workdir : Path
        A fresh folder for this hub: lockfile, ``HOME``, log.
    """

    def __init__(self, kind: str, workdir: Path) -> None:
        if kind not in HUBS:
            raise ValueError(f"unknown hub {kind!r}")
        self.kind = kind
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home = self.workdir / "home"
        self.home.mkdir(exist_ok=True)
        self.lockfile = (self.workdir / "samp-lock").resolve()
        self.log_path = self.workdir / "hub.log"
        self.popen: subprocess.Popen | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def env(self) -> dict[str, str]:
        """Environment for this hub's clients."""
        return client_env(self.lockfile, self.home)

    def argv(self) -> list[str]:
        if self.kind == "jsamp":
            return ["java", "-jar", JSAMP_JAR, "hub", "-mode", "no-gui", "-profiles", "std"]
        return [sys.executable, "-m", "benchmarks._hubmain", self.kind, str(self.lockfile)]

    def start(self, timeout: float = 60.0) -> "Hub":
        """Spawn the hub and wait for its lockfile and a ``samp.hub.ping`` answer.

        Raises
        ------
        HubError
            If it exits or does not answer within `timeout` seconds (it is then killed).
        """
        if self.kind == "jsamp" and not java_available():
            raise HubError(f"java or {JSAMP_JAR} not found")
        with contextlib.suppress(FileNotFoundError):
            self.lockfile.unlink()
        self.popen = spawn(self.argv(), self.env(), self.log_path, self.workdir)
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                _LIVE.pop(self.popen.pid, None)
                raise HubError(f"{self.kind} hub exited with status {self.popen.returncode}: "
                               f"{self.log_tail()}")
            with contextlib.suppress(LockfileError):
                url = read_lockfile_unchecked(self.lockfile).get("samp.hub.xmlrpc.url", "")
                if url and hub_answers(url, 2.0):
                    self.url = url
                    return self
            if time.monotonic() > deadline:
                self.kill()
                raise HubError(f"{self.kind} hub did not answer within {timeout:g} s")
            time.sleep(0.05)

    def alive(self) -> bool:
        """Whether the process runs and answers ping."""
        return self.popen is not None and self.popen.poll() is None and hub_answers(self.url, 2.0)

    def rss_kb(self) -> int | None:
        return rss_kb(self.pid) if self.popen is not None else None

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid) if self.popen is not None else None

    def log_tail(self, chars: int = 600) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace").strip()
        return ""

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM by PID; SIGKILL (the whole session it started) after `grace` seconds."""
        if self.popen is None:
            return
        self.popen.send_signal(signal.SIGTERM)  # nothing if it has exited
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        kill_group(self.popen)
        self.popen = None

    def kill(self) -> None:
        if self.popen is not None:
            kill_group(self.popen)
            self.popen = None

    def __enter__(self) -> "Hub":
        return self if self.popen is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LimitedRun:
    """What `run_limited` saw."""

    returncode: int | None  # None: killed at the time limit
    output: str
    seconds: float
    timed_out: bool
    limit: float


def run_limited(argv: list[str], *, env: dict[str, str], cwd: Path, limit: float) -> LimitedRun:
    """Run `argv` in its own session; SIGKILL it (and its children) after `limit` seconds."""
    log_path = Path(cwd) / f"run-{time.monotonic_ns()}.log"
    t0 = time.monotonic()
    popen = spawn(argv, env, log_path, Path(cwd))
    timed_out = False
    try:
        popen.wait(limit)
    except subprocess.TimeoutExpired:
        timed_out = True
    kill_group(popen)
    seconds = time.monotonic() - t0
    output = log_path.read_text("utf-8", "replace")
    return LimitedRun(None if timed_out else popen.returncode, output, seconds, timed_out, limit)
