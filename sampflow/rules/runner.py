"""Execution modes for one rule: single, restart, queued, parallel (with ``max``), debounce,
throttle and keys.

Every firing that passed its conditions goes through :meth:`RuleRunner.fire`, which returns a
future :class:`Outcome` (the engine awaits it to reply to SAMP calls). Order of the gates:

1. ``key``: firings are partitioned by the rendered key; everything below is per key, so runs for
   one key are serialised (the default mode with a key is ``queued``) while keys run in parallel.
2. ``debounce``: a firing waits until no other came for ``debounce`` seconds; superseded firings
   resolve as ``superseded`` and only the last one goes on.
3. ``throttle``: at most one run starts per ``throttle`` seconds; firings inside the window are
   ``dropped``.
4. the mode: ``single`` drops a firing while a run is going, ``restart`` cancels it,
   ``queued`` waits (at most ``max`` running + waiting), ``parallel`` runs alongside (at most
   ``max``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .events import Event
from .model import Mode, Rule, Trigger

__all__ = ["Outcome", "RuleRunner"]

log = logging.getLogger("sampflow.rules")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a firing ended: ``ok``, ``error``, ``dropped``, ``superseded`` or ``cancelled``.

    ``reply`` is the response a ``reply`` action set, ``reason`` says why it failed or was not
    run.
    """

    status: str
    reply: dict[str, Any] | None = None
    reason: str | None = None


Execute = Callable[[Event, Trigger, dict[str, Any]], Coroutine[Any, Any, Outcome]]
_Firing = tuple[Event, Trigger, dict[str, Any], "asyncio.Future[Outcome]"]


@dataclass(slots=True)
class _KeyState:
    running: dict[asyncio.Task[Outcome], asyncio.Future[Outcome]] = field(default_factory=dict)
    queue: deque[_Firing] = field(default_factory=deque)
    last_start: float | None = None
    debounced: _Firing | None = None
    timer: asyncio.TimerHandle | None = None

    def idle(self) -> bool:
        return not self.running and not self.queue and self.debounced is None


class RuleRunner:
    """Runs one rule's firings under its mode; ``execute`` runs the actions of one firing."""

    def __init__(self, rule: Rule, execute: Execute) -> None:
        self.rule = rule
        self._execute = execute
        self._keys: dict[Any, _KeyState] = {}
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        """How many runs are going now, over all keys."""
        return sum(len(s.running) for s in self._keys.values())

    def fire(self, event: Event, trigger: Trigger, namespace: dict[str, Any],
             key: Any = None) -> asyncio.Future[Outcome]:
        """Admit a firing; returns the future of its outcome."""
        fut: asyncio.Future[Outcome] = self._loop.create_future()
        st = self._keys.get(key)
        if st is None:
            st = self._keys[key] = _KeyState()
        self._idle.clear()
        firing: _Firing = (event, trigger, namespace, fut)
        if self.rule.debounce:
            if st.debounced is not None:
                _resolve(st.debounced[3], Outcome("superseded", reason="debounced"))
            if st.timer is not None:
                st.timer.cancel()
            st.debounced = firing
            st.timer = self._loop.call_later(self.rule.debounce, self._debounced, key)
        else:
            self._admit(key, firing)
        return fut

    def _debounced(self, key: Any) -> None:
        st = self._keys[key]
        firing, st.debounced, st.timer = st.debounced, None, None
        if firing is not None:
            self._admit(key, firing)

    def _drop(self, key: Any, firing: _Firing, reason: str) -> None:
        log.warning("rule %r: %s; firing dropped", self.rule.name, reason)
        _resolve(firing[3], Outcome("dropped", reason=reason))
        self._cleanup(key)

    def _admit(self, key: Any, firing: _Firing) -> None:
        st = self._keys[key]
        now = self._loop.time()
        if (self.rule.throttle and st.last_start is not None
                and now - st.last_start < self.rule.throttle):
            _resolve(firing[3], Outcome("dropped", reason="throttled"))
            self._cleanup(key)
            return
        mode, limit = self.rule.mode, self.rule.max
        if mode is Mode.SINGLE and st.running:
            return self._drop(key, firing, "already running (mode: single)")
        if mode is Mode.RESTART:
            for task in st.running:
                task.cancel()
        elif mode is Mode.QUEUED:
            if len(st.running) + len(st.queue) >= limit:
                return self._drop(key, firing, f"{limit} runs already queued (max)")
            if st.running:
                st.queue.append(firing)
                return
        elif mode is Mode.PARALLEL and len(st.running) >= limit:
            return self._drop(key, firing, f"{limit} runs already going (max)")
        self._start(key, firing)

    def _start(self, key: Any, firing: _Firing) -> None:
        st = self._keys[key]
        event, trigger, namespace, fut = firing
        st.last_start = self._loop.time()
        task: asyncio.Task[Outcome] = self._loop.create_task(
            self._execute(event, trigger, namespace))
        st.running[task] = fut
        task.add_done_callback(lambda t: self._finished(key, t))

    def _finished(self, key: Any, task: asyncio.Task[Outcome]) -> None:
        st = self._keys[key]
        fut = st.running.pop(task)
        if task.cancelled():
            _resolve(fut, Outcome("cancelled", reason="cancelled"))
        elif task.exception() is not None:  # execute() catches action errors; this is a bug
            exc = task.exception()
            log.error("rule %r: internal error: %r", self.rule.name, exc)
            _resolve(fut, Outcome("error", reason=repr(exc)))
        else:
            _resolve(fut, task.result())
        if st.queue and self.rule.mode is Mode.QUEUED and not st.running:
            self._start(key, st.queue.popleft())
        self._cleanup(key)

    def _cleanup(self, key: Any) -> None:
        st = self._keys.get(key)
        if st is not None and st.idle() and (not self.rule.throttle or st.last_start is None
                                             or self._loop.time() - st.last_start
                                             >= self.rule.throttle):
            del self._keys[key]
        if all(s.idle() for s in self._keys.values()):
            self._idle.set()

    @property
    def idle(self) -> bool:
        """Whether nothing is running, queued or debouncing now (for any key)."""
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Wait until nothing is running, queued or debouncing."""
        await self._idle.wait()

    async def stop(self, timeout: float = 10.0) -> None:
        """Drop waiting firings, let running ones finish for up to ``timeout``, then cancel."""
        tasks: list[asyncio.Task[Outcome]] = []
        for st in list(self._keys.values()):
            if st.timer is not None:
                st.timer.cancel()
            if st.debounced is not None:
                _resolve(st.debounced[3], Outcome("dropped", reason="stopping"))
                st.debounced = None
            while st.queue:
                _resolve(st.queue.popleft()[3], Outcome("dropped", reason="stopping"))
            tasks.extend(st.running)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)


def _resolve(fut: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not fut.done():
        fut.set_result(outcome)
