"""Part 3: scale. Register 1, 10, 100, 500 clients; fan one ``notifyAll`` out to all of them;
read the hub's resident memory at each size.

For each hub and size a fresh hub subprocess is started, and a worker subprocess
(``python -m benchmarks.scale N HUB_PID``) runs N sampflow `AsyncSAMPClient` receivers on one
event loop (each with its own callback endpoint, registered 16 at a time and subscribed to
``bench.fanout``), reads the hub's ``VmRSS`` before and after, then has one more client send
``notifyAll`` a few times, timing each from the send until the last receiver has it. Memory per
client is the growth of the hub's RSS divided by N (meaningful for the larger sizes only).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from .hubs import Hub, HubError, raise_fd_limit, rss_kb, run_limited

__all__ = ["run_scale_part"]

MESSAGE = {"samp.mtype": "bench.fanout", "samp.params": {"text": "to everyone"}}
CONCURRENCY = 16


async def _worker(n: int, hub_pid: int, fanouts: int) -> dict:
    from sampflow.samp.client.aio import AsyncSAMPClient

    raise_fd_limit()
    rss_before = rss_kb(hub_pid)
    counts = [0]
    target = [0]
    done = asyncio.Event()

    async def on_message(kind, sender, msg_id, message):
        counts[0] += 1
        if counts[0] >= target[0]:
            done.set()

    clients = [AsyncSAMPClient(f"bench-{i}") for i in range(n)]
    gate = asyncio.Semaphore(CONCURRENCY)
    failures: list[str] = []

    async def join(client: AsyncSAMPClient) -> None:
        async with gate:
            try:
                await client.connect(timeout=60)
                client.on_message = on_message
                await client.declare_subscriptions({"bench.fanout": {}})
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:160])

    t0 = time.perf_counter()
    await asyncio.gather(*(join(c) for c in clients))
    register_s = time.perf_counter() - t0
    registered = n - len(failures)
    await asyncio.sleep(0.5)
    rss_after = rss_kb(hub_pid)
    sender = AsyncSAMPClient("bench-sender", callable=False)
    await sender.connect()
    times, missing = [], []
    for _ in range(fanouts):
        counts[0], target[0] = 0, registered
        done.clear()
        t0 = time.perf_counter()
        try:
            await sender.notify_all(MESSAGE)
            await asyncio.wait_for(done.wait(), 60)
        except Exception as exc:
            failures.append(f"fan-out: {type(exc).__name__}: {exc}"[:160])
        times.append(time.perf_counter() - t0)
        missing.append(registered - counts[0])
        await asyncio.sleep(0.2)
    return {"n": n, "registered": registered, "register_s": register_s,
            "fanout_ms": statistics.median(times) * 1e3, "fanout_all_ms": [t * 1e3 for t in times],
            "missing": max(missing), "rss_before_kb": rss_before, "rss_after_kb": rss_after,
            "failures": failures[:5], "n_failures": len(failures)}


def worker_main(argv: list[str]) -> int:
    n, hub_pid, fanouts = int(argv[0]), int(argv[1]), int(argv[2])
    result = asyncio.run(_worker(n, hub_pid, fanouts))
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # skip unregistering N clients one by one: the hub is stopped next anyway


def run_scale_part(hub_kinds: list[str], workdir: Path, *, sizes: list[int], fanouts: int,
                   limit: float, log=print) -> dict:
    """Run part 3; returns ``{"params": ..., "cells": {hub: {n: result-or-failure}}}``."""
    cells: dict[str, dict[int, dict]] = {kind: {} for kind in hub_kinds}
    for n in sizes:
        for kind in hub_kinds:
            hub = Hub(kind, workdir / f"scale-{kind}-{n}")
            try:
                hub.start()
            except HubError as exc:
                cells[kind][n] = {"failure": f"hub did not start: {exc}"[:200]}
                continue
            try:
                time.sleep(0.3)
                idle_kb = hub.rss_kb()
                run = run_limited([sys.executable, "-m", "benchmarks.scale", str(n), str(hub.pid),
                                   str(fanouts)], env=hub.env(), cwd=hub.workdir, limit=limit)
                line = next((ln for ln in run.output.splitlines() if ln.startswith("RESULT ")),
                            None)
                if run.timed_out:
                    cells[kind][n] = {"failure": f"hung: killed at the {limit:g} s limit"}
                elif line is None:
                    tail = run.output.strip().splitlines()[-1:] or [""]
                    cells[kind][n] = {"failure": f"failed (exit {run.returncode}): "
                                                 f"{tail[0][:100]}"}
                else:
                    cell = json.loads(line[7:])
                    cell["idle_kb"] = idle_kb
                    if cell["rss_after_kb"] and cell["rss_before_kb"]:
                        cell["kb_per_client"] = (cell["rss_after_kb"] - cell["rss_before_kb"]) / n
                    cells[kind][n] = cell
            finally:
                hub.stop()
            c = cells[kind][n]
            log(f"  scale {kind:8} n={n:<4} " + (c["failure"] if "failure" in c else
                f"register {c['register_s']:.2f} s, fan-out {c['fanout_ms']:.1f} ms, "
                f"missing {c['missing']}, RSS {c['rss_after_kb'] / 1024:.1f} MiB, "
                f"{c.get('kb_per_client', 0):.1f} KiB/client"))
    return {"params": {"sizes": sizes, "fanouts": fanouts, "limit": limit}, "cells": cells}


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
