"""The rules engine: events in, actions out.

Typical use (what ``sampflow run`` does)::

    ruleset = load_paths(files, overrides)            # validate everything first
    engine = Engine(ruleset, dry_run=..., allow_exec=..., trace=...)
    await engine.start()                               # file and timer triggers
    await engine.connect(client)                       # SAMP: handler, directory, subscriptions
    ...                                                # until SIGINT / SIGTERM
    await engine.stop()

``connect`` may be called again with a new client after a reconnection. The engine talks SAMP
only through :class:`~sampflow.rules.messenger.Messenger`.

Dispatch: SAMP messages and hub events go through an :class:`~.triggers.bus.EventBus` indexed by
MType pattern and event kind; files and timers fire their rule directly. A firing's conditions
are evaluated when it fires (a file firing first gets the file's facts, off the loop, from
:mod:`~sampflow.rules.filefacts`: ``file.kind`` and ``header()`` never read the file); then the
rule's :class:`~.runner.RuleRunner` applies key, debounce, throttle and mode, and runs the
actions. A failing action is logged with its rule and
the engine goes on. Each firing produces a :class:`~.trace.FiringRecord`.

Loops: messages from the engine's own client are ignored, and :class:`~.guard.EchoGuard` drops
echoes of what it sent or what another peer re-broadcast (see there). Nothing is ever added to
the messages it sends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import IO, Any

from ..samp.constants import HUB_CLIENT_EVENT_MTYPES, HUB_EVENT_MTYPES
from .actions import ActionContext, Outbox, TableRegistry, run_action
from .clients import ClientDirectory
from .deliveries import FileDeliveries
from .errors import ExpressionError, RulesError
from .events import Event, FileEvent, HubEvent, SampMessage
from .expr import FileInfo, build_namespace
from .filefacts import FileFacts, facts_for
from .guard import EchoGuard
from .ledger import Ledger
from .messenger import Messenger, error, ok, warning
from .model import (
    Exec,
    FilesTrigger,
    HighlightRow,
    HubTrigger,
    MTypeTrigger,
    PointAt,
    Rule,
    RuleSet,
    SelectRows,
    Trigger,
)
from .offload import offload
from .runner import Outcome, RuleRunner
from .services import RuleServices
from .trace import FiringRecord, TraceWriter
from .triggers import EventBus, attach

__all__ = ["Engine", "describe_trigger"]

log = logging.getLogger("sampflow.rules")

TABLE_LOAD_MTYPES = ("table.load.votable", "table.load.fits")


def describe_trigger(trigger: Trigger) -> str:
    """A short human description of a trigger, for logs and traces."""
    if isinstance(trigger, MTypeTrigger):
        frm = f" from {','.join(trigger.senders)}" if trigger.senders else ""
        return f"mtype {','.join(trigger.mtypes)}{frm}"
    if isinstance(trigger, HubTrigger):
        return f"{trigger.kind} {','.join(trigger.clients)}"
    if isinstance(trigger, FilesTrigger):
        return f"files {trigger.path}"
    return f"every {trigger.every:g}s"


def _summary(event: Event) -> dict[str, Any]:
    if isinstance(event, SampMessage):
        return {"kind": event.kind, "mtype": event.mtype, "sender": event.sender_name,
                "sender_id": event.sender_id, "msg_id": event.msg_id}
    if isinstance(event, HubEvent):
        return {"kind": event.kind, "client": event.client_name, "client_id": event.client_id}
    if isinstance(event, FileEvent):
        return {"kind": event.kind, "path": event.path}
    return {"kind": "timer", "count": event.count}


class Engine:
    """Runs a :class:`~sampflow.rules.model.RuleSet`.

    The engine is the :class:`~sampflow.rules.services.RuleServices` its actions get
    (``ready``, ``tables``, ``allow_exec``); they reach nothing else of it.

    Parameters
    ----------
    ruleset : RuleSet
        Loaded and validated rules (disabled rules are skipped).
    client : Messenger, optional
        The SAMP client; may also be given later with :meth:`connect`.
    dry_run : bool
        Run everything but send nothing (each would-be message is logged and traced).
    allow_exec : bool
        Allow ``exec`` actions (``--allow-exec``); otherwise construction fails if any rule has
        one.
    trace : path or text file, optional
        Append one JSON line per firing.
    on_firing : callable, optional
        Called with each finished :class:`~sampflow.rules.trace.FiringRecord` (``-v`` logging
        uses ``record.one_line()``).
    echo_window : float
        Seconds during which repeated messages count as echoes (0 disables the echo guard).
    ledger : Ledger, optional
        The delivery ledger (``sampflow run`` opens the one in the state directory); default:
        one in memory, forgotten when the engine goes.
    retry_poll : float
        Seconds between looks at the ledger for files ``sampflow retry`` asked for.

    Raises
    ------
    RulesError
        If a rule uses ``exec`` and ``allow_exec`` is false.
    """

    def __init__(self, ruleset: RuleSet, client: Messenger | None = None, *,
                 dry_run: bool = False, allow_exec: bool = False,
                 trace: str | IO[str] | None = None,
                 on_firing: Callable[[FiringRecord], None] | None = None,
                 echo_window: float = 2.0, ledger: Ledger | None = None,
                 retry_poll: float = 2.0) -> None:
        self.ruleset = ruleset
        self.rules: tuple[Rule, ...] = tuple(r for r in ruleset.rules if r.enabled)
        if not allow_exec:
            bad = [r.name for r in self.rules if any(isinstance(a, Exec) for a in r.actions)]
            if bad:
                raise RulesError("exec is refused unless sampflow run is given --allow-exec "
                                 f"(rules: {', '.join(bad)})")
        self.client: Messenger | None = None
        self.dry_run = dry_run
        self.allow_exec = allow_exec
        self.directory = ClientDirectory()
        self._intake: dict[str, asyncio.Lock] = {}
        self.guard = EchoGuard(echo_window)
        self.tables: TableRegistry = TableRegistry()
        self.bus = EventBus()
        self.outbox = Outbox(None, self.directory, self.guard, dry_run=dry_run)
        self.on_firing = on_firing
        self._trace = TraceWriter(trace) if trace is not None else None
        self._runners: dict[str, RuleRunner] = {}
        self._detach: list[Callable[[], None]] = []
        self._pending_client = client
        self._started = False
        self._stopping = False
        self._looking: set[asyncio.Task[Outcome]] = set()  # file firings awaiting their facts
        self.firings = 0
        self.ledger = ledger if ledger is not None else Ledger(None)
        self.deliveries = FileDeliveries(self.ledger, dry_run=dry_run)
        #: Set while the engine can send (connected, or a dry run without a hub): triggers
        #: that fire before are held until then, so nothing runs against no hub.
        self.ready = asyncio.Event()
        self._early: list[tuple[Rule, Trigger, Event, asyncio.Future[Any]]] = []
        self._file_fires: dict[str, Callable[[Event], Any]] = {}
        self._retry_poll = retry_poll
        self._retry_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Attach every trigger (file watchers and timers start now), then connect the client
        given to the constructor, if any. A trigger that cannot start (a missing folder) is
        logged and its rule goes on with its other triggers."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        for rule in self.rules:
            self._runners[rule.name] = RuleRunner(rule, self._make_execute(rule))
            for trigger in rule.triggers:
                fire = self._make_fire(rule, trigger)
                planner = None
                if isinstance(trigger, FilesTrigger):
                    planner = self.deliveries.planner(rule, trigger)
                    self._file_fires.setdefault(rule.name, fire)
                try:
                    self._detach.append(attach(trigger, fire, self.bus, planner=planner))
                except Exception as exc:
                    log.error("rule %r: cannot start trigger %s: %s", rule.name,
                              describe_trigger(trigger), exc)
        if self._file_fires:
            self._retry_task = asyncio.get_running_loop().create_task(self._poll_retries())
        if self._pending_client is not None:
            await self.connect(self._pending_client)

    async def connect(self, client: Messenger) -> None:
        """Use ``client`` for SAMP: install the message handler, learn the other clients,
        declare the subscriptions the rules need. Call again after a reconnection."""
        self.client = client
        self.outbox.messenger = client
        self.directory.messenger = client
        client.on_message = self.handle_message
        await self.directory.refresh()
        await client.declare_subscriptions(self.subscriptions())
        self._set_ready()

    def disconnected(self) -> None:
        """The hub went away: hold new firings until :meth:`connect` is called again."""
        self.ready.clear()
        self.outbox.messenger = None
        self.directory.messenger = None

    def run_without_hub(self) -> None:
        """Let triggers fire with no hub at all (a dry run with no hub running)."""
        self._set_ready()

    def _set_ready(self) -> None:
        self.ready.set()
        early, self._early = self._early, []
        for rule, trigger, event, fut in early:
            if fut.cancelled():
                continue
            result = self._fire(rule, trigger, event)
            if result is None:
                fut.set_result(None)
            else:
                asyncio.ensure_future(result).add_done_callback(
                    functools.partial(_copy_result, target=fut))

    def subscriptions(self) -> dict[str, dict[str, Any]]:
        """The subscriptions map: the rules' MType patterns, every hub administrative MType
        (the client events feed the directory; ``samp.hub.event.shutdown`` and
        ``samp.hub.disconnect`` tell the session at once that the hub has gone),
        ``samp.app.ping``, and ``table.load.*`` when table row actions need the table
        registry."""
        subs: dict[str, dict[str, Any]] = {p: {} for p in sorted(self.bus.mtype_patterns())}
        for mt in HUB_EVENT_MTYPES + ("samp.app.ping",):
            subs.setdefault(mt, {})
        if any(isinstance(a, (PointAt, HighlightRow, SelectRows))
               for r in self.rules for a in r.actions):
            for mt in TABLE_LOAD_MTYPES:
                subs.setdefault(mt, {})
        # MTypes that can make a rule run a program are not harmless: a sampflow hub (like
        # JSAMP's) then refuses them from web pages before they reach the engine.
        for rule in self.rules:
            if any(isinstance(a, Exec) for a in rule.actions):
                for trigger in rule.triggers:
                    if isinstance(trigger, MTypeTrigger):
                        for pattern in trigger.mtypes:
                            subs[pattern] = {"x-samp.mostly-harmless": "0"}
        return subs

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the triggers, let running actions finish for up to ``timeout`` seconds, then
        cancel the rest. The client is left registered (the caller unregisters it). Files
        whose runs were cut short stay unfinished in the ledger and run at the next start."""
        self._stopping = True
        if self._retry_task is not None:
            self._retry_task.cancel()
            self._retry_task = None
        for _, _, _, fut in self._early:
            fut.cancel()
        self._early.clear()
        for detach in self._detach:
            try:
                detach()
            except Exception as exc:  # pragma: no cover - defensive
                log.warning("stopping a trigger failed: %s", exc)
        self._detach.clear()
        for task in list(self._looking):
            task.cancel()
        if self._runners:
            await asyncio.gather(*(r.stop(timeout) for r in self._runners.values()))
        if self.client is not None and self.client.on_message == self.handle_message:
            self.client.on_message = None
        if self._trace is not None:
            self._trace.close()
        self._started = False

    async def wait_idle(self) -> None:
        """Wait until no rule is running, queued or debouncing (useful in tests)."""
        while True:
            while self._looking:
                await asyncio.wait(set(self._looking))
            await asyncio.gather(*(r.wait_idle() for r in self._runners.values()))
            await asyncio.sleep(0)
            if not self._looking and all(r.idle for r in self._runners.values()):
                return

    # -- incoming SAMP -----------------------------------------------------------------------
    async def handle_message(self, kind: str, sender_id: str, msg_id: str | None,
                             message: dict[str, Any]) -> dict[str, Any] | None:
        """The client's ``on_message`` handler; returns the response for a call."""
        is_call = kind == "call"
        mtype = message.get("samp.mtype")
        params = message.get("samp.params") or {}
        if not isinstance(mtype, str) or not isinstance(params, dict):
            return error("malformed message") if is_call else None
        if self.client is not None and sender_id == self.client.public_id:
            return ok() if is_call else None
        if mtype in HUB_CLIENT_EVENT_MTYPES:
            for hub_event in self.directory.apply(mtype, params):
                self.bus.publish(hub_event)
            return ok() if is_call else None
        if mtype in HUB_EVENT_MTYPES:  # shutdown, disconnect: the client tells the session
            return ok() if is_call else None
        if mtype in TABLE_LOAD_MTYPES:
            self.tables.note_load(params)
        if self.guard.is_echo(mtype, params, sender_id):
            log.debug("dropped echo of %s from %s", mtype, sender_id)
            return warning("ignored: an echo of a message already relayed") if is_call else None
        # One sender's messages are dispatched in the order they arrived (SAMP delivers them
        # in order); the look-ups below may wait, so the intake is serialised per sender with
        # a FIFO lock. Only the intake: the rules' runs are governed by their modes.
        intake = self._intake.get(sender_id)
        if intake is None:
            intake = self._intake[sender_id] = asyncio.Lock()
        async with intake:
            name = await self.directory.ensure_name(sender_id)
            profile = await self.directory.ensure_profile(sender_id)
            try:
                event = SampMessage(kind, sender_id, name, mtype,  # type: ignore[arg-type]
                                    params, msg_id if is_call else None,
                                    sender_profile=profile)
            except ValueError as exc:
                return error(str(exc)) if is_call else None
            futures = self.dispatch(event)
        if not is_call:
            return None
        outcomes = await asyncio.gather(*futures) if futures else []
        return self._reply_for(outcomes)

    @staticmethod
    def _reply_for(outcomes: list[Outcome]) -> dict[str, Any]:
        for o in outcomes:
            if o.reply is not None:
                return o.reply
        failed = [o for o in outcomes if o.status == "error"]
        if failed:
            return error(failed[0].reason or "rule failed")
        if outcomes and all(o.status in ("dropped", "superseded", "cancelled")
                            for o in outcomes):
            return warning(f"not run: {outcomes[0].reason}")
        return ok()

    # -- dispatch ----------------------------------------------------------------------------
    def dispatch(self, event: SampMessage | HubEvent) -> list[asyncio.Future[Outcome]]:
        """Hand a SAMP message or hub event to the rules whose triggers match, through the
        bus's index; returns the firings' futures.

        Messages should come via :meth:`handle_message` (which applies loop prevention and
        learns the sender's name). File and timer events never come here: each file or timer
        trigger fires its own rule, from the folder or timer it watches.
        """
        return [f for f in self.bus.publish(event) if f is not None]

    def _make_fire(self, rule: Rule, trigger: Trigger) -> Callable[[Event], Any]:
        def fire(event: Event) -> Any:
            if self.ready.is_set():
                return self._fire(rule, trigger, event)
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._early.append((rule, trigger, event, fut))
            return fut
        return fire

    async def _poll_retries(self) -> None:
        """Fire the files ``sampflow retry`` marked, while running (the ledger is shared)."""
        while True:
            await asyncio.sleep(self._retry_poll)
            if not self.ready.is_set():
                continue
            for entry in self.ledger.entries(states=("retry",)):
                fire = self._file_fires.get(entry.rule)
                if fire is not None and await offload(os.path.isfile, entry.path):
                    self.ledger.resume(entry.rule, entry.path)
                    fire(FileEvent("retry", entry.path))

    def _fire(self, rule: Rule, trigger: Trigger, event: Event
              ) -> asyncio.Future[Outcome] | None:
        tracked = isinstance(event, FileEvent) and isinstance(trigger, FilesTrigger)
        if tracked and self.deliveries.already_sent(rule, event):  # type: ignore[arg-type]
            return None
        if isinstance(event, FileEvent):
            return self._fire_file(rule, trigger, event)
        return self._fire_with(rule, trigger, event, None)

    def _fire_file(self, rule: Rule, trigger: Trigger, event: FileEvent
                   ) -> asyncio.Future[Outcome]:
        """A file firing first gets the file's facts (kind, FITS headers, size) off the loop,
        then evaluates the condition with them; the future's outcome is ``skipped`` when the
        condition does not hold."""
        async def look_then_fire() -> Outcome:
            facts = await facts_for(event.path)
            if self._stopping:
                return Outcome("dropped", reason="stopping")
            fut = self._fire_with(rule, trigger, event, facts)
            if fut is None:
                return Outcome("skipped", reason="condition not met")
            return await asyncio.shield(fut)  # stop() cancels the look, not the run

        task = asyncio.ensure_future(look_then_fire())
        self._looking.add(task)
        task.add_done_callback(self._looking.discard)
        return task

    def _fire_with(self, rule: Rule, trigger: Trigger, event: Event, facts: FileFacts | None
                   ) -> asyncio.Future[Outcome] | None:
        tracked = isinstance(event, FileEvent) and isinstance(trigger, FilesTrigger)
        ns = build_namespace(event, variables=self.ruleset.vars, hub=self.directory,
                             rule=rule.name, facts=facts)
        try:
            if rule.condition is not None and not rule.condition.check(ns):
                if tracked:
                    info = ns.get("file")
                    problem = info.problem if isinstance(info, FileInfo) else None
                    self.deliveries.skipped(rule, event,  # type: ignore[arg-type]
                                            "its condition does not hold", problem,
                                            _astropy_notes(ns))
                return None
            key = rule.key.render(ns) if rule.key is not None else None
        except ExpressionError as exc:
            log.error("rule %r: %s", rule.name, exc)
            return None
        if isinstance(key, (list, dict)):
            key = repr(key)
        ns["key"] = key
        runner = self._runners.get(rule.name)
        if runner is None:  # dispatch() before start(): create lazily
            runner = self._runners[rule.name] = RuleRunner(rule, self._make_execute(rule))
        return runner.fire(event, trigger, ns, key)

    def _make_execute(self, rule: Rule) -> Callable[..., Any]:
        async def execute(event: Event, trigger: Trigger, ns: dict[str, Any]) -> Outcome:
            return await self._execute(rule, event, trigger, ns)
        return execute

    async def _execute(self, rule: Rule, event: Event, trigger: Trigger, ns: dict[str, Any]
                       ) -> Outcome:
        record = FiringRecord(rule.name, describe_trigger(trigger), _summary(event),
                              key=ns.get("key"), dry_run=self.dry_run)
        file_event = event if (isinstance(event, FileEvent)
                               and isinstance(trigger, FilesTrigger)) else None
        if file_event is not None:
            if self.deliveries.already_sent(rule, file_event):  # queued behind its twin
                return Outcome("dropped", reason="already sent")
            self.deliveries.begin(rule, file_event)
        services: RuleServices = self
        ctx = ActionContext(rule, event, ns, record, self.outbox, services,
                            on_wait=self._waiting_hook(rule, file_event))
        t0 = time.perf_counter()
        self.firings += 1
        outcome = Outcome("error", reason="not finished")
        error: str | None = None
        try:
            for index, action in enumerate(rule.actions):
                await run_action(action, ctx, index)
            record.status = "ok"
            outcome = Outcome("ok", reply=ctx.reply)
        except asyncio.CancelledError:
            record.status = "cancelled"
            if file_event is not None:
                self.deliveries.cancelled(rule, file_event)
            raise
        except Exception as exc:
            error = str(exc)
            record.status, record.error = "error", error
            if file_event is None:
                log.error("rule %r failed: %s", rule.name, exc)
            outcome = Outcome("error", reply=ctx.reply, reason=f"rule {rule.name!r}: {exc}")
        finally:
            record.duration_ms = round((time.perf_counter() - t0) * 1000, 3)
            if file_event is not None and record.status != "cancelled":
                self.deliveries.finished(rule, file_event, record, error, _astropy_notes(ns))
                if record.status == "error" and outcome.status == "ok":
                    outcome = Outcome("error", reason=record.error)
            self._emit(record)
        return outcome

    def _waiting_hook(self, rule: Rule, event: FileEvent | None
                      ) -> Callable[[ActionContext, str | None, float | None], None]:
        def on_wait(ctx: ActionContext, reason: str | None, hold_until: float | None) -> None:
            ctx.record.steps.append({"waiting": reason} if reason else {"waiting": "over"})
            if event is not None:
                self.deliveries.waiting(rule, event, reason, hold_until)
            elif reason is not None:
                log.info("rule %r: waiting: %s", rule.name, reason)
        return on_wait

    def _emit(self, record: FiringRecord) -> None:
        if self._trace is not None:
            try:
                self._trace.write(record)
            except Exception as exc:  # a full disk must not stop the engine
                log.warning("cannot write trace: %s", exc)
        if self.on_firing is not None:
            try:
                self.on_firing(record)
            except Exception:
                log.exception("on_firing callback failed")
        log.debug("%s", record.one_line())


def _astropy_notes(ns: dict[str, Any]) -> tuple[str, ...]:
    """Astropy's warnings about the firing's file (its facts), for the file's log line."""
    info = ns.get("file")
    facts = info.facts if isinstance(info, FileInfo) else None
    return facts.warnings if facts is not None else ()


def _copy_result(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
