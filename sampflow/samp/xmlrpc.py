"""A safe XML-RPC codec for SAMP's Standard and Web Profiles (SAMP 1.3 sections 4.1, 5.1).

Parsing goes only through defusedxml's expat parser with DTDs, entities and external
references refused; the values are built by the standard library's XML-RPC unmarshaller,
which keeps a stack rather than recursing. On top of that this module bounds, per document,
its size (`MAX_BODY_BYTES`), element nesting (`MAX_DEPTH`) and number of values
(`MAX_VALUES`), and per value the length of a string (`MAX_STRING_CHARS`). A document over a
bound is refused as soon as the bound is crossed, so refusing costs no more than the bound.

SAMP values are strings, lists and maps only (SAMP 1.3 section 3.3), but astropy's and pyvo's
clients send Python ints, floats and booleans as they are, and their hubs relay them: pyvo's
own test suite sends ``{"parameter2": 1331}`` and expects the int back. So the hub profiles
parse with one of two checks, both applied at parse time with a fault that names the type:

``types="relayable"`` (the hub's default)
    Every value must be one the hub can relay exactly as it came: strings, lists, maps,
    ``<int>``/``<i4>`` (and ``<i8>``, ``<i1>``, ``<i2>``) within 32 bits, ``<double>``,
    ``<boolean>``, ``<base64>``, ``<dateTime.iso8601>``. ``<nil/>``, integers beyond 32
    bits, ``<bigdecimal>`` and every extension type are refused: the hub could not encode
    them again, and a message it accepts must be a message it can deliver.
``types="samp"`` (``AsyncHub(value_types="samp")``)
    Inside maps and lists, only SAMP's string, list and map. A method argument outside any
    map or list (the flag of ``allowReverseCallbacks``, the timeout of ``callAndWait``) may
    still be any relayable scalar, as astropy's clients send them.

Numbers and booleans that sampflow sends travel as SAMP strings (`sampflow.samp.types`).
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
    "MAX_VALUES",
    "MAX_STRING_CHARS",
    "SAMP_ELEMENTS",
    "RELAYABLE_ELEMENTS",
    "VALUE_TYPES",
    "MalformedRequest",
    "Fault",
    "loads_request",
    "loads_response",
    "dumps_request",
    "dumps_response",
    "dumps_fault",
    "safe_xmlrpc_loads",
    "LARGE_VALUES",
    "is_large",
]

#: Largest XML-RPC document accepted, in bytes (8 MiB). SAMP messages carry URLs, not data;
#: a hub parses and re-encodes what it relays on its one event loop, so this bounds the time
#: any one request can take from the others.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Deepest element nesting accepted. A SAMP message nests maps and lists a few levels deep;
#: XML-RPC adds about three elements per level.
MAX_DEPTH = 200
#: Most values (``<value>`` elements: strings, lists, maps) in one document. A
#: ``table.select.rowList`` of 200,000 rows fits.
MAX_VALUES = 250_000
#: Longest string value, in characters (4 Mi).
MAX_STRING_CHARS = 4 * 1024 * 1024
#: The XML-RPC elements SAMP's three types need (sections 3.3, 4.1.1), and the document's own.
SAMP_ELEMENTS = frozenset({
    "methodCall", "methodName", "methodResponse", "params", "param", "value", "string",
    "array", "data", "struct", "member", "name",
})
#: XML-RPC integer elements: relayable within 32 bits (what ``<int>`` can carry).
_INT_ELEMENTS = frozenset({"int", "i4", "i8", "i1", "i2"})
#: Elements of values a hub can encode again exactly as they came (`loads_request` types).
RELAYABLE_ELEMENTS = SAMP_ELEMENTS | _INT_ELEMENTS | {
    "boolean", "double", "base64", "dateTime.iso8601"}
#: The `loads_request` type checks.
VALUE_TYPES = ("any", "relayable", "samp")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

#: Values (strings, lists, maps counted one each) past which a value is `is_large`: worth
#: encoding or decoding off the event loop.
LARGE_VALUES = 4096

Fault = xmlrpc.client.Fault


def is_large(value: Any, limit: int = LARGE_VALUES) -> bool:
    """Tell whether `value` holds more than `limit` values or characters, cheaply.

    The walk stops as soon as the answer is known, so it costs at most about `limit` steps.

    Examples
    --------
    >>> is_large({"samp.mtype": "x.y", "samp.params": {"url": "file:///a.fits"}})
    False
    >>> is_large({"rows": [str(i) for i in range(10_000)]})
    True
    """
    budget = limit
    stack = [value]
    while stack:
        item = stack.pop()
        budget -= 1
        if isinstance(item, str):
            budget -= len(item) >> 6
        elif isinstance(item, dict):
            stack.extend(item.values())
            budget -= len(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        if budget < 0:
            return True
    return False


class MalformedRequest(SAMPHubError):
    """An XML-RPC document that cannot be accepted: bad XML, a DTD, too big, too deep."""


class _BoundedUnmarshaller(xmlrpc.client.Unmarshaller):
    """The standard unmarshaller with bounds on depth, value count and string length, and
    the `VALUE_TYPES` check `types`."""

    def __init__(self, max_depth: int, types: str = "any") -> None:
        super().__init__(use_datetime=False, use_builtin_types=True)
        if types not in VALUE_TYPES:
            raise ValueError(f"types must be one of {VALUE_TYPES}, not {types!r}")
        self._depth = 0
        self._max_depth = max_depth
        self._values = 0
        self._chars = 0
        self._checked = types != "any"
        self._samp_only = types == "samp"
        self._containers = 0  # open <array> and <struct> elements

    def start(self, tag: str, attrs: Any) -> None:
        self._depth += 1
        if self._depth > self._max_depth:
            raise MalformedRequest(f"XML nesting deeper than {self._max_depth} elements")
        if tag == "value":
            self._values += 1
            if self._values > MAX_VALUES:
                raise MalformedRequest(f"more than {MAX_VALUES} values in one XML-RPC document")
        elif tag == "array" or tag == "struct":
            self._containers += 1
        elif self._checked and tag not in SAMP_ELEMENTS:
            if tag not in RELAYABLE_ELEMENTS:
                raise MalformedRequest(
                    f"XML-RPC <{tag}> cannot be relayed: SAMP values are strings, lists and "
                    "maps (SAMP 1.3 section 3.3); send numbers and booleans as strings")
            if self._samp_only and self._containers:
                raise MalformedRequest(
                    f"XML-RPC <{tag}> is not a SAMP type: SAMP values are strings, lists and "
                    "maps (SAMP 1.3 section 3.3); send numbers and booleans as strings")
        self._chars = 0
        super().start(tag, attrs)

    def data(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > MAX_STRING_CHARS:
            raise MalformedRequest(f"a string value longer than {MAX_STRING_CHARS} characters")
        self._data.append(text)

    def end(self, tag: str) -> Any:
        self._depth -= 1
        self._chars = 0
        if tag == "array" or tag == "struct":
            self._containers -= 1
        result = super().end(tag)
        if self._checked and tag in _INT_ELEMENTS:
            value: Any = self._stack[-1]
            if not _INT_MIN <= value <= _INT_MAX:
                raise MalformedRequest(
                    f"XML-RPC <{tag}>{value}</{tag}> cannot be relayed: beyond the 32 bits of "
                    "XML-RPC <int>; SAMP sends integers as strings (SAMP 1.3 section 3.3)")
        return result


def _parse(body: bytes, max_bytes: int, max_depth: int,
           types: str = "any") -> _BoundedUnmarshaller:
    if len(body) > max_bytes:
        raise MalformedRequest(f"XML-RPC body of {len(body)} bytes exceeds {max_bytes} bytes")
    target = _BoundedUnmarshaller(max_depth, types)
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
    body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH,
    types: str = "any",
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
    types : {"any", "relayable", "samp"}
        Which values to accept (see the module docstring): every XML-RPC type as sent;
        those a hub can relay exactly (the hub profiles' default); or, inside maps and
        lists, only SAMP's string, list and map (SAMP 1.3 section 3.3).

    Returns
    -------
    method : str
        The ``methodName``.
    params : tuple
        The decoded parameters: str, list and dict; unless `types` is ``"samp"``, also
        int, float, bool, bytes (base64) and `datetime.datetime` as sent, and with
        ``"any"`` None (``<nil/>``) and integers of any size.

    Raises
    ------
    MalformedRequest
        If the body is too large, too deep, holds more than `MAX_VALUES` values or a string
        longer than `MAX_STRING_CHARS`, is not well-formed XML, holds a DTD or an entity
        declaration, is not a ``methodCall`` with a ``methodName``, or holds a value
        `types` does not accept.
    """
    target = _parse(body, max_bytes, max_depth, types)
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
