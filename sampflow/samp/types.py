"""The SAMP data model (SAMP 1.3 section 3.3) and MType matching (section 3.2).

SAMP carries three types: string, list and map (string keys). Numbers and booleans travel as
strings with agreed encodings (section 3.3): `encode_int`, `encode_float`, `encode_bool` and
their ``decode_*`` partners implement them.

What sampflow sends is valid SAMP. sampflow's hub relays XML-RPC ints, doubles and booleans
as sent (astropy's clients send them), but refuses at parse time what it could not relay
(``<nil/>``, integers beyond 32 bits, extension types), or with ``value_types="samp"`` every
type but SAMP's own inside maps and lists (`sampflow.samp.xmlrpc.loads_request`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from .constants import SAMP_STATUS_ERROR, SAMP_STATUS_OK, SAMP_STATUS_WARNING

__all__ = [
    "MTYPE_PATTERN_SYNTAX",
    "MTYPE_SYNTAX",
    "mtype_matches",
    "mtype_subtypes",
    "is_valid_mtype",
    "is_valid_pattern",
    "make_message",
    "make_response",
    "error_response",
    "encode_int",
    "decode_int",
    "encode_float",
    "decode_float",
    "encode_bool",
    "decode_bool",
    "encode_value",
    "is_samp_value",
]

#: An MType atom: one or more of digit, letter, ``-`` and ``_``.
_ATOM = r"[0-9a-zA-Z_-]+"
#: The MType syntax as a regular expression (atoms joined by ``.``): ``mtype ::= atom |
#: mtype "." atom``. The text is also the JSON Schema ``pattern`` of the rule file format.
MTYPE_SYNTAX = rf"^{_ATOM}(\.{_ATOM})*$"
#: A subscription key (MType pattern): an MType, an MType followed by ``.*`` (the whole
#: subtree below it, not the MType itself), or ``*`` alone (every MType).
MTYPE_PATTERN_SYNTAX = rf"^(\*|{_ATOM}(\.{_ATOM})*(\.\*)?)$"
_MTYPE_RE = re.compile(MTYPE_SYNTAX)
_PATTERN_RE = re.compile(MTYPE_PATTERN_SYNTAX)


def is_valid_mtype(mtype: object) -> bool:
    """Tell whether `mtype` has the MType syntax of section 3.2.

    Examples
    --------
    >>> is_valid_mtype("table.load.votable")
    True
    >>> is_valid_mtype("table.*"), is_valid_mtype("table.load.votable\\n")
    (False, False)
    """
    return isinstance(mtype, str) and _MTYPE_RE.fullmatch(mtype) is not None


def is_valid_pattern(pattern: object) -> bool:
    """Tell whether `pattern` is a subscription key: an MType, ``x.y.*`` or ``*`` (section 3.2).

    Examples
    --------
    >>> [is_valid_pattern(p) for p in ("*", "table.*", "table.load.votable", "tab*")]
    [True, True, True, False]
    """
    return isinstance(pattern, str) and _PATTERN_RE.fullmatch(pattern) is not None


def mtype_subtypes(mtype: str) -> list[str]:
    """Every subscription pattern that matches `mtype`, most specific first (section 3.2).

    A client looks a message's handler up in this order. It is also astropy's
    ``SAMPHubServer.get_mtype_subtypes``.

    Examples
    --------
    >>> mtype_subtypes("samp.app.ping")
    ['samp.app.ping', 'samp.app.*', 'samp.*', '*']
    >>> mtype_subtypes("*")
    ['*', '*']
    """
    atoms = mtype.split(".")
    prefixes = [".".join(atoms[:n]) + ".*" for n in range(len(atoms) - 1, 0, -1)]
    return [mtype, *prefixes, "*"]


def mtype_matches(pattern: str, mtype: str) -> bool:
    """Tell whether subscription `pattern` matches `mtype` (SAMP 1.3 section 3.2).

    ``*`` alone matches every MType; ``a.b.*`` matches any MType that starts with the atoms
    ``a.b`` followed by at least one more atom. The match is on atom boundaries: ``table.*``
    matches ``table.load.votable`` but neither ``table`` nor ``tablefoo.x``.

    Parameters
    ----------
    pattern : str
        A subscription key.
    mtype : str
        A concrete MType.

    Returns
    -------
    bool

    Examples
    --------
    >>> mtype_matches("table.*", "table.load.votable")
    True
    >>> mtype_matches("table.*", "tablefoo.x")
    False
    >>> mtype_matches("table.*", "table")
    False
    >>> mtype_matches("*", "samp.app.ping")
    True
    >>> mtype_matches("samp.app.ping", "samp.app.ping")
    True
    """
    if pattern == "*" or pattern == mtype:
        return True
    if pattern.endswith(".*"):
        return len(mtype) > len(pattern) - 1 and mtype.startswith(pattern[:-1])
    return False


def make_message(mtype: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Build a SAMP message map (section 3.8).

    Parameters
    ----------
    mtype : str
        The MType.
    params : dict, optional
        The ``samp.params`` map; empty when omitted.
    **extra
        Further top-level keys (for example ``"x-samp.mostly-harmless"``).

    Returns
    -------
    dict
        ``{"samp.mtype": mtype, "samp.params": params, **extra}``.

    Raises
    ------
    ValueError
        If `mtype` is not a valid MType.

    Examples
    --------
    >>> make_message("samp.app.ping")
    {'samp.mtype': 'samp.app.ping', 'samp.params': {}}
    """
    if not is_valid_mtype(mtype):
        raise ValueError(f"not a valid MType: {mtype!r}")
    return {"samp.mtype": mtype, "samp.params": dict(params or {}), **extra}


def make_response(
    status: str = SAMP_STATUS_OK,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a SAMP response map (section 3.9).

    Parameters
    ----------
    status : str
        ``samp.ok``, ``samp.warning`` or ``samp.error``.
    result : dict, optional
        The ``samp.result`` map (given for ``samp.ok`` and ``samp.warning``).
    error : dict, optional
        The ``samp.error`` map; must hold ``samp.errortxt`` (for ``samp.warning`` and
        ``samp.error``).

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If `status` is not one of the three values, or an error map lacks ``samp.errortxt``.

    Examples
    --------
    >>> make_response()
    {'samp.status': 'samp.ok', 'samp.result': {}}
    >>> make_response("samp.error", error={"samp.errortxt": "no such table"})["samp.status"]
    'samp.error'
    """
    if status not in (SAMP_STATUS_OK, SAMP_STATUS_WARNING, SAMP_STATUS_ERROR):
        raise ValueError(f"not a SAMP status: {status!r}")
    response: dict[str, Any] = {"samp.status": status}
    if status != SAMP_STATUS_ERROR or result is not None:
        response["samp.result"] = dict(result or {})
    if error is not None:
        if "samp.errortxt" not in error:
            raise ValueError("a samp.error map needs samp.errortxt")
        response["samp.error"] = dict(error)
    elif status == SAMP_STATUS_ERROR:
        raise ValueError("a samp.error response needs an error map")
    return response


def error_response(text: str, **more: str) -> dict[str, Any]:
    """Build a ``samp.error`` response with ``samp.errortxt`` = `text` (section 3.9).

    Examples
    --------
    >>> error_response("recipient unregistered")
    {'samp.status': 'samp.error', 'samp.error': {'samp.errortxt': 'recipient unregistered'}}
    """
    return {"samp.status": SAMP_STATUS_ERROR, "samp.error": {"samp.errortxt": text, **more}}


def encode_int(value: int) -> str:
    """Encode an integer as a SAMP string (section 3.3).

    >>> encode_int(-42)
    '-42'
    """
    return str(int(value))


def decode_int(text: str) -> int:
    """Decode a SAMP integer string; raises `ValueError` when it is not one.

    >>> decode_int("+7")
    7
    """
    return int(text.strip())


def encode_float(value: float) -> str:
    """Encode a float as a SAMP string (section 3.3); raises `ValueError` for NaN/infinity.

    >>> encode_float(83.82)
    '83.82'
    """
    if not math.isfinite(value):
        raise ValueError("SAMP floats must be finite")
    return repr(float(value))


def decode_float(text: str) -> float:
    """Decode a SAMP float string; raises `ValueError` when it is not one.

    >>> decode_float("-5.39")
    -5.39
    """
    return float(text.strip())


def encode_bool(value: bool) -> str:
    """Encode a boolean as ``"1"`` or ``"0"`` (section 3.3).

    >>> encode_bool(True)
    '1'
    """
    return "1" if value else "0"


def decode_bool(text: str) -> bool:
    """Decode a SAMP boolean: any non-zero integer is true (section 3.3).

    >>> decode_bool("0"), decode_bool("1"), decode_bool("true")
    (False, True, True)
    """
    text = text.strip()
    try:
        return int(text) != 0
    except ValueError:
        return text.lower() in ("true", "yes")


def encode_value(value: Any) -> Any:
    """Encode a Python value as a SAMP value: strings, lists and string-keyed maps.

    SAMP has only those three types (section 3.3); the other scalars travel as strings with
    the standard's conventions (section 3.4): integers as decimal text (`encode_int`), floats
    as their shortest round-tripping text (`encode_float`), booleans as ``"1"`` / ``"0"``
    (`encode_bool`). SAMP has no null: ``None`` is the empty string. Tuples become lists,
    map keys become strings, and anything else its ``str()``.

    Parameters
    ----------
    value : object
        A string, number, boolean, None, or a list, tuple or dict of those, nested.

    Returns
    -------
    str, list or dict
        A value `is_samp_value` accepts.

    Examples
    --------
    >>> encode_value({"row": 3, "ok": True, "list": [1.5, None], 7: ("a",)})
    {'row': '3', 'ok': '1', 'list': ['1.5', ''], '7': ['a']}

    A float with no SAMP encoding (NaN, infinity) is sent as its Python text rather than
    refused, so that one odd value does not stop a message:

    >>> encode_value(float("nan"))
    'nan'
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return encode_bool(value)
    if isinstance(value, int):
        return encode_int(value)
    if isinstance(value, float):
        return encode_float(value) if math.isfinite(value) else repr(float(value))
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    return str(value)


def is_samp_value(value: object, _depth: int = 0) -> bool:
    """Tell whether `value` is a strict SAMP value: str, list or str-keyed dict, nested.

    >>> is_samp_value({"a": ["1", {"b": "2"}]})
    True
    >>> is_samp_value({"a": 1})
    False
    """
    if _depth > 64:
        return False
    if isinstance(value, str):
        return True
    if isinstance(value, list):
        return all(is_samp_value(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_samp_value(v, _depth + 1) for k, v in value.items())
    return False
