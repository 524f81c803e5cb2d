"""Exceptions raised by sampflow's SAMP implementation.

The tree, by who broke the protocol::

    SAMPError                     base of everything below
    +-- SAMPHubError              the hub refused a request (a fault came back), or a hub
    |                             could not be found, started or reached
    +-- SAMPClientError           a client-side failure: not connected, bad arguments,
    |                             no handler bound, a callback that failed
    +-- SAMPProxyError            an XML-RPC fault the hub returned; also an
    |                             `xmlrpc.client.Fault` (as in astropy), and a `SAMPHubError`
    |                             so that ``except SAMPHubError`` catches both
    +-- ProtocolError             raised by the sans-I/O hub core (`sampflow.samp.hub.core`)
        +-- LocalProtocolError    the caller of the core broke SAMP (unknown private key,
        |                         a notification to a client not subscribed, ...)
        +-- CallTimeout           a synchronous call (``callAndWait``) timed out

`SAMPWarning` is a `UserWarning` for recoverable trouble (a malformed lockfile line, a
client callback URL that stopped answering, a broadcast that reached nobody).

XML-RPC faults exist only at the transport boundary: the transports convert a
`ProtocolError` into a fault whose ``faultString`` is the error message and whose
``faultCode`` is `FAULT_CODE`; the clients convert a fault back into `SAMPHubError`.
"""

from __future__ import annotations

import xmlrpc.client

__all__ = [
    "FAULT_CODE",
    "CallTimeout",
    "LocalProtocolError",
    "ProtocolError",
    "SAMPClientError",
    "SAMPError",
    "SAMPHubError",
    "SAMPProxyError",
    "SAMPWarning",
]

#: The ``faultCode`` of every fault sampflow's hub returns. SAMP 1.3 does not assign fault
#: codes (section 3.8: "the hub SHOULD return an XML-RPC fault"); the message says why.
FAULT_CODE = 1


class SAMPError(Exception):
    """Base class of every sampflow SAMP exception."""


class SAMPHubError(SAMPError):
    """The hub refused a request, or no hub could be found, started or reached."""


class SAMPClientError(SAMPError):
    """A failure on the client side (not connected, bad arguments, no handler bound)."""


class SAMPProxyError(xmlrpc.client.Fault, SAMPHubError):
    """An XML-RPC fault the hub returned to a client request (``samp.hub.*``).

    As in astropy it is an `xmlrpc.client.Fault`, so ``except xmlrpc.client.Fault`` around
    ``notify`` / ``call`` catches it; it is also a `SAMPHubError`. `faultString` is the
    hub's fault string alone (SAMP 1.3 section 3.8: the hub says why), and so is
    ``str(error)`` (astropy's is the `repr`, ``<SAMPProxyError code: 'string'>``, which
    `repr` still gives here).

    Parameters
    ----------
    faultCode : int
        The fault code from the hub.
    faultString : str
        The fault message from the hub.
    **extra
        Accepted like `xmlrpc.client.Fault`'s and ignored.

    Examples
    --------
    >>> import xmlrpc.client
    >>> error = SAMPProxyError(1, "client c3 is not subscribed to x.y")
    >>> isinstance(error, xmlrpc.client.Fault), isinstance(error, SAMPHubError)
    (True, True)
    >>> error.faultString == str(error) == 'client c3 is not subscribed to x.y'
    True
    >>> error
    <SAMPProxyError 1: 'client c3 is not subscribed to x.y'>
    """

    def __init__(self, faultCode: int, faultString: str,
                 **extra: object) -> None:
        xmlrpc.client.Fault.__init__(self, faultCode, faultString, **extra)

    def __str__(self) -> str:
        return str(self.faultString)


class SAMPWarning(UserWarning):
    """Recoverable SAMP trouble: a malformed lockfile line, an unresponsive callback, a
    message that reached no recipient."""


class ProtocolError(SAMPError):
    """Raised by the sans-I/O hub core when a request cannot be honoured."""


class LocalProtocolError(ProtocolError):
    """The caller broke SAMP: an unknown private key, a bad argument, an unknown client."""


class CallTimeout(ProtocolError):
    """A synchronous call (``samp.hub.callAndWait``) got no response in time."""
