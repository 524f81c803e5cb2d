"""Part 1: JSAMP's ``calcstorm`` load test against each hub, same load, same run.

``calcstorm -nclient C -nquery Q -mode M`` starts C JSAMP clients that each send Q
``calc.int.*`` messages to random others and check every answer; it prints
``Elapsed time: N ms (U us per message)``. Throughput here is ``1e6 / U`` messages per second.
All hubs run side by side for the whole part (started once, warmed up with one small run), and
the repeats are interleaved: for each repeat, each mode, each hub in turn.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .hubs import JSAMP_JAR, Hub, HubError, java_available, run_limited

__all__ = ["MODES", "Cell", "run_calcstorm_part"]

MODES = ("sync", "async", "notify")
_ELAPSED = re.compile(r"Elapsed time:\s*(\d+)\s*ms\s*\((\d+)\s*us per message\)")


@dataclass
class Cell:
    """One hub x mode cell: per-repeat throughputs (msg/s) and what went wrong."""

    rates: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    #: Hub CPU time (user + system, all threads) per message, microseconds, per run.
    cpu_us: list[float] = field(default_factory=list)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu_us) if self.cpu_us else None

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


def calcstorm_once(hub: Hub, mode: str, nclient: int, nquery: int, limit: float
                   ) -> tuple[float | None, str | None, float | None]:
    """One calcstorm run; returns (messages per second, None, hub CPU us per message) or
    (None, failure text, None)."""
    argv = ["java", "-jar", JSAMP_JAR, "calcstorm", "-nclient", str(nclient),
            "-nquery", str(nquery), "-mode", mode]
    cpu0 = hub.cpu_seconds()
    run = run_limited(argv, env=hub.env(), cwd=hub.workdir, limit=limit)
    cpu1 = hub.cpu_seconds()
    if run.timed_out:
        return None, f"hung: killed at the {limit:g} s limit", None
    match = _ELAPSED.search(run.output)
    if run.returncode != 0 or match is None:
        lines = [ln for ln in run.output.strip().splitlines() if ln.strip()]
        why = next((ln for ln in lines if "Exception" in ln or "Error" in ln),
                   lines[-1] if lines else "")
        return None, f"failed (exit {run.returncode}): {why.strip()[:100]}", None
    cpu = (cpu1 - cpu0) * 1e6 / (nclient * nquery) if cpu0 is not None and cpu1 else None
    return 1e6 / max(int(match.group(2)), 1), None, cpu


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
            if warmup and hubs[kind] is not None:  # warm-up (JIT, imports, connection pools); not recorded
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
                    rate, failure, cpu = calcstorm_once(hub, mode, nclient, nquery, limit)
                    if rate is not None:
                        cells[mode][kind].rates.append(rate)
                        if cpu is not None:
                            cells[mode][kind].cpu_us.append(cpu)
                    else:
                        cells[mode][kind].failures.append(failure or "failed")
                        hub.stop()  # a hub that hung may hold stuck calls: start afresh
                        hubs[kind] = None
                    log(f"  calcstorm rep {rep + 1}/{repeats} {mode:6} {kind:8} "
                        f"{f'{rate:,.0f} msg/s, hub CPU {cpu or 0:,.0f} us/msg' if rate else failure}")
    finally:
        for hub in hubs.values():
            if hub is not None:
                hub.stop()
    return result
