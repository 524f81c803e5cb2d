"""Run ``sampflow hub`` as a real subprocess, through its command line, for tests.

Plain Python (no pytest import), usable from fixtures of any scope::

    with samphub.running_hub(tmp_path / "lock", log_dir=tmp_path) as hub:
        ...                             # hub.lockfile, hub.url, hub.secret, hub.pid

or, for finer control (kill -9, a second hub on the same lockfile)::

    hub = samphub.SampflowHub(lockfile, log_dir=tmp_path)
    hub.start()                         # waits for the lockfile and samp.hub.ping
    hub.kill()                          # SIGKILL: leaves a stale lockfile behind
    hub.stop()                          # SIGTERM by pid; asserts the lockfile was removed

Rules: the hub only ever sees the lockfile it is given (``--lockfile``; ``SAMP_HUB`` and
``HOME`` are replaced so that the real ``~/.samp`` is never touched); it is stopped by its PID;
any process still alive at interpreter exit is killed.

A `SampflowHub` has a ``lockfile`` attribute, so it can stand in for the ``samp_hub`` fixture
of ``tests/conftest.py`` (peers point themselves at ``hub.lockfile``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sampflow.samp.lockfile import LockfileError, read_lockfile_unchecked
from sampflow.samp.lockfile_helpers import hub_answers

__all__ = ["HubStartError", "Recorder", "SampflowHub", "call_until_ok", "hub_env", "msg",
           "post_xmlrpc", "running_hub", "sampflow_argv"]

#: Processes started here and not yet reaped; killed at interpreter exit.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


class HubStartError(RuntimeError):
    """``sampflow hub`` exited, or did not answer ``samp.hub.ping`` in time."""


def sampflow_argv() -> list[str]:
    """The command that runs the ``sampflow`` console script of this interpreter.

    Prefers the ``sampflow`` script installed next to `sys.executable`; falls back to
    ``python -m sampflow.cli`` (same entry point, `sampflow.cli.main`).
    """
    script = shutil.which("sampflow", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-m", "sampflow.cli"]


def hub_env(home: Path) -> dict[str, str]:
    """A copy of the environment with ``HOME`` at `home` and no ``SAMP_HUB``."""
    env = {k: v for k, v in os.environ.items() if k != "SAMP_HUB"}
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _sigterm_and_wait(popen: subprocess.Popen[bytes], timeout: float) -> bool:
    """SIGTERM `popen` by PID (nothing if it has exited) and wait up to `timeout` seconds;
    whether it exited."""
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


class SampflowHub:
    """One ``sampflow hub --lockfile PATH`` subprocess.

    Parameters
    ----------
    lockfile : path
        Where the hub writes its lockfile.
    log_dir : path, optional
        Folder for the hub's output log and temporary ``HOME``; the lockfile's folder by
        default.
    args : sequence of str
        Extra arguments after ``hub`` (``-v`` goes before it automatically when `verbose`).
    verbose : bool
        Pass ``-v`` (log every message).
    command : sequence of str
        The subcommand and its leading arguments (``hub`` by default; ``link nats://...``
        runs a federated hub).
    env : dict, optional
        More environment variables.
    prefix : sequence of str
        A command that execs the hub (``ip netns exec NS``): the PID stays the hub's.

    Attributes
    ----------
    lockfile : pathlib.Path
    url, secret : str
        From the lockfile, once started.
    popen : subprocess.Popen or None
    """

    def __init__(self, lockfile: Path | str, *, log_dir: Path | str | None = None,
                 args: Sequence[str] = (), verbose: bool = False,
                 command: Sequence[str] = ("hub",), env: dict[str, str] | None = None,
                 prefix: Sequence[str] = ()) -> None:
        self.command = list(command)
        self.prefix = list(prefix)
        self.extra_env = dict(env or {})
        self.lockfile = Path(lockfile).resolve()
        self.log_dir = Path(log_dir) if log_dir is not None else self.lockfile.parent
        self.args = list(args)
        self.verbose = verbose
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.url = ""
        self.secret = ""
        self.info: dict[str, str] = {}

    # -- process -------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        """The hub process's id."""
        assert self.popen is not None, "not started"
        return self.popen.pid

    def running(self) -> bool:
        """Whether the process has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the hub's combined stdout and stderr."""
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to serve."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        home = self.log_dir / "hub-home"
        home.mkdir(exist_ok=True)
        self.log_path = self.log_dir / f"sampflow-hub-{time.monotonic_ns()}.log"
        web = [] if any(a.startswith(("--web-port", "--no-web-profile")) for a in self.args) \
            or self.command[0] not in ("hub", "link") else ["--web-port", "0"]  # not 21012
        argv = [*self.prefix, *sampflow_argv(), *(["-v"] if self.verbose else []), *self.command,
                "--lockfile", str(self.lockfile), *web, *self.args]
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT,
                                          env={**hub_env(home), **self.extra_env},
                                          cwd=self.log_dir, start_new_session=True)
        _LIVE[self.popen.pid] = self.popen
        return self.popen

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit by itself; returns its status."""
        assert self.popen is not None
        code = self.popen.wait(timeout)
        _LIVE.pop(self.popen.pid, None)
        return code

    def start(self, timeout: float = 30.0) -> "SampflowHub":
        """Start the hub and wait until its lockfile exists and it answers ping.

        Raises
        ------
        HubStartError
            If the process exits first or `timeout` passes (the hub is then killed).
        """
        self.spawn()
        deadline = time.monotonic() + timeout
        while True:
            code = self.popen.poll()  # type: ignore[union-attr]
            if code is not None:
                _LIVE.pop(self.pid, None)
                raise HubStartError(f"sampflow hub exited with status {code}:\n{self.log_tail()}")
            if self.lockfile.is_file():
                info = read_lockfile_unchecked(self.lockfile)
                url = info.get("samp.hub.xmlrpc.url", "")
                if info.get("hub.start.pid") == str(self.pid) and url and hub_answers(url, 2.0):
                    self.info, self.url, self.secret = info, url, info["samp.secret"]
                    return self
            if time.monotonic() > deadline:
                self.kill()
                raise HubStartError(f"sampflow hub did not answer within {timeout} s:\n"
                                    f"{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0, *, check_lockfile: bool = True) -> int:
        """SIGTERM the hub by PID and wait for it to exit.

        Parameters
        ----------
        check_lockfile : bool
            Assert that the lockfile is gone afterwards (the hub removes its own).

        Returns
        -------
        int
            The exit status.
        """
        if self.popen is None:
            return 0
        if not _sigterm_and_wait(self.popen, timeout):
            self.kill()
            raise AssertionError(f"sampflow hub ignored SIGTERM for {timeout} s:\n"
                                 f"{self.log_tail()}")
        _LIVE.pop(self.popen.pid, None)
        if check_lockfile:
            assert not self._our_lockfile_present(), (
                f"sampflow hub left its lockfile {self.lockfile} behind:\n{self.log_tail()}")
        return self.popen.returncode

    def _our_lockfile_present(self) -> bool:
        try:
            return read_lockfile_unchecked(self.lockfile).get("samp.secret") == self.secret
        except LockfileError:
            return False

    def kill(self) -> None:
        """SIGKILL the hub by PID (no clean-up: the lockfile stays) and reap it."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        _LIVE.pop(self.popen.pid, None)

    def __enter__(self) -> "SampflowHub":
        return self.start() if self.popen is None else self

    def __exit__(self, *exc: object) -> None:
        # On error do not mask the original failure with the lockfile assertion.
        self.stop(check_lockfile=exc[0] is None)


@contextlib.contextmanager
def running_hub(lockfile: Path | str, *, log_dir: Path | str | None = None,
                args: Sequence[str] = (), verbose: bool = False,
                timeout: float = 30.0, check_lockfile: bool = True) -> Iterator[SampflowHub]:
    """Run ``sampflow hub`` for the block; stopped with SIGTERM after.

    Parameters
    ----------
    check_lockfile : bool
        After a block that did not raise, assert that the hub removed its lockfile (False
        for blocks that may kill the hub themselves).

    Yields
    ------
    SampflowHub
        Started and answering ``samp.hub.ping``.
    """
    hub = SampflowHub(lockfile, log_dir=log_dir, args=args, verbose=verbose)
    hub.start(timeout)
    try:
        yield hub
    except BaseException:
        hub.stop(check_lockfile=False)
        raise
    else:
        hub.stop(check_lockfile=check_lockfile)


def _kill_leftovers() -> None:
    for pid, popen in list(_LIVE.items()):
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(5)
        _LIVE.pop(pid, None)


atexit.register(_kill_leftovers)


# --------------------------------------------------------------------------------------------
# In-process helpers for asyncio tests (real sockets, one loop)


def msg(mtype: str, **params: Any) -> dict[str, Any]:
    """A SAMP message map (section 3.8) of `mtype` with `params`, unchecked (tests send odd
    MTypes on purpose)."""
    return {"samp.mtype": mtype, "samp.params": dict(params)}


async def call_until_ok(client: Any, recipient: str, message: dict[str, Any], tries: int = 60,
                        *, retry_hub_failures: bool = False) -> dict[str, Any]:
    """Call `recipient` (``call_and_wait`` of the `AsyncSAMPClient` `client`, 60 s each)
    until it answers ``samp.ok``, at most `tries` times half a second apart, while a real
    application settles after a load; returns the last response.

    A failure of the hub to deliver (an error naming "delivery to") is not the application
    settling: it fails the test at once, unless `retry_hub_failures` (for a federated hub,
    whose proxies may still be arriving)."""
    response: dict[str, Any] = {}
    for _ in range(tries):
        response = await client.call_and_wait(recipient, message, 60)
        if response["samp.status"] == "samp.ok":
            return response
        if not retry_hub_failures:
            assert "delivery to" not in str(response.get("samp.error")), response
        await asyncio.sleep(0.5)
    return response


async def post_xmlrpc(session: Any, url: str, body: bytes | object) -> tuple[int, Any]:
    """POST the XML-RPC request `body` to `url` with the ``aiohttp`` `session`, as a client
    written by hand would; returns the HTTP status and the decoded value, or the
    `xmlrpc.client.Fault` the server answered (decoded by the standard library, so that
    the hub's own codec is not its judge)."""
    import xmlrpc.client

    async with session.post(url, data=body, headers={"Content-Type": "text/xml"}) as r:
        payload = await r.read()
        status = r.status
    try:
        return status, xmlrpc.client.loads(payload.decode("utf-8"))[0][0]
    except xmlrpc.client.Fault as fault:
        return status, fault


class Recorder:
    """An `AsyncSAMPClient` that records what it receives and answers calls.

    Parameters
    ----------
    name : str
        ``samp.name``.
    subscriptions : dict
        Declared after connecting.
    respond : callable, optional
        ``async respond(sender_id, msg_id, message) -> dict | None`` for calls; by default
        every call gets ``samp.ok`` with the params echoed in ``samp.result``.

    Attributes
    ----------
    client : AsyncSAMPClient
    received : list of (kind, sender_id, msg_id, message)
    responses : list of (responder_id, msg_tag, response)
    """

    def __init__(self, name: str, subscriptions: dict | None = None, respond=None) -> None:  # type: ignore[no-untyped-def]
        import asyncio

        from sampflow.samp.client.aio import AsyncSAMPClient

        self.client = AsyncSAMPClient(name)
        self.subscriptions = dict(subscriptions or {})
        self.respond = respond
        self.received: list[tuple] = []
        self.responses: list[tuple] = []
        self._changed = asyncio.Condition()
        self.client.on_message = self._on_message
        self.client.on_response = self._on_response

    async def connect(self, lockfile: Path | str) -> "Recorder":
        await self.client.connect(lockfile=str(lockfile))
        if self.subscriptions:
            await self.client.declare_subscriptions(self.subscriptions)
        return self

    @property
    def id(self) -> str:
        assert self.client.public_id is not None
        return self.client.public_id

    async def _on_message(self, kind, sender_id, msg_id, message):  # type: ignore[no-untyped-def]
        async with self._changed:
            self.received.append((kind, sender_id, msg_id, message))
            self._changed.notify_all()
        if kind != "call":
            return None
        if self.respond is not None:
            return await self.respond(sender_id, msg_id, message)
        return {"samp.status": "samp.ok", "samp.result": dict(message.get("samp.params", {}))}

    async def _on_response(self, responder_id, msg_tag, response):  # type: ignore[no-untyped-def]
        async with self._changed:
            self.responses.append((responder_id, msg_tag, response))
            self._changed.notify_all()

    def messages(self, mtype: str | None = None) -> list[dict]:
        """Messages received so far (notifications and calls), optionally of one MType."""
        return [m for _, _, _, m in self.received
                if mtype is None or m.get("samp.mtype") == mtype]

    async def wait_for(self, predicate, timeout: float = 15.0):  # type: ignore[no-untyped-def]
        """Wait until ``predicate(self)`` is truthy; returns its value.

        Raises
        ------
        TimeoutError
            If `timeout` seconds pass first (a bound, not a speed assertion).
        """
        import asyncio

        async with asyncio.timeout(timeout):
            async with self._changed:
                while True:
                    value = predicate(self)
                    if value:
                        return value
                    await self._changed.wait()

    async def wait_messages(self, mtype: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
        """Wait until `count` messages of `mtype` have arrived; returns them all."""
        return await self.wait_for(lambda r: (lambda ms: ms if len(ms) >= count else None)(
            r.messages(mtype)), timeout)

    async def close(self) -> None:
        await self.client.disconnect()


class EngineRun:
    """One ``sampflow -v run FILE... --no-web-profile --trace T`` process, stopped by PID.

    Parameters
    ----------
    folder : Path
        Folder for the engine's home, log (``engine.log``) and trace (``trace.jsonl``).
    files : list of str or Path
        Rule files.
    *args : str
        More ``run`` arguments (``--lockfile``, ``--set``, ``--hub``, ...).
    verbose : bool
        Pass ``-v`` (every firing logged); without it the log is what a user sees by default.
    """

    def __init__(self, folder: Path, files: Sequence[str | Path], *args: str,
                 verbose: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "home").mkdir(exist_ok=True)
        self.dir = folder
        self.trace = folder / "trace.jsonl"
        self.log_path = folder / "engine.log"
        self.argv = [*sampflow_argv(), *(["-v"] if verbose else []), "run", *map(str, files),
                     "--no-web-profile", "--trace", str(self.trace), *args]
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=hub_env(folder / "home"),
                                          cwd=folder, start_new_session=True)
        _LIVE[self.popen.pid] = self.popen

    @property
    def pid(self) -> int:
        """The engine process's id."""
        return self.popen.pid

    def log(self) -> str:
        """The engine's combined output so far."""
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def public_ids(self) -> list[str]:
        """Public ids the engine reported on each (re)connection, in order."""
        return re.findall(r"connected to the hub at \S+ as (\S+)", self.log())

    def _connected(self, count: int) -> str | None:
        if self.popen.poll() is not None:
            raise AssertionError(f"sampflow run exited ({self.popen.returncode}):\n"
                                 f"{self.log()[-4000:]}")
        ids = self.public_ids()
        return ids[count - 1] if len(ids) >= count else None

    def wait_connected(self, count: int = 1, timeout: float = 30.0) -> str:
        """Block until the `count`-th connection; returns the engine's public id then."""
        deadline = time.monotonic() + timeout
        while (found := self._connected(count)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"sampflow run did not connect in {timeout} s:\n"
                                     f"{self.log()[-4000:]}")
            time.sleep(0.1)
        return found

    async def await_connected(self, count: int = 1, timeout: float = 30.0) -> str:
        """`wait_connected` for asyncio tests (the loop keeps running meanwhile)."""
        deadline = time.monotonic() + timeout
        while (found := self._connected(count)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"sampflow run did not connect in {timeout} s:\n"
                                     f"{self.log()[-4000:]}")
            await asyncio.sleep(0.1)
        return found

    def records(self) -> list[dict[str, Any]]:
        """The firing records written so far (``--trace``)."""
        if not self.trace.exists():
            return []
        return [json.loads(line) for line in self.trace.read_text().splitlines() if line]

    def wait_records(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1,
                     timeout: float = 60.0) -> list[dict[str, Any]]:
        """Block until `count` firing records satisfy `predicate`; returns them."""
        deadline = time.monotonic() + timeout
        while len(got := [r for r in self.records() if predicate(r)]) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} firings in {timeout} s:\n"
                                     f"{self.log()[-4000:]}")
            time.sleep(0.1)
        return got

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM by PID; returns the exit status (SIGKILL and fail if it is ignored)."""
        if not _sigterm_and_wait(self.popen, timeout):
            self.kill()
            raise AssertionError(f"sampflow run ignored SIGTERM:\n{self.log()[-4000:]}")
        _LIVE.pop(self.pid, None)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the process group, if still running."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(10)
        _LIVE.pop(self.pid, None)
