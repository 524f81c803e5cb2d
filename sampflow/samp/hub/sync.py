"""`SAMPHubServer`: the blocking, astropy-compatible hub (astropy's ``SAMPHubServer``).

It runs an `~sampflow.samp.hub.server.AsyncHub` on sampflow's background event loop and,
when asked, adds the Web Profile (`sampflow.samp.hub.web.WebProfile`) to it. This module
chooses the profiles; `sampflow.samp.hub.server` knows them only through their interface.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

from ..background import background_loop, run
from ..errors import SAMPHubError, SAMPWarning
from ..types import mtype_subtypes
from .server import AsyncHub
from .web import attach_web_profile

__all__ = ["WEB_PROFILE_DEFAULT_WARNING", "SAMPHubServer"]

log = logging.getLogger("sampflow.hub")


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
        Stop the hub when no client is registered (the hub's own aside): every `timeout`
        seconds from `start` on, the hub looks, and stops if it is empty at that moment,
        whatever requests came in between; 0 (the default) never stops it.
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
        self._web_options = {"enabled": bool(web_profile), "dialog": web_profile_dialog,
                                 "port": web_port}
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
        run(self._hub.start())
        if self._warn_web_default and not _web_default_warned:
            _web_default_warned = True
            warnings.warn(WEB_PROFILE_DEFAULT_WARNING, SAMPWarning, stacklevel=2)
        if self._web_options["enabled"]:
            run(attach_web_profile(self._hub, port=self._web_options["port"],
                                   consent=self._web_options["dialog"]))
        if self._timeout:
            background_loop().call_soon_threadsafe(
                lambda: asyncio.get_running_loop().call_later(self._timeout, self._arm_idle_timer))
        if wait:
            run(self._hub.wait_stopped())

    def _arm_idle_timer(self) -> None:
        """Stop the hub if no client is registered; else look again in `timeout` seconds."""
        if not self._hub.is_running:
            return
        if len(self._hub.core.registry) <= 1:  # only the hub's own client
            log.info("no client registered (looked every %s s): stopping the hub",
                     self._timeout)
            asyncio.get_running_loop().create_task(self._hub.stop())
            return
        asyncio.get_running_loop().call_later(self._timeout, self._arm_idle_timer)

    def stop(self) -> None:
        """Tell the clients, stop serving and remove the lockfile."""
        run(self._hub.stop())
