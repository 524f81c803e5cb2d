"""Action handlers, in an explicit registry keyed by the model's action type.

``run_action`` applies the per-action options: ``retry`` (N more attempts, ``delay`` apart)
and ``continue_on_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import model as m
from ..errors import ActionError, ExpressionError
from ..spec import ACTIONS
from . import files, misc, samp, tables
from .base import ActionContext, Outbox, to_samp
from .tables import TableRegistry

__all__ = [
    "HANDLERS",
    "ActionContext",
    "Outbox",
    "TableRegistry",
    "action_key",
    "run_action",
    "to_samp",
]

log = logging.getLogger("sampflow.rules")

Handler = Callable[[Any, ActionContext], Awaitable[None]]

HANDLERS: dict[type, Handler] = {
    m.Notify: samp.notify,
    m.Call: samp.call,
    m.Broadcast: samp.broadcast,
    m.Forward: samp.forward,
    m.Reply: samp.reply,
    m.SendFile: files.send_file,
    m.PointAt: tables.point_at,
    m.HighlightRow: tables.highlight_row,
    m.SelectRows: tables.select_rows,
    m.Log: misc.log_,
    m.Delay: misc.delay,
    m.Exec: misc.exec_,
}

_KEYS: dict[Any, str] = {t.build: key for key, t in ACTIONS.items()}


def action_key(action: m.Action) -> str:
    """The rule-file key of an action (``notify``, ``send_file``, ...)."""
    return _KEYS[type(action)]


async def run_action(action: m.Action, ctx: ActionContext, index: int) -> None:
    """Run one action with its retry and continue_on_error options.

    Raises
    ------
    ActionError
        When the action failed for good and ``continue_on_error`` is off; the message names
        the action, its position and its place in the file.
    """
    handler = HANDLERS[type(action)]
    opts = action.options
    key = action_key(action)
    for attempt in range(opts.retry + 1):
        try:
            await handler(action, ctx)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            expected = isinstance(exc, (ActionError, ExpressionError))
            text = str(exc) if expected else f"{type(exc).__name__}: {exc}"
            ctx.record.steps.append({"action": key, "index": index, "attempt": attempt + 1,
                                     "error": text})
            if attempt < opts.retry:
                log.info("rule %r: %s failed (%s); retrying in %.3g s", ctx.rule.name, key,
                         text, opts.retry_delay)
                await asyncio.sleep(opts.retry_delay)
                continue
            where = f"do[{index}] {key} ({opts.where})" if opts.where else f"do[{index}] {key}"
            if opts.continue_on_error:
                log.warning("rule %r: %s failed: %s; continuing", ctx.rule.name, where, text)
                return
            raise ActionError(f"{where}: {text}") from exc
