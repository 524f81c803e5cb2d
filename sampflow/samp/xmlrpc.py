"""A safe XML-RPC codec for SAMP's Standard and Web Profiles (SAMP 1.3 sections 4.1, 5.1).

Parsing goes only through defusedxml's expat parser with DTDs, entities and external
references refused; the values are built by the standard library's XML-RPC unmarshaller,
which keeps a stack rather than recursing. On top of that this module bounds the document
size and the element nesting depth.

Marshalling uses the standard library (`xmlrpc.client.dumps`): it escapes ``&``, ``<`` and
``>`` and writes XML-RPC ``<string>`` values; SAMP needs nothing else.

Every parse failure raises `MalformedRequest`, whose message says what was wrong; the
transports turn it into an XML-RPC fault.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser

from .errors import FAULT_CODE, SAMPHubError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MalformedRequest",
    "Fault",
    "loads_request",
    "loads_response",
    "dumps_request",
    "dumps_response",
    "dumps_fault",
    "safe_xmlrpc_loads",
]

#: Largest XML-RPC document accepted, in bytes (16 MiB). SAMP messages carry URLs, not data.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Deepest element nesting accepted. A SAMP message nests maps and lists a few levels deep;
#: XML-RPC adds about three elements per level.
MAX_DEPTH = 200

Fault = xmlrpc.client.Fault


class MalformedRequest(SAMPHubError):
    """An XML-RPC document that cannot be accepted: bad XML, a DTD, too big, too deep."""


class _BoundedUnmarshaller(xmlrpc.client.Unmarshaller):
    """The standard unmarshaller with an element depth bound."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(use_datetime=False, use_builtin_types=True)
        self._depth = 0
        self._max_depth = max_depth

    def start(self, tag: str, attrs: Any) -> None:
        self._depth += 1
        if self._depth > self._max_depth:
            raise MalformedRequest(f"XML nesting deeper than {self._max_depth} elements")
        super().start(tag, attrs)

    def end(self, tag: str) -> Any:
        self._depth -= 1
        return super().end(tag)


def _parse(body: bytes, max_bytes: int, max_depth: int) -> _BoundedUnmarshaller:
    if len(body) > max_bytes:
        raise MalformedRequest(f"XML-RPC body of {len(body)} bytes exceeds {max_bytes} bytes")
    target = _BoundedUnmarshaller(max_depth)
    parser = DefusedExpatParser(target, forbid_dtd=True)
    try:
        parser.feed(body)
        parser.close()
    except MalformedRequest:
        raise
    except DefusedXmlException as exc:
        raise MalformedRequest(f"refused XML: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # expat.ExpatError, ValueError from a bad <int>, ...
        raise MalformedRequest(f"malformed XML-RPC: {exc}") from None
    return target


def loads_request(
    body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH
) -> tuple[str, tuple[Any, ...]]:
    """Parse an XML-RPC ``methodCall`` document.

    Parameters
    ----------
    body : bytes
        The HTTP request body.
    max_bytes : int
        Size bound in bytes.
    max_depth : int
        Element nesting bound.

    Returns
    -------
    method : str
        The ``methodName``.
    params : tuple
        The decoded parameters: str, int, float, bool, list, dict, bytes (base64) as sent.

    Raises
    ------
    MalformedRequest
        If the body is too large or too deep, is not well-formed XML, holds a DTD or an
        entity declaration, or is not a ``methodCall`` with a ``methodName``.
    """
    target = _parse(body, max_bytes, max_depth)
    method = target.getmethodname()
    if not method:
        raise MalformedRequest("not an XML-RPC methodCall: no methodName")
    try:
        params = target.close()
    except Exception as exc:
        raise MalformedRequest(f"malformed XML-RPC params: {exc}") from None
    return method, params


def loads_response(
    body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Parse an XML-RPC ``methodResponse`` document.

    Parameters
    ----------
    body : bytes
        The HTTP response body.
    max_bytes, max_depth : int
        Bounds, as for `loads_request`.

    Returns
    -------
    object
        The single returned value.

    Raises
    ------
    Fault
        If the response is a fault.
    MalformedRequest
        If the document is refused or malformed.
    """
    target = _parse(body, max_bytes, max_depth)
    try:
        values = target.close()
    except Fault:
        raise
    except Exception as exc:
        raise MalformedRequest(f"malformed XML-RPC response: {exc}") from None
    return values[0] if values else ""


def safe_xmlrpc_loads(data: bytes | str) -> tuple[tuple[Any, ...], str | None]:
    """Parse an XML-RPC document safely, as `xmlrpc.client.loads` would.

    Parameters
    ----------
    data : bytes or str
        An XML-RPC ``methodCall`` or ``methodResponse``.

    Returns
    -------
    params : tuple
        The values.
    method : str or None
        The method name for a call, None for a response.

    Raises
    ------
    Fault
        If the document is a fault response.
    MalformedRequest
        If the document is refused (DTD, entities, too big, too deep) or malformed.
    """
    body = data.encode("utf-8") if isinstance(data, str) else data
    target = _parse(body, MAX_BODY_BYTES, MAX_DEPTH)
    method = target.getmethodname()
    try:
        return target.close(), method
    except Fault:
        raise
    except Exception as exc:
        raise MalformedRequest(f"malformed XML-RPC: {exc}") from None


def dumps_request(method: str, params: tuple[Any, ...]) -> bytes:
    """Marshal an XML-RPC ``methodCall``; returns UTF-8 bytes."""
    return xmlrpc.client.dumps(params, method, encoding="utf-8").encode("utf-8")


def dumps_response(value: Any) -> bytes:
    """Marshal an XML-RPC ``methodResponse`` holding `value`; returns UTF-8 bytes.

    SAMP methods that return nothing return the empty string (section 4.1.2 maps "void" to
    an empty string), so None becomes ``""``.
    """
    if value is None:
        value = ""
    return xmlrpc.client.dumps((value,), methodresponse=True, encoding="utf-8").encode("utf-8")


def dumps_fault(message: str, code: int = FAULT_CODE) -> bytes:
    """Marshal an XML-RPC fault with `message`; returns UTF-8 bytes."""
    return xmlrpc.client.dumps(Fault(code, message), encoding="utf-8").encode("utf-8")
