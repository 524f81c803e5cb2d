"""Messaging actions: notify, call, broadcast, forward, reply."""

from __future__ import annotations

import asyncio

from ..errors import ActionError
from ..expr import compile_template, render_value
from ..model import Broadcast, Call, Forward, Notify, Reply
from .base import ActionContext, to_samp

__all__ = ["broadcast", "call", "forward", "notify", "reply"]

_SENDER = compile_template("sender")


async def notify(action: Notify, ctx: ActionContext) -> None:
    """Notify each recipient in ``to``, waiting up to ``hold`` for one not registered yet."""
    params = render_value(action.params, ctx.ns)
    ids = await ctx.recipients(action.to, action.mtype, action.hold)
    for cid in ids:
        await ctx.outbox.notify(ctx.record, "notify", cid, action.mtype, params)


async def call(action: Call, ctx: ActionContext) -> None:
    """Call each recipient (concurrently) and wait; a ``samp.error`` response fails the action.
    A recipient not registered yet is waited for up to ``hold``.

    The (last) response is ``response`` and its ``samp.result`` is ``result`` for the actions
    after this one; with ``as: NAME`` it is also ``responses.NAME``.
    """
    params = render_value(action.params, ctx.ns)
    ids = await ctx.recipients(action.to, action.mtype, action.hold)
    responses = await asyncio.gather(*(
        ctx.outbox.call(ctx.record, "call", cid, action.mtype, params, action.timeout)
        for cid in ids))
    for response in responses:
        ctx.ns["response"] = response
        ctx.ns["result"] = response.get("samp.result", {})
        if action.name:
            ctx.ns["responses"] = {**ctx.ns.get("responses", {}), action.name: response}
    for cid, response in zip(ids, responses, strict=True):
        if response.get("samp.status") == "samp.error":
            text = (response.get("samp.error") or {}).get("samp.errortxt", "no reason given")
            raise ActionError(f"{ctx.outbox.directory.name_of(cid) or cid} answered "
                              f"{action.mtype} with an error: {text}")


async def broadcast(action: Broadcast, ctx: ActionContext) -> None:
    """Notify every client subscribed to the MType, except ``except`` (and the engine)."""
    params = render_value(action.params, ctx.ns)
    ids = await ctx.outbox.resolve((), ctx.ns, mtype=action.mtype, exclude=action.except_)
    for cid in ids:
        await ctx.outbox.notify(ctx.record, "broadcast", cid, action.mtype, params)


async def forward(action: Forward, ctx: ActionContext) -> None:
    """Pass the incoming message on, unchanged (as a notification)."""
    msg = ctx.message()
    exclude = action.except_
    if not action.to:
        exclude = exclude + (_SENDER,)
    ids = await ctx.outbox.resolve(action.to, ctx.ns, mtype=msg.mtype, exclude=exclude)
    for cid in ids:
        await ctx.outbox.notify(ctx.record, "forward", cid, msg.mtype, msg.params)


async def reply(action: Reply, ctx: ActionContext) -> None:
    """Set the response to the incoming call (ignored, with a note, for notifications)."""
    msg = ctx.message()
    response = {"samp.status": f"samp.{action.status}",
                "samp.result": to_samp(render_value(action.result, ctx.ns) or {})}
    if not isinstance(response["samp.result"], dict):
        raise ActionError("reply result must be a mapping")
    if action.error is not None or action.status != "ok":
        text = action.error.render(ctx.ns) if action.error is not None else action.status
        response["samp.error"] = {"samp.errortxt": str(text)}
    if msg.kind != "call":
        ctx.record.steps.append({"action": "reply", "note": "not a call: nothing to reply to"})
        return
    ctx.reply = response
    ctx.record.steps.append({"action": "reply", "response": response})
