"""Part 2: Python clients against each hub.

For each client library (sampflow's `AsyncSAMPClient`, pyvo's `SAMPIntegratedClient`) and each
hub, a worker subprocess (``python -m benchmarks.pyclients CLIENT N_NOTIFY N_CALLS``, hub found
through ``SAMP_HUB``) registers a sender and a receiver and measures

- notification throughput: the sender sends N ``bench.notify`` notifications one after the
  other (each ``notify`` waits for the hub's answer, as a client does); messages per second
  from the first send until the receiver has had them all;
- ``call_and_wait`` round trip: N sequential ``bench.call`` calls answered at once by the
  receiver; median and 99th percentile in milliseconds (after a short warm-up).

It prints one ``RESULT {json}`` line. The parent kills it at the time limit.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .hubs import Hub, HubError, run_limited

__all__ = ["CLIENTS", "run_pyclients_part", "percentile"]

CLIENTS = ("sampflow", "pyvo")
WARMUP = 20
NOTIFY = {"samp.mtype": "bench.notify", "samp.params": {"n": "0", "text": "hello"}}
CALL = {"samp.mtype": "bench.call", "samp.params": {"x": "1"}}
OK = {"samp.status": "samp.ok", "samp.result": {"y": "1"}}


def percentile(values: list[float], q: float) -> float:
    """The `q`-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- workers (run in the subprocess) -------------------------------------------------------------
class Errors:
    """A worker's failed operations: how many, and what the first one said."""

    def __init__(self) -> None:
        self.count = 0
        self.first = ""

    def add(self, exc: Exception) -> None:
        """Count `exc`; keep its text (160 characters at most) if it is the first."""
        self.count += 1
        self.first = self.first or f"{type(exc).__name__}: {exc}"[:160]


async def _sampflow_worker(n_notify: int, n_calls: int) -> dict:
    from sampflow.samp.client.aio import AsyncSAMPClient

    got = 0
    all_in = asyncio.Event()

    async def on_message(kind, sender, msg_id, message):
        nonlocal got
        if kind == "call":
            return OK
        got += 1
        if got >= n_notify:
            all_in.set()
        return None

    async with AsyncSAMPClient("bench-receiver") as recv, AsyncSAMPClient("bench-sender") as send:
        await recv.connect()
        await send.connect()
        recv.on_message = on_message
        await recv.declare_subscriptions({"bench.notify": {}, "bench.call": {}})
        errors = Errors()
        for _ in range(WARMUP):
            await send.call_and_wait(recv.public_id, CALL, timeout=10)
        times = []
        for _ in range(n_calls):
            t0 = time.perf_counter()
            try:
                await send.call_and_wait(recv.public_id, CALL, timeout=10)
            except Exception as exc:
                errors.add(exc)
                continue
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(n_notify):
            try:
                await send.notify(recv.public_id, NOTIFY)
            except Exception as exc:
                errors.add(exc)
        try:
            await asyncio.wait_for(all_in.wait(), 30)
        except asyncio.TimeoutError:
            pass
        elapsed = time.perf_counter() - t0
    return {"times": times, "received": got, "notify_seconds": elapsed, "errors": errors.count,
            "first_error": errors.first}


def _pyvo_worker(n_notify: int, n_calls: int) -> dict:
    from pyvo.samp import SAMPIntegratedClient

    recv = SAMPIntegratedClient("bench-receiver")
    send = SAMPIntegratedClient("bench-sender")
    recv.connect()
    send.connect()
    got = [0]
    all_in = threading.Event()

    def on_notify(private_key, sender_id, mtype, params, extra):
        got[0] += 1
        if got[0] >= n_notify:
            all_in.set()

    def on_call(private_key, sender_id, msg_id, mtype, params, extra):
        recv.reply(msg_id, OK)

    recv.bind_receive_notification("bench.notify", on_notify)
    recv.bind_receive_call("bench.call", on_call)
    rid = recv.get_public_id()
    errors = Errors()
    try:
        for _ in range(WARMUP):
            send.call_and_wait(rid, CALL, "10")
        times = []
        for _ in range(n_calls):
            t0 = time.perf_counter()
            try:
                send.call_and_wait(rid, CALL, "10")
            except Exception as exc:
                errors.add(exc)
                continue
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(n_notify):
            try:
                send.notify(rid, NOTIFY)
            except Exception as exc:
                errors.add(exc)
        all_in.wait(30)
        elapsed = time.perf_counter() - t0
    finally:
        for client in (send, recv):
            try:
                client.disconnect()
            except Exception:
                pass
    return {"times": times, "received": got[0], "notify_seconds": elapsed, "errors": errors.count,
            "first_error": errors.first}


def worker_main(argv: list[str]) -> int:
    client, n_notify, n_calls = argv[0], int(argv[1]), int(argv[2])
    if client == "sampflow":
        raw = asyncio.run(_sampflow_worker(n_notify, n_calls))
    else:
        raw = _pyvo_worker(n_notify, n_calls)
    times = raw.pop("times")
    raw.update(n_notify=n_notify, n_calls=len(times),
               call_median_ms=statistics.median(times) * 1e3 if times else None,
               call_p99_ms=percentile(times, 0.99) * 1e3 if times else None,
               notify_per_s=raw["received"] / raw["notify_seconds"] if raw["received"] else 0.0)
    print("RESULT " + json.dumps(raw), flush=True)
    return 0


# -- the part (run in the parent) ---------------------------------------------------------------
@dataclass
class ClientCell:
    """One client x hub cell over the repeats."""

    runs: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    def lost(self) -> int:
        return sum(r["n_notify"] - r["received"] + r["errors"] for r in self.runs)


def run_pyclients_part(hub_kinds: list[str], workdir: Path, *, n_notify: int, n_calls: int,
                       repeats: int, limit: float, log=print) -> dict:
    """Run part 2; returns ``{"params": ..., "cells": {client: {hub: ClientCell}}}``."""
    cells = {c: {k: ClientCell() for k in hub_kinds} for c in CLIENTS}
    hubs: dict[str, Hub | None] = {}
    try:
        for kind in hub_kinds:
            try:
                hubs[kind] = Hub(kind, workdir / f"clients-{kind}").start()
            except HubError as exc:
                hubs[kind] = None
                log(f"  {kind}: {exc}")
        for rep in range(repeats):
            for client in CLIENTS:
                for kind in hub_kinds:
                    hub, cell = hubs[kind], cells[client][kind]
                    if hub is None or not hub.alive():
                        cell.failures.append("hub not running")
                        continue
                    run = run_limited([sys.executable, "-m", "benchmarks.pyclients", client,
                                       str(n_notify), str(n_calls)],
                                      env=hub.env(), cwd=hub.workdir, limit=limit)
                    line = next((ln for ln in run.output.splitlines()
                                 if ln.startswith("RESULT ")), None)
                    if run.timed_out:
                        cell.failures.append(f"hung: killed at the {limit:g} s limit")
                    elif line is None:
                        tail = run.output.strip().splitlines()[-1:] or [""]
                        cell.failures.append(f"failed (exit {run.returncode}): {tail[0][:100]}")
                    else:
                        cell.runs.append(json.loads(line[7:]))
                    r = cell.runs[-1] if line else None
                    log(f"  clients rep {rep + 1}/{repeats} {client:8} -> {kind:8} " + (
                        f"{r['notify_per_s']:,.0f} notif/s, call median "
                        f"{r['call_median_ms']:.2f} ms p99 {r['call_p99_ms']:.2f} ms"
                        if r and r.get("call_median_ms") is not None else str(cell.failures[-1:])))
    finally:
        for hub in hubs.values():
            if hub is not None:
                hub.stop()
    return {"params": {"n_notify": n_notify, "n_calls": n_calls, "repeats": repeats,
                       "limit": limit}, "cells": cells}


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
