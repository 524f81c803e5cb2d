"""One ``sampflow run``: join or start a hub, run the rules engine, survive the hub going away.

`RunSession` owns the lifecycle around an `Engine`:

- hub mode ``auto`` joins the hub named by ``SAMP_HUB`` / ``~/.samp`` and, when none answers,
  starts an embedded `AsyncHub` in this process (on the same event loop); ``connect`` only
  joins, waiting for a hub to appear; ``start`` always starts its own hub;
- a heartbeat (``samp.hub.ping``) and the hub's ``samp.hub.event.shutdown`` /
  ``samp.hub.disconnect`` tell when the hub has gone; the session then says so and reconnects
  with exponential backoff (in ``auto``, starting a hub itself if none comes back);
- on SIGINT / SIGTERM it stops the triggers, lets running actions finish (bounded),
  unregisters, stops an embedded hub (which removes its lockfile) and returns 0.

Signals: the handlers stay installed until the shutdown has finished, so a second Ctrl-C (or
a SIGTERM) during it is only logged and cannot interrupt the unregistration or leave an owned
hub's lockfile behind; each shutdown step runs even when an earlier one failed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from .rules.engine import Engine
from .samp.client.aio import AsyncSAMPClient
from .samp.errors import SAMPHubError
from .samp.hub.server import AsyncHub, HubAlreadyRunning

__all__ = ["HUB_MODES", "RunSession", "StopSignals"]

log = logging.getLogger("sampflow.run")

HUB_MODES = ("auto", "connect", "start")


class StopSignals:
    """SIGINT and SIGTERM call `callback` on `loop`, and are never lost.

    ``loop.add_signal_handler`` learns of a signal only through a byte the C handler writes
    into the loop's self-pipe, the same pipe every ``call_soon_threadsafe`` from a worker
    thread writes to: under a burst of thread wake-ups the pipe is full, the write fails
    ("Exception ignored when trying to write to the signal wakeup fd: BlockingIOError") and
    the signal is gone. Here the wake-up goes to a socket of its own (only signals write to
    it), and the Python-level handler, which the interpreter runs on the main thread whatever
    the state of any pipe, queues `callback` with ``call_soon_threadsafe`` (queued even when
    that pipe is full).

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The running loop (of the main thread).
    callback : callable
        Called on the loop once per signal.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._previous: dict[int, Any] = {}
        self._old_wakeup = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None

    def install(self) -> None:
        """Install the handlers (nothing happens outside the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._old_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._loop.add_reader(reader.fileno(), self._drain)
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self._loop.call_soon_threadsafe(self._callback)

    def _drain(self) -> None:
        assert self._sockets is not None
        try:
            while self._sockets[0].recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def remove(self) -> None:
        """Restore the previous handlers and wake-up fd."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if self._sockets is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            self._loop.remove_reader(self._sockets[0].fileno())
            for sock in self._sockets:
                sock.close()
            self._sockets = None


class RunSession:
    """Runs an `Engine` against a hub until stopped.

    Parameters
    ----------
    engine : Engine
        The engine, built from a validated rule set (not started).
    client_name : str
        ``samp.name`` of the engine's client.
    hub_mode : {'auto', 'connect', 'start'}
        How to find a hub; see the module docstring.
    lockfile : str, optional
        Lockfile to read (and, for an embedded hub, to write); default ``SAMP_HUB`` /
        ``~/.samp``.
    heartbeat : float
        Seconds between hub pings.
    max_backoff : float
        Longest wait between reconnection attempts, in seconds.
    hub_setup : callable, optional
        ``async hub_setup(hub)``, run after an embedded hub starts (the Web Profile).
    stop_timeout : float
        Seconds running actions get to finish at shutdown before they are cancelled (so that
        a stop takes a few seconds even during a burst; file runs cut short stay unfinished
        in the delivery ledger and run at the next start).

    Raises
    ------
    ValueError
        If `hub_mode` is unknown.
    """

    def __init__(self, engine: Engine, *, client_name: str = "sampflow",
                 hub_mode: str = "auto", lockfile: str | None = None, heartbeat: float = 2.0,
                 max_backoff: float = 10.0,
                 hub_setup: Callable[[AsyncHub], Any] | None = None,
                 stop_timeout: float = 3.0) -> None:
        if hub_mode not in HUB_MODES:
            raise ValueError(f"hub mode must be one of {', '.join(HUB_MODES)}, not {hub_mode!r}")
        self.engine = engine
        self.client_name = client_name
        self.hub_mode = hub_mode
        self.lockfile = lockfile
        self.heartbeat = heartbeat
        self.max_backoff = max_backoff
        self.hub_setup = hub_setup
        self.stop_timeout = stop_timeout
        self.hub: AsyncHub | None = None
        self.client: AsyncSAMPClient | None = None
        self._stop = asyncio.Event()
        self._hub_lost = asyncio.Event()
        #: Set once the engine is connected to a hub (tests and embedding wait on it).
        self.connected = asyncio.Event()

    def request_stop(self) -> None:
        """Ask the session to stop (what SIGINT and SIGTERM do)."""
        if self._stop.is_set():
            log.info("already stopping: unregistering and stopping the hub first")
            return
        log.info("stopping")
        self._stop.set()

    async def run(self) -> int:
        """Run until `request_stop` (or a signal); returns the exit status.

        Returns
        -------
        int
            0 after a clean stop, 1 when ``start`` mode finds another live hub.
        """
        signals = StopSignals(asyncio.get_running_loop(), self.request_stop)
        signals.install()
        try:
            await self.engine.start()
            return await self._connection_loop()
        except HubAlreadyRunning as exc:
            log.error("%s", exc)
            return 1
        finally:
            try:
                await self._shutdown()
            finally:
                signals.remove()

    async def _connection_loop(self) -> int:
        if self.engine.dry_run and self.hub_mode != "connect" and not await self._hub_alive():
            # A dry run never starts a hub nor writes a lockfile: it runs the rules with no
            # hub and reports what it would send.
            log.info("dry run: no SAMP hub is running; not starting one")
            self.engine.run_without_hub()
            await self._stop.wait()
            return 0
        backoff = 0.5
        announced = False
        while not self._stop.is_set():
            try:
                client = await self._join()
            except HubAlreadyRunning:
                raise
            except (SAMPHubError, OSError) as exc:
                if not announced:
                    log.warning("no SAMP hub to join (%s); retrying with backoff", exc)
                    announced = True
                if await self._wait_stop(backoff):
                    break
                backoff = min(backoff * 2, self.max_backoff)
                continue
            announced = False
            backoff = 0.5
            self.client = client
            await self.engine.connect(client)
            log.info("connected to the hub at %s as %s", client.hub_params and
                     client.hub_params.get("samp.hub.xmlrpc.url"), client.public_id)
            self.connected.set()
            reason = await self._watch(client)
            self.connected.clear()
            self.engine.disconnected()
            if reason is None:
                break
            log.warning("the SAMP hub went away (%s); reconnecting", reason)
            await client.close()
            self.client = None
        return 0

    async def _join(self) -> AsyncSAMPClient:
        if self.engine.dry_run:
            pass  # join only: a dry run never starts a hub
        elif self.hub_mode == "start" or (self.hub_mode == "auto"
                                          and not await self._hub_alive()):
            await self._start_hub()
        metadata = self.engine.ruleset.samp_metadata()
        metadata["samp.name"] = self.client_name
        client = AsyncSAMPClient(metadata=metadata)
        client.on_hub_lost = lambda why: self._hub_lost.set()
        self._hub_lost.clear()
        await client.connect(lockfile=self.lockfile)
        return client

    async def _hub_alive(self) -> bool:
        from .samp.hub.server import probe_hub
        from .samp.lockfile import lockfile_location, read_lockfile

        try:
            params = read_lockfile(self.lockfile or lockfile_location())
        except SAMPHubError:
            return False
        return await probe_hub(params["samp.hub.xmlrpc.url"])

    async def _start_hub(self) -> None:
        if self.hub is not None and self.hub.is_running:
            return
        hub = AsyncHub(lockfile=self.lockfile, label="embedded in sampflow run")
        await hub.start()
        if self.hub_setup is not None:
            await self.hub_setup(hub)
        self.hub = hub
        log.info("started an embedded SAMP hub at %s", hub.url)

    async def _watch(self, client: AsyncSAMPClient) -> str | None:
        """Wait for a stop request (None) or for the hub to go (the reason)."""
        while True:
            stop = asyncio.ensure_future(self._stop.wait())
            lost = asyncio.ensure_future(self._hub_lost.wait())
            done, pending = await asyncio.wait({stop, lost}, timeout=self.heartbeat,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if stop in done:
                return None
            if lost in done:
                return "it announced shutdown or disconnected us"
            try:
                await client.ping()
            except SAMPHubError as exc:
                return f"ping failed: {exc}"

    async def _wait_stop(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def _shutdown(self) -> None:
        """Stop the engine, unregister, stop an embedded hub: each step even if one failed."""
        self._stop.set()
        try:
            await self.engine.stop(self.stop_timeout)
        except Exception:
            log.exception("stopping the rules engine failed")
        try:
            if self.client is not None:
                await self.client.disconnect()
        except Exception:
            log.exception("unregistering from the hub failed")
        finally:
            self.client = None
            if self.hub is not None:
                hub, self.hub = self.hub, None
                await hub.stop()
