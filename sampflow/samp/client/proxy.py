"""`SAMPHubProxy`: a blocking proxy to a hub's Standard Profile API (SAMP 1.3 section 4.2),
with astropy's interface. It runs on sampflow's shared background event loop.
"""

from __future__ import annotations

import inspect
import os
import warnings
from types import FrameType
from typing import Any, TypeVar

from .. import background
from ..errors import SAMPClientError, SAMPHubError, SAMPWarning
from ..lockfile import lockfile_location, read_lockfile
from ..types import mtype_subtypes
from .aio import AsyncSAMPClient, http_timeout, samp_timeout

__all__ = [
    "NOBODY_WARNING",
    "SAMPHubProxy",
    "hub_params_of",
    "mtype_subtypes",
    "warn_if_nobody",
]

#: The text of the `SAMPWarning` for a broadcast that reached no client (astropy's words,
#: so that warning filters written for astropy match).
NOBODY_WARNING = "No client was able to receive this message"

Recipients = TypeVar("Recipients", list[str], dict[str, str])


def warn_if_nobody(recipients: Recipients) -> Recipients:
    """Return `recipients` (what ``notifyAll`` / ``callAll`` answered), warning with
    `SAMPWarning` first when there are none, as astropy does.

    Warns
    -----
    SAMPWarning
        When `recipients` is empty.
    """
    if not recipients:
        warnings.warn(NOBODY_WARNING, SAMPWarning, stacklevel=_caller_level())
    return recipients


_CLIENT_DIR = os.path.dirname(os.path.abspath(__file__))


def _caller_level() -> int:
    """The `warnings.warn` stacklevel of the first frame outside this package (the code
    that called ``notify_all``, ``enotify_all``, ...)."""
    here = inspect.currentframe()  # this function; its caller is warn_if_nobody
    frame: FrameType | None = here.f_back.f_back if here and here.f_back else None
    level = 2
    while frame is not None and os.path.dirname(
            os.path.abspath(frame.f_code.co_filename)) == _CLIENT_DIR:
        frame = frame.f_back
        level += 1
    return level


def hub_params_of(hub: Any = None, hub_params: dict[str, str] | None = None) -> dict[str, str]:
    """The lockfile key-value pairs of `hub` (a `SAMPHubServer`), or `hub_params`, or those
    of the hub found through ``SAMP_HUB`` / ``~/.samp`` (section 4.3).

    Raises
    ------
    SAMPClientError
        If both arguments are given.
    SAMPHubError
        If no lockfile can be read.
    """
    if hub is not None and hub_params is not None:
        raise SAMPClientError("give hub or hub_params, not both")
    if hub is not None:
        return dict(hub.params)
    if hub_params is not None:
        return dict(hub_params)
    return read_lockfile(lockfile_location())


class SAMPHubProxy:
    """A blocking proxy to a hub's Standard Profile API (SAMP 1.3 section 4.2).

    Each method calls the ``samp.hub.*`` method of the same (camelCase) name with its
    arguments, private key first, and returns its result.

    Raises
    ------
    SAMPProxyError
        From every method, when the hub returns a fault.
    SAMPHubError
        When the hub cannot be reached.
    """

    def __init__(self) -> None:
        self._aio: AsyncSAMPClient | None = None
        self.lockfile: dict[str, str] = {}

    @property
    def is_connected(self) -> bool:
        """Whether `connect` has been called (and `disconnect` not since)."""
        return self._aio is not None

    def connect(self, hub: Any = None, hub_params: dict[str, str] | None = None,
                pool_size: int = 20) -> None:
        """Connect to a hub.

        Parameters
        ----------
        hub : SAMPHubServer, optional
            A hub running in this process.
        hub_params : dict, optional
            Lockfile key-value pairs of the hub; found via ``SAMP_HUB`` / ``~/.samp`` when
            neither argument is given.
        pool_size : int
            Accepted for astropy compatibility; connections are pooled automatically.

        Raises
        ------
        SAMPHubError
            If no hub lockfile is found, or the hub does not answer ``samp.hub.ping``.
        """
        params = hub_params_of(hub, hub_params)
        aio = AsyncSAMPClient(callable=False)
        aio.hub_params = params

        async def open_and_ping() -> None:
            await aio.open(params)
            await aio.ping()

        try:
            background.run(open_and_ping())
        except BaseException:
            background.run(aio.close())
            raise
        self._aio = aio
        self.lockfile = params

    def disconnect(self) -> None:
        """Close the connection to the hub."""
        if self._aio is not None:
            background.run(self._aio.close())
            self._aio = None

    def _call(self, method: str, *params: Any, timeout: float | None = 60.0) -> Any:
        if self._aio is None:
            raise SAMPHubError("SAMPHubProxy is not connected")
        return background.run(self._aio.request(f"samp.hub.{method}", *params, timeout=timeout))

    def ping(self) -> Any:
        """``samp.hub.ping``."""
        return self._call("ping")

    def set_xmlrpc_callback(self, private_key: str, xmlrpc_addr: str) -> Any:
        """``samp.hub.setXmlrpcCallback``."""
        return self._call("setXmlrpcCallback", private_key, xmlrpc_addr)

    def register(self, secret: str) -> dict[str, str]:
        """``samp.hub.register``: returns the registration map."""
        return self._call("register", secret)

    def unregister(self, private_key: str) -> Any:
        """``samp.hub.unregister``."""
        return self._call("unregister", private_key)

    def declare_metadata(self, private_key: str, metadata: dict[str, Any]) -> Any:
        """``samp.hub.declareMetadata``."""
        return self._call("declareMetadata", private_key, metadata)

    def get_metadata(self, private_key: str, client_id: str) -> dict[str, Any]:
        """``samp.hub.getMetadata``."""
        return self._call("getMetadata", private_key, client_id)

    def declare_subscriptions(self, private_key: str, subscriptions: dict[str, Any]) -> Any:
        """``samp.hub.declareSubscriptions``."""
        return self._call("declareSubscriptions", private_key, subscriptions)

    def get_subscriptions(self, private_key: str, client_id: str) -> dict[str, Any]:
        """``samp.hub.getSubscriptions``."""
        return self._call("getSubscriptions", private_key, client_id)

    def get_registered_clients(self, private_key: str) -> list[str]:
        """``samp.hub.getRegisteredClients``."""
        return self._call("getRegisteredClients", private_key)

    def get_subscribed_clients(self, private_key: str, mtype: str) -> dict[str, Any]:
        """``samp.hub.getSubscribedClients``."""
        return self._call("getSubscribedClients", private_key, mtype)

    def notify(self, private_key: str, recipient_id: str, message: dict[str, Any]) -> Any:
        """``samp.hub.notify``."""
        return self._call("notify", private_key, recipient_id, message)

    def notify_all(self, private_key: str, message: dict[str, Any]) -> list[str]:
        """``samp.hub.notifyAll``: the recipients' ids; warns (`SAMPWarning`) when none."""
        return warn_if_nobody(self._call("notifyAll", private_key, message))

    def call(self, private_key: str, recipient_id: str, msg_tag: str,
             message: dict[str, Any]) -> str:
        """``samp.hub.call``: returns the msg-id."""
        return self._call("call", private_key, recipient_id, msg_tag, message)

    def call_all(self, private_key: str, msg_tag: str, message: dict[str, Any]) -> dict[str, str]:
        """``samp.hub.callAll``: recipient id -> msg-id; warns (`SAMPWarning`) when none."""
        return warn_if_nobody(self._call("callAll", private_key, msg_tag, message))

    def call_and_wait(self, private_key: str, recipient_id: str, message: dict[str, Any],
                      timeout: str | int | float) -> dict[str, Any]:
        """``samp.hub.callAndWait`` (section 3.11): the response map.

        `timeout` is in seconds, rounded up to whole seconds; 0 (or less) means no limit
        (the one rule of `sampflow.samp.client.aio.samp_timeout`: ``"0.5"`` waits 1 s).
        """
        seconds = samp_timeout(timeout)
        return self._call("callAndWait", private_key, recipient_id, message, seconds,
                          timeout=http_timeout(seconds))

    def reply(self, private_key: str, msg_id: str, response: dict[str, Any]) -> Any:
        """``samp.hub.reply``."""
        return self._call("reply", private_key, msg_id, response)
