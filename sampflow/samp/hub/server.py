"""Hub lifecycle: profiles, lockfile, shutdown (SAMP 1.3 sections 3.4, 4.2.2, 4.3).

`AsyncHub` runs a hub on the current event loop: the Standard Profile always, and any other
profile added with `AsyncHub.add_profile` (the Web Profile, `sampflow.samp.hub.web`). It
knows profiles only through `sampflow.samp.hub.profiles.HubProfile`. The blocking,
astropy-compatible `SAMPHubServer` is in `sampflow.samp.hub.sync`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

import aiohttp

from ..errors import SAMPHubError
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
from ..xmlrpc import dumps_request, loads_response
from .core import HubCore
from .delivery import MAX_QUEUE
from .profiles import HubProfile, ProfileHooks
from .registry import Profile
from .service import HubService
from .standard import StandardProfile

__all__ = ["AsyncHub", "HubAlreadyRunning", "probe_hub"]

log = logging.getLogger("sampflow.hub")


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
        #: Profiles serving, in the order added, with the callable that removes each.
        self._served: list[tuple[HubProfile, Callable[[], None]]] = []
        self._stopped = asyncio.Event()
        self.is_running = False

    @property
    def params(self) -> dict[str, str]:
        """The lockfile's key-value pairs (section 4.2.2): each profile's
        `~HubProfile.lockfile_entries` (the Standard Profile's ``samp.secret`` and
        ``samp.hub.xmlrpc.url``), then the hub's own."""
        if self.url is None:
            raise SAMPHubError("the hub is not running")
        entries: dict[str, str] = {}
        for profile, _ in self._served:
            entries.update(profile.lockfile_entries())
        return {
            **entries,
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
        standard = StandardProfile(self.service, addr=self.addr, port=self.port)
        await self.add_profile(standard)
        self.port = standard.port
        self.url = standard.url
        try:
            create_lockfile(path, self.params)
        except LockfileExists:
            await self._stop_profiles()
            await self._check_lockfile(path)  # raises HubAlreadyRunning if one won the race
            raise SAMPHubError(f"lockfile {path} appeared while starting; try again") from None
        self.lockfile = path
        self.is_running = True
        log.info("SAMP hub listening at %s (lockfile %s)", self.url, path)

    async def add_profile(self, profile: HubProfile) -> None:
        """Add `profile` to the hub (`HubService.add_profile`) and start it; it is stopped
        when the hub stops. The one call through which every profile joins the hub.

        Parameters
        ----------
        profile : HubProfile
            A profile built on this hub's `service`, not started.

        Raises
        ------
        ValueError
            If a profile already serves clients of the same `Profile`.
        OSError
            If the profile cannot bind its socket; the hub then goes on without it.
        """
        remove = self.service.add_profile(profile)
        try:
            await profile.start()
        except BaseException:
            remove()
            raise
        self._served.append((profile, remove))

    def profile_for(self, kind: Profile) -> ProfileHooks | None:
        """The profile serving clients of `kind` (``Profile.WEB``: the `WebProfile`), or
        None."""
        return self.service.profile_for(kind)

    async def _stop_profiles(self) -> None:
        while self._served:
            profile, remove = self._served.pop()
            try:
                await profile.stop()
            finally:
                remove()

    async def stop(self, grace: float = 2.0) -> None:
        """Tell the clients (``samp.hub.event.shutdown``), stop serving, remove the lockfile
        if it is still ours. Safe to call twice."""
        if not self.is_running:
            return
        self.is_running = False
        if self.lockfile:
            remove_lockfile_if_ours(self.lockfile, self.service.secret)
        await self.service.shutdown(grace)
        await self._stop_profiles()
        log.info("SAMP hub stopped")
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Return once `stop` has finished."""
        await self._stopped.wait()
