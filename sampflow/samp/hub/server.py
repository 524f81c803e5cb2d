"""Hub lifecycle: sockets, lockfile, shutdown (SAMP 1.3 sections 3.4, 4.2.2, 4.3).

`AsyncHub` runs a hub on the current event loop; `SAMPHubServer` is the blocking,
astropy-compatible facade that runs an `AsyncHub` on sampflow's background loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import warnings
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .. import _loop
from ..errors import SAMPHubError, SAMPWarning
from ..lockfile import (
    LockfileError,
    LockfileExists,
    create_lockfile,
    is_samp_lockfile,
    lockfile_location,
    parse_lockfile,
    read_local_lockfile,
    remove_lockfile_if_ours,
)
from ..types import mtype_subtypes
from ..xmlrpc import dumps_request, loads_response
from .core import HubCore
from .delivery import MAX_QUEUE
from .service import HubService
from ..wire import serve
from ..wire.server import HttpServer
from .standard import StandardProfile

__all__ = ["AsyncHub", "SAMPHubServer", "HubAlreadyRunning", "probe_hub",
           "WEB_PROFILE_DEFAULT_WARNING"]

log = logging.getLogger("sampflow.hub")

#: Listen backlog: calcstorm opens dozens of connections at once, and a short backlog
#: (astropy's is 5) makes the kernel reset them.
LISTEN_BACKLOG = 1024


class HubAlreadyRunning(SAMPHubError):
    """A live hub owns the lockfile; `url` and `lockfile` say which."""

    def __init__(self, lockfile: str, url: str, name: str | None) -> None:
        label = f"{name} at {url}" if name else url
        super().__init__(f"a SAMP hub is already running ({label}); its lockfile is {lockfile}")
        self.lockfile = lockfile
        self.url = url


async def probe_hub(url: str, timeout: float = 3.0) -> bool:
    """Tell whether a SAMP hub answers ``samp.hub.ping`` at `url`.

    Parameters
    ----------
    url : str
        The hub's ``samp.hub.xmlrpc.url``.
    timeout : float
        Seconds to wait for an answer.

    Returns
    -------
    bool
        True when the hub answered without a fault.
    """
    body = dumps_request("samp.hub.ping", ())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.post(url, data=body, headers={"Content-Type": "text/xml"}) as r:
                loads_response(await r.read())
        return True
    except Exception:  # refused, timed out, a fault, garbage: not a live hub
        return False


class AsyncHub:
    """A SAMP hub on the running asyncio loop.

    Parameters
    ----------
    addr : str
        Address to listen on; loopback unless told otherwise.
    port : int
        TCP port for the Standard Profile; 0 picks a free one.
    lockfile : str or path-like, optional
        Where to write the lockfile; default from ``SAMP_HUB`` or ``~/.samp`` (section 4.3).
    secret : str, optional
        The Standard Profile secret; a fresh one from `secrets` by default.
    client_timeout : float
        Seconds allowed for each callback to a client.
    label : str
        Text added to the hub's ``samp.name``.
    metadata : dict, optional
        Extra metadata of the hub's own client.
    max_queue : int
        Deliveries waiting from one sender to one recipient before the hub deems that
        recipient dead and unregisters it (5000 by default).
    value_types : {"relayable", "samp"}
        ``relayable`` (default) accepts the XML-RPC values the hub can relay exactly as
        they came (astropy's clients send ints and booleans), and refuses ``<nil/>``,
        integers beyond 32 bits and extension types; ``samp`` accepts only SAMP's string,
        list and map inside maps and lists (SAMP 1.3 section 3.3).
    """

    def __init__(
        self,
        *,
        addr: str = "127.0.0.1",
        port: int = 0,
        lockfile: str | os.PathLike[str] | None = None,
        secret: str | None = None,
        client_timeout: float = 30.0,
        label: str = "",
        metadata: dict[str, Any] | None = None,
        max_queue: int = MAX_QUEUE,
        value_types: str = "relayable",
    ) -> None:
        name = "sampflow-hub" + (f" ({label})" if label else "")
        hub_metadata = {
            "samp.name": name,
            "samp.description.text": "sampflow: an embedded SAMP 1.3 hub",
            "author.name": "sampflow",
            **(metadata or {}),
        }
        self.core = HubCore(hub_metadata)
        self.service = HubService(self.core, client_timeout=client_timeout,
                                  max_queue=max_queue, value_types=value_types)
        if secret is not None:
            self.service.secret = secret
        self.addr = addr
        self.port = port
        self._lockfile = os.fspath(lockfile) if lockfile is not None else None
        self.lockfile: str | None = None
        self.url: str | None = None
        self._runners: list[web.AppRunner] = []
        self._standard: HttpServer | None = None
        self._profile: StandardProfile | None = None
        self._stopped = asyncio.Event()
        self.is_running = False

    @property
    def params(self) -> dict[str, str]:
        """The lockfile's key-value pairs (section 4.2.2)."""
        if self.url is None:
            raise SAMPHubError("the hub is not running")
        return {
            "samp.secret": self.service.secret,
            "samp.hub.xmlrpc.url": self.url,
            "samp.profile.version": "1.3",
            "hub.label": self.core.hub.metadata.get("samp.name", ""),
            "hub.start.pid": str(os.getpid()),
        }

    async def _check_lockfile(self, path: str) -> None:
        """Make way for our lockfile at `path`: nothing there, or a stale SAMP lockfile
        (removed); anything else is refused and left alone (see `sampflow.samp.lockfile`)."""
        found = read_local_lockfile(path)  # LockfileError: a folder, a dangling link, a FIFO
        if found is None:
            return
        existing = parse_lockfile(found[0])
        if not found[0].strip():  # empty: a hub died writing it, nothing to lose
            log.warning("replacing empty lockfile %s", path)
            os.unlink(path)
            return
        if not is_samp_lockfile(existing):
            raise LockfileError(
                f"{path} exists and is not a SAMP lockfile (it has no samp.secret and "
                "samp.hub.xmlrpc.url): leaving it alone; choose another lockfile path "
                "(--lockfile, SAMP_HUB)")
        url = existing["samp.hub.xmlrpc.url"]
        if await probe_hub(url):
            raise HubAlreadyRunning(path, url, existing.get("hub.label"))
        log.warning("replacing stale lockfile %s (its hub at %s does not answer)", path, url)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    async def start(self) -> None:
        """Listen, then write the lockfile.

        Raises
        ------
        HubAlreadyRunning
            If the lockfile belongs to a hub that answers.
        LockfileError
            If the lockfile path holds something that is not a stale SAMP lockfile (a file
            of another kind, a folder, a dangling link): it is left as it is.
        SAMPHubError
            If ``SAMP_HUB`` names a lockfile URL that cannot be written (an ``http:`` one).
        OSError
            If the address cannot be bound.
        """
        path = self._lockfile or lockfile_location()
        if "://" in path:
            raise SAMPHubError(f"cannot write a lockfile at URL {path}")
        await self._check_lockfile(path)
        standard = self._profile = StandardProfile(self.service)
        self._standard = await serve(standard.handle, self.addr, self.port,
                                     max_body=standard.max_body, too_large=standard.too_large,
                                     backlog=LISTEN_BACKLOG)
        self.port = self._standard.port
        host = self.addr if self.addr not in ("0.0.0.0", "::", "") else socket.gethostname()
        self.url = f"http://{host}:{self.port}/xmlrpc"
        try:
            create_lockfile(path, self.params)
        except LockfileExists:
            await self._close_servers()
            await self._check_lockfile(path)  # raises HubAlreadyRunning if one won the race
            raise SAMPHubError(f"lockfile {path} appeared while starting; try again") from None
        self.lockfile = path
        self.is_running = True
        log.info("SAMP hub listening at %s (lockfile %s)", self.url, path)

    async def add_app(self, app: web.Application, addr: str, port: int) -> int:
        """Serve another aiohttp application (a further profile) until the hub stops.

        Returns
        -------
        int
            The port bound.
        """
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, addr, port, backlog=LISTEN_BACKLOG, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _close_servers(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._standard is not None:
            await self._standard.close()
            self._standard = None
        if self._profile is not None:
            self._profile.close()

    async def stop(self, grace: float = 2.0) -> None:
        """Tell the clients (``samp.hub.event.shutdown``), stop serving, remove the lockfile
        if it is still ours. Safe to call twice."""
        if not self.is_running:
            return
        self.is_running = False
        if self.lockfile:
            remove_lockfile_if_ours(self.lockfile, self.service.secret)
        await self.service.shutdown(grace)
        await self._close_servers()
        log.info("SAMP hub stopped")
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Return once `stop` has finished."""
        await self._stopped.wait()


#: The text of the one-time warning when code relies on `SAMPHubServer`'s ``web_profile``
#: default where astropy's default would have let web pages in.
WEB_PROFILE_DEFAULT_WARNING = (
    "sampflow's SAMPHubServer does not serve the Web Profile unless web_profile=True "
    "(astropy's default is True): web pages (sampjs) cannot register with this hub. Pass "
    "web_profile=True to serve it, with consent, or web_profile=False to silence this."
)
_web_default_warned = False


class SAMPHubServer:
    """A SAMP hub (astropy's ``SAMPHubServer``); no Web Profile unless ``web_profile=True``.

    The Web Profile is off by default, unlike astropy, where it is on: see `web_profile`.
    The hub runs on sampflow's background event loop; `start` returns once it serves.

    Parameters
    ----------
    secret : str, optional
        The Standard Profile secret; a fresh one from `secrets` by default.
    addr : str, optional
        Listening address; loopback (``127.0.0.1``) by default.
    port : int
        Standard Profile port; 0 picks a free one.
    lockfile : str, optional
        Lockfile path; default from ``SAMP_HUB`` or ``~/.samp`` (mode ``single``), or a new
        file under ``~/.samp-1/`` (mode ``multiple``).
    timeout : float
        Stop the hub after this many seconds with no request; 0 never.
    client_timeout : float
        Seconds allowed for each callback to a client; 0 means 30.
    mode : {'single', 'multiple'}
        ``single`` writes the standard lockfile; ``multiple`` a private one.
    label : str
        Added to the hub's ``samp.name``.
    web_profile : bool or None
        Also serve the Web Profile (section 5), with its consent safeguards (every web page
        asks the `web_profile_dialog`, or the terminal; refused when neither can answer).
        None (the default) means False: unlike astropy, whose default is True, because a
        hub started from library code often has no terminal to ask the user's consent on,
        and the Web Profile is every web page's way into the desktop (``sampflow hub``
        serves it by default, with consent). Code that relies on the default where astropy
        would have served web pages gets a `SAMPWarning`, once per process, on `start`: when
        the hub writes the desktop's standard lockfile (no `lockfile`, mode ``single``), or
        `web_profile_dialog` / `web_port` are given. Pass True or False to say which you
        want, and there is no warning.
    web_profile_dialog : callable or WebProfileDialog, optional
        Consent for Web Profile registrations: an astropy-style `WebProfileDialog`
        instance, or any policy `sampflow.samp.hub.web_consent.as_consent` takes.
    web_port : int
        The Web Profile port (21012 by default, section 5.2.1).
    pool_size : int
        Accepted for astropy compatibility; connections are pooled without a fixed size.

    Raises
    ------
    SAMPHubError
        If `mode` is unknown.
    """

    def __init__(self, secret: str | None = None, addr: str | None = None, port: int = 0,
                 lockfile: str | None = None, timeout: float = 0, client_timeout: float = 0,
                 mode: str = "single", label: str = "", web_profile: bool | None = None,
                 web_profile_dialog: Any = None, web_port: int = 21012,
                 pool_size: int = 20) -> None:
        if mode not in ("single", "multiple"):
            raise SAMPHubError(f"mode must be 'single' or 'multiple', not {mode!r}")
        relies_on_default = web_profile is None and (
            (lockfile is None and mode == "single")
            or web_profile_dialog is not None or web_port != 21012)
        self._warn_web_default = relies_on_default
        if mode == "multiple" and lockfile is None:
            folder = Path(os.path.expanduser("~")) / ".samp-1"
            folder.mkdir(mode=0o700, exist_ok=True)
            lockfile = str(folder / f"samp-hub-{secrets.token_hex(8)}")
        self._timeout = timeout
        self._hub = AsyncHub(addr=addr or "127.0.0.1", port=port, lockfile=lockfile,
                             secret=secret, client_timeout=client_timeout or 30.0, label=label)
        self._web_options = dict(enabled=bool(web_profile), dialog=web_profile_dialog,
                                 port=web_port)
        self.mode = mode

    @staticmethod
    def get_mtype_subtypes(mtype: str) -> list[str]:
        """Every subscription pattern matching `mtype`, most specific first (section 3.2).

        Examples
        --------
        >>> SAMPHubServer.get_mtype_subtypes("samp.app.ping")
        ['samp.app.ping', 'samp.app.*', 'samp.*', '*']
        """
        return mtype_subtypes(mtype)

    @property
    def id(self) -> str:
        """The hub client's public id."""
        return self._hub.core.hub.public_id

    @property
    def is_running(self) -> bool:
        """Whether the hub is serving."""
        return self._hub.is_running

    @property
    def params(self) -> dict[str, str]:
        """The lockfile's key-value pairs (section 4.2.2)."""
        return self._hub.params

    @property
    def lockfile(self) -> str | None:
        """Path of the lockfile written, once started."""
        return self._hub.lockfile

    def start(self, wait: bool = False) -> None:
        """Start serving; with `wait`, block until the hub stops.

        Raises
        ------
        HubAlreadyRunning
            If a live hub owns the lockfile.

        Warns
        -----
        SAMPWarning
            Once per process, when the code relies on the ``web_profile`` default where
            astropy's hub would have served web pages (see the class docstring).
        """
        global _web_default_warned
        _loop.run(self._hub.start())
        if self._warn_web_default and not _web_default_warned:
            _web_default_warned = True
            warnings.warn(WEB_PROFILE_DEFAULT_WARNING, SAMPWarning, stacklevel=2)
        if self._web_options["enabled"]:
            from .web import attach_web_profile  # the Web Profile transport

            _loop.run(attach_web_profile(self._hub, port=self._web_options["port"],
                                         consent=self._web_options["dialog"]))
        if self._timeout:
            _loop.background_loop().call_soon_threadsafe(
                lambda: asyncio.get_running_loop().call_later(self._timeout, self._arm_idle_timer))
        if wait:
            _loop.run(self._hub.wait_stopped())

    def _arm_idle_timer(self) -> None:
        """Check for an empty hub every `timeout` seconds (astropy's ``timeout``)."""
        if not self._hub.is_running:
            return
        if len(self._hub.core.registry) <= 1:  # only the hub's own client
            log.info("no clients for %s s: stopping the hub", self._timeout)
            asyncio.get_running_loop().create_task(self._hub.stop())
            return
        asyncio.get_running_loop().call_later(self._timeout, self._arm_idle_timer)

    def stop(self) -> None:
        """Tell the clients, stop serving and remove the lockfile."""
        _loop.run(self._hub.stop())
