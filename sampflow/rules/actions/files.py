"""``send_file``: send a file by what it is.

A VOTable goes as ``table.load.votable``, a FITS image as ``image.load.fits`` and a FITS table as
``table.load.fits``, decided from the file's content by :mod:`~sampflow.rules.filefacts`
(headers only, bounded, off the event loop, regular files only): the same facts the rule's
condition saw as ``file.kind``. Local paths become ``file://`` URLs; the URL doubles as
``table-id`` / ``image-id`` so later row messages about it can be matched.
"""

from __future__ import annotations

import asyncio
import os

from ..errors import ActionError
from ..events import FileEvent
from ..filefacts import facts_for, read_facts
from ..model import SendFile
from .base import ActionContext
from .tables import url_to_path

__all__ = ["classify", "send_file"]


def classify(path: str) -> str:
    """The MType that loads ``path``: image.load.fits, table.load.fits or table.load.votable.

    Blocking but bounded (see :func:`~sampflow.rules.filefacts.read_facts`); the engine uses
    :func:`~sampflow.rules.filefacts.facts_for` instead, off the event loop.

    Raises
    ------
    ActionError
        If the file is neither FITS (image or table) nor a VOTable, or is not a regular file.
    """
    facts = read_facts(path)
    if facts.mtype is None:
        raise ActionError(f"{path}: {facts.reason}")
    return facts.mtype


async def send_file(action: SendFile, ctx: ActionContext) -> None:
    """Send the file (``path`` or the triggering file) to ``to`` or to every subscribed client.

    The MType is chosen by content (``image.load.fits``, ``table.load.fits``,
    ``table.load.votable``; SAMP MTypes document). A recipient that is not registered (or not
    yet subscribed to that MType) is waited for up to ``hold`` seconds. With ``confirm`` the
    load is a call: a ``samp.error`` response fails the action with the recipient's
    ``samp.errortxt``; confirmed loads to one recipient go one at a time
    (:meth:`Outbox.lane`). A recipient that unregisters while the file is on its way (DS9
    quit) is waited for again, so the file reaches it when it comes back.

    Raises
    ------
    ActionError
        If the file cannot be read or is not FITS / VOTable, a recipient refused it, or no
        recipient came within ``hold``.
    """
    if action.path is not None:
        path = str(action.path.render(ctx.ns))
    elif isinstance(ctx.event, FileEvent):
        path = ctx.event.path
    else:
        raise ActionError("send_file needs path: when the rule is not fired by a file")
    if path.startswith("file://"):
        path = url_to_path(path)
    path = os.path.abspath(os.path.expanduser(path))  # noqa: ASYNC240 -- no file is touched
    facts = await facts_for(path)
    if facts.mtype is None:
        raise ActionError(f"{path}: {facts.reason}")
    mtype, url = facts.mtype, facts.url
    name = str(action.name.render(ctx.ns)) if action.name is not None else os.path.basename(path)
    params = {"url": url, "name": name}
    params["image-id" if mtype.startswith("image.") else "table-id"] = url
    if mtype.startswith("table."):
        ctx.services.tables.note_load(params)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + action.hold
    delivered: set[str] = set()
    unreachable = 0
    while True:
        left = max(0.0, deadline - loop.time())
        ids = [i for i in await ctx.recipients(action.to, mtype, left) if i not in delivered]
        again = False
        for cid in ids:
            try:
                if await _deliver(action, ctx, cid, mtype, params):
                    delivered.add(cid)
                else:
                    again = True  # it left: wait for it to come back
            except _Unreachable as exc:
                unreachable += 1
                if unreachable >= UNREACHABLE_ATTEMPTS or loop.time() >= deadline:
                    raise ActionError(str(exc)) from None
                again = True
                await asyncio.sleep(min(2.0 ** unreachable, 10.0))
        if not again:
            return


#: Attempts at a recipient that stays registered but does not answer (its callback failed,
#: the call timed out) before the file is recorded failed.
UNREACHABLE_ATTEMPTS = 4


class _Unreachable(Exception):
    """The recipient is registered but the message did not reach it (not its refusal)."""


def _hub_made(text: str, cid: str) -> bool:
    """Whether a ``samp.error`` text is the hub's (a failed delivery), not the recipient's.

    These are the texts of sampflow's hub (``samp/hub/core.py``); other hubs' failures show
    as exceptions or timeouts, which count the same.
    """
    return text.startswith((f"delivery to {cid} failed", f"recipient {cid} "))


async def _deliver(action: SendFile, ctx: ActionContext, cid: str, mtype: str,
                   params: dict[str, str]) -> bool:
    """Send to one recipient; False if it turned out to have gone (to be waited for again).

    Raises
    ------
    _Unreachable
        If it is still registered but the message did not reach it.
    ActionError
        If it answered ``samp.error`` itself (it refused the file).
    """
    outbox = ctx.outbox
    try:
        if not action.confirm:
            await outbox.notify(ctx.record, "send_file", cid, mtype, params)
            return True
        async with outbox.lane(cid):
            response = await outbox.call(ctx.record, "send_file", cid, mtype, params,
                                         action.timeout)
    except ActionError as exc:
        if not await _still_there(ctx, cid):
            return False
        raise _Unreachable(str(exc)) from exc
    if response.get("samp.status") == "samp.error":
        error = response.get("samp.error") or {}
        text = error.get("samp.errortxt", "no reason given") if isinstance(error, dict) else ""
        text = str(text)
        name = outbox.directory.name_of(cid) or cid
        if _hub_made(text, cid):
            if not await _still_there(ctx, cid):
                return False  # the hub answered for a recipient that died meanwhile
            raise _Unreachable(f"{name}: {text}")
        raise ActionError(f"{name}: {text}")
    return True


async def _still_there(ctx: ActionContext, cid: str) -> bool:
    """Whether `cid` is still registered, asked of the hub (its events may lag)."""
    messenger = ctx.outbox.messenger
    if messenger is None:
        return True
    try:
        present = cid in await messenger.get_registered_clients()
    except Exception:  # the hub itself is going: not the recipient's fault
        return True
    if not present:
        ctx.outbox.directory.forget(cid)
    return present
