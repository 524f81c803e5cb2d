"""Handler bindings of the blocking clients: which arguments a handler gets (SAMP 1.3
section 3.8 notifications, 3.9 calls), in astropy's conventions; see `sampflow.samp.client.sync`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Binding", "handler_takes_msg_id"]


def handler_takes_msg_id(function: Callable[..., Any]) -> bool:
    """Whether a notification handler gets astropy's six arguments (``msg_id`` None) rather
    than five.

    Six when the handler has six or more positional parameters without a default, or takes
    ``*args``; five otherwise, and when the signature cannot be read.

    Examples
    --------
    >>> handler_takes_msg_id(lambda private_key, sender_id, mtype, params, extra: None)
    False
    >>> handler_takes_msg_id(lambda private_key, sender_id, msg_id, mtype, params, extra: None)
    True
    >>> handler_takes_msg_id(lambda *args: None)
    True
    >>> handler_takes_msg_id(lambda pk, sender, mtype, params, extra, seen=[]: None)
    False
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = sum(1 for p in parameters
                   if p.kind in positional and p.default is inspect.Parameter.empty)
    star = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return required >= 6 or star


@dataclass(frozen=True, slots=True)
class Binding:
    """A handler bound to an MType pattern, with its subscription annotation."""

    function: Callable[..., Any]
    metadata: dict[str, Any] | None
    #: For notifications: call with six arguments (``msg_id`` None) instead of five.
    takes_msg_id: bool = False
