"""astropy's ``astropy.samp.utils`` names: `SAMPMsgReplierWrapper`, `SAMPXXEServerProxy`
and `safe_xmlrpc_loads`, over sampflow's safe XML-RPC codec (`sampflow.samp.xmlrpc`).
"""

from __future__ import annotations

import datetime
import functools
import http.client
import logging
import xmlrpc.client
from collections.abc import Callable
from typing import Any

from .constants import SAMP_STATUS_ERROR, SAMP_STATUS_OK
from .xmlrpc import MAX_BODY_BYTES, MalformedRequest, loads_response
from .xmlrpc import safe_xmlrpc_loads as _safe_loads

__all__ = ["SAMPMsgReplierWrapper", "SAMPXXEServerProxy", "safe_xmlrpc_loads"]

log = logging.getLogger("sampflow.client")


def _legacy_types(value: Any, use_datetime: bool) -> Any:
    """Values as `xmlrpc.client.loads` gives them with ``use_builtin_types=False``."""
    if isinstance(value, bytes):
        return xmlrpc.client.Binary(value)
    if isinstance(value, datetime.datetime) and not use_datetime:
        return xmlrpc.client.DateTime(value)
    if isinstance(value, list):
        return [_legacy_types(v, use_datetime) for v in value]
    if isinstance(value, tuple):
        return tuple(_legacy_types(v, use_datetime) for v in value)
    if isinstance(value, dict):
        return {k: _legacy_types(v, use_datetime) for k, v in value.items()}
    return value


def safe_xmlrpc_loads(data: bytes | str, use_datetime: bool = False,
                      use_builtin_types: bool = False) -> tuple[tuple[Any, ...], str | None]:
    """Parse an XML-RPC document as `xmlrpc.client.loads` does, but safely (SAMP 1.3
    section 4.1): no DTDs or entities, bounded size and nesting.

    Parameters
    ----------
    data : bytes or str
        An XML-RPC ``methodCall`` or ``methodResponse``.
    use_datetime, use_builtin_types : bool
        As for `xmlrpc.client.loads`: with `use_builtin_types` base64 values are `bytes` and
        dates `datetime.datetime`, else `xmlrpc.client.Binary` and `xmlrpc.client.DateTime`
        (`datetime.datetime` with `use_datetime`). SAMP itself only sends strings.

    Returns
    -------
    params : tuple
        The values.
    method : str or None
        The method name of a call; None for a response.

    Raises
    ------
    xmlrpc.client.Fault
        If the document is a fault response.
    sampflow.samp.xmlrpc.MalformedRequest
        If the document is refused or malformed (astropy raises expat's errors instead).

    Examples
    --------
    >>> safe_xmlrpc_loads(xmlrpc.client.dumps(("a", 1), "samp.hub.ping"))
    (('a', 1), 'samp.hub.ping')
    """
    params, method = _safe_loads(data)
    if not use_builtin_types:
        params = _legacy_types(params, use_datetime)
    return params, method


class SAMPMsgReplierWrapper:
    """Decorator for a call handler that answers with what the handler returns.

    The wrapped handler takes astropy's call arguments ``(private_key, sender_id, msg_id,
    mtype, params, extra)`` and returns the ``samp.result`` map (None for an empty one);
    the wrapper replies ``samp.ok`` with it through `cli`. If the handler raises, the reply
    is ``samp.error`` with the exception as ``samp.errortxt`` (SAMP 1.3 section 3.9). For
    a notification (``msg_id`` None, or a five-argument handler) nothing is replied.

    Parameters
    ----------
    cli : SAMPIntegratedClient or SAMPClient-like
        Anything with ``reply(msg_id, response)``.

    Examples
    --------
    >>> class Recorder:
    ...     def reply(self, msg_id, response):
    ...         print(msg_id, response)
    >>> @SAMPMsgReplierWrapper(Recorder())
    ... def add(private_key, sender_id, msg_id, mtype, params, extra):
    ...     return {"sum": str(int(params["a"]) + int(params["b"]))}
    >>> add("key", "c1", "m1", "calc.add", {"a": "1", "b": "2"}, {})
    m1 {'samp.status': 'samp.ok', 'samp.result': {'sum': '3'}}
    """

    def __init__(self, cli: Any) -> None:
        self.cli = cli

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapped(*args: Any) -> None:
            if len(args) != 6 or args[2] is None:
                function(*args)
                return
            msg_id = args[2]
            try:
                result = function(*args)
            except Exception as exc:
                log.debug("handler %r failed", function, exc_info=True)
                response: dict[str, Any] = {
                    "samp.status": SAMP_STATUS_ERROR,
                    "samp.error": {"samp.errortxt": f"{type(exc).__name__}: {exc}"},
                }
            else:
                response = {"samp.status": SAMP_STATUS_OK, "samp.result": result or {}}
            self.cli.reply(msg_id, response)

        return wrapped


class _SafeParsing:
    """`xmlrpc.client.Transport` mix-in: responses parsed by sampflow's safe codec."""

    def parse_response(self, response: http.client.HTTPResponse) -> tuple[Any, ...]:
        body = response.read(MAX_BODY_BYTES + 1)
        try:
            return (loads_response(body),)
        except MalformedRequest as exc:
            raise xmlrpc.client.ResponseError(str(exc)) from None


class _SafeTransport(_SafeParsing, xmlrpc.client.Transport):
    pass


class _SafeHTTPSTransport(_SafeParsing, xmlrpc.client.SafeTransport):
    pass


class SAMPXXEServerProxy(xmlrpc.client.ServerProxy):
    """An `xmlrpc.client.ServerProxy` whose responses are parsed safely (no DTDs, no
    entities, bounded size and nesting), as astropy's is.

    Parameters
    ----------
    uri : str
        The server's URL (a hub's ``samp.hub.xmlrpc.url``).
    *args, **kwargs
        As for `xmlrpc.client.ServerProxy`; a `transport` given is used as it is.

    Raises
    ------
    xmlrpc.client.Fault
        From a method call, when the server answers with a fault.
    xmlrpc.client.ResponseError
        From a method call, when the answer is refused or malformed.
    """

    def __init__(self, uri: str, *args: Any, **kwargs: Any) -> None:
        if len(args) < 1 and "transport" not in kwargs:
            secure = uri.lower().startswith("https:")
            kwargs["transport"] = _SafeHTTPSTransport() if secure else _SafeTransport()
        super().__init__(uri, *args, **kwargs)
