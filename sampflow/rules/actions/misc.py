"""Local actions: ``log``, ``delay`` and ``exec`` (argument list only, opt-in)."""

from __future__ import annotations

import asyncio
import logging

from ..errors import ActionError
from ..events import SampMessage
from ..model import Delay, Exec, Log
from .base import ActionContext

__all__ = ["delay", "exec_", "log_"]

log = logging.getLogger("sampflow.rules")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


async def log_(action: Log, ctx: ActionContext) -> None:
    """Log the rendered message under the rule's name."""
    text = str(action.message.render(ctx.ns))
    log.log(_LEVELS[action.level], "[%s] %s", ctx.rule.name, text)
    ctx.record.steps.append({"action": "log", "level": action.level, "message": text})


async def delay(action: Delay, ctx: ActionContext) -> None:
    """Sleep."""
    ctx.record.steps.append({"action": "delay", "seconds": action.seconds})
    await asyncio.sleep(action.seconds)


async def exec_(action: Exec, ctx: ActionContext) -> None:
    """Run a program with ``create_subprocess_exec`` (never a shell); non-zero exit fails.

    Refused unless the engine was started with ``allow_exec`` (``--allow-exec``), and
    refused for a rule fired by a SAMP message unless its sender is known to be a Standard
    Profile client (or the hub): a web page's message never runs a program, nor does one
    whose sender's profile the hub cannot tell.
    """
    if not ctx.services.allow_exec:
        raise ActionError("exec is refused unless sampflow run is given --allow-exec")
    event = ctx.event
    if isinstance(event, SampMessage) and event.sender_profile not in ("standard", "hub"):
        who = event.sender_name or event.sender_id
        raise ActionError(f"exec refused: the message came from {who}, whose profile is "
                          f"{event.sender_profile or 'unknown'}; only Standard Profile "
                          "clients' messages may run a program")
    args: list[str] = []
    for t in action.args:
        v = t.render(ctx.ns)
        args.extend(str(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
    step: dict[str, object] = {"action": "exec", "args": args}
    ctx.record.steps.append(step)
    if ctx.outbox.dry_run:
        log.info("dry run: would run %s", args)
        step["dry_run"] = True
        return
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=action.cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise ActionError(f"cannot run {args[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), action.timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ActionError(f"{args[0]} did not finish within {action.timeout} s") from None
    except asyncio.CancelledError:
        proc.kill()
        raise
    step["exit"] = proc.returncode
    step["stdout"] = out.decode(errors="replace")[-2000:]
    if proc.returncode != 0:
        raise ActionError(f"{args[0]} exited with {proc.returncode}: "
                          f"{err.decode(errors='replace').strip()[-500:]}")
