"""Part 1: JSAMP's ``calcstorm`` load test against each hub, same load, same run.

``calcstorm -nclient C -nquery Q -mode M`` starts C JSAMP clients that each send Q
``calc.int.*`` messages to random others and check every answer; it prints
``Elapsed time: N ms (U us per message)``. Throughput here is ``1e6 / U`` messages per second.
Two CPU times are recorded per run, both user + system over all threads, divided by the number
of messages: the hub process's (``/proc/<pid>/stat`` before and after the run) and the load
generator's, i.e. calcstorm's own JVM (its rusage, returned by ``os.wait4`` when it is reaped;
its whole lifetime, so JVM start-up and JIT compilation are included).
All hubs run side by side for the whole part (started once, warmed up with one small run), and
the repeats are interleaved: for each repeat, each mode, each hub in turn.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .hubs import JSAMP_JAR, Hub, HubError, java_available, kill_group, spawn

__all__ = ["MODES", "Cell", "MeasuredRun", "run_calcstorm_part", "run_measured"]

MODES = ("sync", "async", "notify")
_ELAPSED = re.compile(r"Elapsed time:\s*(\d+)\s*ms\s*\((\d+)\s*us per message\)")


@dataclass
class Cell:
    """One hub x mode cell: per-repeat throughputs (msg/s) and what went wrong."""

    rates: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    #: Hub CPU time (user + system, all threads) per message, microseconds, per run.
    cpu_us: list[float] = field(default_factory=list)
    #: Load generator (calcstorm's JVM) CPU time per message, microseconds, per run.
    client_cpu_us: list[float] = field(default_factory=list)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu_us) if self.cpu_us else None

    @property
    def client_cpu_median(self) -> float | None:
        return statistics.median(self.client_cpu_us) if self.client_cpu_us else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None

    def text(self) -> str:
        """Median msg/s, plus failures (``hung: killed at 60 s``), for the results table."""
        parts = []
        if self.rates:
            parts.append(f"{self.median:,.0f}")
        if self.failures:
            parts.append("; ".join(sorted(set(self.failures))) +
                         (f" ({len(self.failures)}/{len(self.failures) + len(self.rates)} runs)"
                          if self.rates else ""))
        return " ".join(parts) or "not run"


@dataclass
class MeasuredRun:
    """What `run_measured` saw."""

    returncode: int | None  # None: killed at the time limit
    output: str
    seconds: float
    timed_out: bool
    limit: float
    #: User + system CPU time of the process itself (all threads, whole lifetime) and of any
    #: children it reaped, from ``os.wait4``; None if it was killed at the limit.
    cpu_seconds: float | None = None


def run_measured(argv: list[str], *, env: dict[str, str], cwd: Path, limit: float,
                 poll: float = 0.02) -> MeasuredRun:
    """`hubs.run_limited`, plus the child's CPU time.

    The child is reaped here with ``os.wait4`` (polled with ``WNOHANG``), which returns the
    kernel's final rusage for it: no race with its exit, unlike reading ``/proc/<pid>/stat``.
    Like `run_limited`, it runs in its own session and is SIGKILLed with its children after
    `limit` seconds.
    """
    log_path = Path(cwd) / f"run-{time.monotonic_ns()}.log"
    t0 = time.monotonic()
    popen = spawn(argv, env, log_path, Path(cwd))
    cpu: float | None = None
    timed_out = False
    try:
        while True:
            try:
                pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: exit status and rusage are lost
                popen.returncode = -1
                break
            if pid == popen.pid:
                popen.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() - t0 >= limit:
                timed_out = True
                break
            time.sleep(poll)
    finally:
        kill_group(popen)  # kills only if it has not been reaped above
    seconds = time.monotonic() - t0
    output = log_path.read_text("utf-8", "replace")
    return MeasuredRun(None if timed_out else popen.returncode, output, seconds, timed_out,
                       limit, cpu)


def calcstorm_once(hub: Hub, mode: str, nclient: int, nquery: int, limit: float
                   ) -> tuple[float | None, str | None, float | None, float | None]:
    """One calcstorm run; returns (messages per second, None, hub CPU us per message, load
    generator CPU us per message) or (None, failure text, None, None)."""
    argv = ["java", "-jar", JSAMP_JAR, "calcstorm", "-nclient", str(nclient),
            "-nquery", str(nquery), "-mode", mode]
    cpu0 = hub.cpu_seconds()
    run = run_measured(argv, env=hub.env(), cwd=hub.workdir, limit=limit)
    cpu1 = hub.cpu_seconds()
    if run.timed_out:
        return None, f"hung: killed at the {limit:g} s limit", None, None
    match = _ELAPSED.search(run.output)
    if run.returncode != 0 or match is None:
        lines = [ln for ln in run.output.strip().splitlines() if ln.strip()]
        why = next((ln for ln in lines if "Exception" in ln or "Error" in ln),
                   lines[-1] if lines else "")
        return None, f"failed (exit {run.returncode}): {why.strip()[:100]}", None, None
    messages = nclient * nquery
    cpu = (cpu1 - cpu0) * 1e6 / messages if cpu0 is not None and cpu1 else None
    client_cpu = run.cpu_seconds * 1e6 / messages if run.cpu_seconds is not None else None
    return 1e6 / max(int(match.group(2)), 1), None, cpu, client_cpu


def run_calcstorm_part(hub_kinds: list[str], workdir: Path, *, nclient: int, nquery: int,
                       repeats: int, limit: float, warmup: bool = True, log=print) -> dict:
    """Run part 1; returns ``{"params": ..., "cells": {mode: {hub: Cell}}}``."""
    cells = {mode: {kind: Cell() for kind in hub_kinds} for mode in MODES}
    result = {"params": {"nclient": nclient, "nquery": nquery, "repeats": repeats,
                         "limit": limit}, "cells": cells}
    if not java_available():
        for mode in MODES:
            for kind in hub_kinds:
                cells[mode][kind].failures.append(f"not run: java or {JSAMP_JAR} missing")
        return result
    hubs: dict[str, Hub | None] = {}
    starts: dict[str, int] = {}

    def fresh(kind: str) -> Hub | None:
        starts[kind] = starts.get(kind, 0) + 1
        hub = Hub(kind, workdir / f"calcstorm-{kind}-{starts[kind]}")
        try:
            return hub.start()
        except HubError as exc:
            log(f"  {kind}: {exc}")
            return None

    try:
        for kind in hub_kinds:
            hubs[kind] = fresh(kind)
            # warm-up (JIT, imports, connection pools); not recorded
            if warmup and hubs[kind] is not None:
                calcstorm_once(hubs[kind], "sync", min(nclient, 4), 5, limit)
        for rep in range(repeats):
            for mode in MODES:
                for kind in hub_kinds:
                    hub = hubs[kind]
                    if hub is None or not hub.alive():
                        if hub is not None:
                            hub.stop()
                        hub = hubs[kind] = fresh(kind)
                    if hub is None:
                        cells[mode][kind].failures.append("hub did not start")
                        continue
                    rate, failure, cpu, client_cpu = calcstorm_once(hub, mode, nclient, nquery,
                                                                    limit)
                    if rate is not None:
                        cells[mode][kind].rates.append(rate)
                        if cpu is not None:
                            cells[mode][kind].cpu_us.append(cpu)
                        if client_cpu is not None:
                            cells[mode][kind].client_cpu_us.append(client_cpu)
                    else:
                        cells[mode][kind].failures.append(failure or "failed")
                        hub.stop()  # a hub that hung may hold stuck calls: start afresh
                        hubs[kind] = None
                    seen = (f"{rate:,.0f} msg/s; CPU per message: hub {cpu or 0:,.0f} us, "
                            f"load generator {client_cpu or 0:,.0f} us" if rate else failure)
                    log(f"  calcstorm rep {rep + 1}/{repeats} {mode:6} {kind:8} {seen}")
    finally:
        for hub in hubs.values():
            if hub is not None:
                hub.stop()
    return result
