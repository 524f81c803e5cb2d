"""Federation benchmark (issue 13): linked hubs against one hub.

    python -m benchmarks.link                       # 500 calls, 3 x 100 clients, 10 fan-outs
    python -m benchmarks.link --calls 200 --clients 30 --fanouts 5 --out /tmp/bench

Starts a real ``nats-server`` on a free loopback port and ``sampflow link`` hubs (subprocesses,
own lockfiles and ``HOME``, stopped by PID), then measures, with sampflow's asyncio client in
this process:

1. ``call_and_wait`` round trip (median, p99): caller and responder on one linked hub
   (the single-hub figure), then caller on hub A and responder on hub B;
2. one ``notifyAll`` reaching every client: N clients on one hub, then N on each of 3 hubs
   (the sender on A): time from the call until the last client has received it.

Writes ``link_results.md`` and ``link_results.json`` in ``--out`` (``benchmarks/`` by default).
Numbers from a shared 2-core machine are noisy; compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sampflow.samp.lockfile import read_lockfile_unchecked
from sampflow.samp.lockfile_helpers import hub_answers

from .hubs import client_env, raise_fd_limit
from .pyclients import percentile

SECRET = "benchmark-secret"
CALL = {"samp.mtype": "coord.bench.call", "samp.params": {"x": "1"}}
OK = {"samp.status": "samp.ok", "samp.result": {"y": "1"}}
NOTE = {"samp.mtype": "coord.bench.note", "samp.params": {"n": "0"}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Proc:
    """A subprocess in its own session, stopped by PID."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


def start_nats(work: Path) -> tuple[Proc, str]:
    binary = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
    if not binary:
        raise SystemExit("nats-server not found (apt-get install nats-server)")
    port = _free_port()
    proc = Proc([binary, "-a", "127.0.0.1", "-p", str(port)], dict(os.environ),
                work / "nats.log")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return proc, f"nats://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.stop()
    raise SystemExit("nats-server did not start")


def start_hub(work: Path, nats_url: str, name: str) -> tuple[Proc, Path]:
    folder = work / f"hub-{name}"
    (folder / "home").mkdir(parents=True)
    lockfile = folder / "lock"
    env = {**client_env(lockfile, folder / "home"), "SAMPFLOW_LINK_SECRET": SECRET}
    proc = Proc([sys.executable, "-m", "sampflow.cli", "link", nats_url, "--name", name,
                 "--lockfile", str(lockfile), "--share", "coord.*", "samp.app.ping"],
                env, folder / "hub.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if lockfile.exists():
            url = read_lockfile_unchecked(lockfile).get("samp.hub.xmlrpc.url", "")
            if url and hub_answers(url, 2.0):
                return proc, lockfile
        if proc.popen.poll() is not None:
            raise SystemExit(f"hub {name} exited: {proc.log.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.stop()
    raise SystemExit(f"hub {name} did not start")


async def connect(lockfile: Path, name: str, on_message: Any = None) -> Any:
    from sampflow.samp.client.aio import AsyncSAMPClient

    client = AsyncSAMPClient(name, callable=on_message is not None)
    if on_message is not None:
        client.on_message = on_message
    await client.connect(lockfile=str(lockfile))
    await client.declare_metadata({"samp.name": name})
    if on_message is not None:
        await client.declare_subscriptions({"coord.bench.*": {}})
    return client


async def find(client: Any, name: str, count: int = 1, timeout: float = 120.0) -> list[str]:
    """Public ids of clients called `name` (waits until there are `count`)."""
    async with asyncio.timeout(timeout):
        while True:
            ids = []
            for cid in await client.get_registered_clients():
                if (await client.get_metadata(cid)).get("samp.name") == name:
                    ids.append(cid)
            if len(ids) >= count:
                return ids
            await asyncio.sleep(0.2)


async def round_trips(caller_lock: Path, responder_lock: Path, target_name: str,
                      calls: int) -> dict[str, float]:
    async def answer(kind: str, sender: str, msg_id: str | None, message: dict) -> Any:
        return OK if kind == "call" else None

    responder = await connect(responder_lock, "bench-responder", answer)
    caller = await connect(caller_lock, "bench-caller")
    try:
        (target,) = await find(caller, target_name)
        for _ in range(20):  # warm-up
            await caller.call_and_wait(target, CALL, 30)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            response = await caller.call_and_wait(target, CALL, 30)
            times.append(time.perf_counter() - start)
            assert response["samp.status"] == "samp.ok", response
        return {"calls": calls, "median_ms": statistics.median(times) * 1e3,
                "p99_ms": percentile(times, 0.99) * 1e3}
    finally:
        await caller.disconnect()
        await responder.disconnect()


async def fan_out(locks: list[Path], per_hub: int, rounds: int, names: list[str]) -> dict:
    received: dict[int, int] = {}
    done: dict[int, asyncio.Future[float]] = {}
    expected = per_hub * len(locks)

    async def on_note(kind: str, sender: str, msg_id: str | None, message: dict) -> Any:
        n = int(message["samp.params"]["n"])
        received[n] = received.get(n, 0) + 1
        if received[n] == expected and n in done and not done[n].done():
            done[n].set_result(time.perf_counter())
        return None

    clients = []
    try:
        for lock, hub in zip(locks, names, strict=True):
            for i in range(per_hub):
                clients.append(await connect(lock, f"bench-{hub}-{i}", on_note))
        sender = await connect(locks[0], "bench-sender")
        clients.append(sender)
        # Wait until A sees every client (its own and the proxies).
        async with asyncio.timeout(300):
            while len(await sender.get_subscribed_clients("coord.bench.note")) < expected:
                await asyncio.sleep(0.2)
        times = []
        loop = asyncio.get_running_loop()
        for n in range(rounds + 1):  # round 0 is a warm-up
            done[n] = loop.create_future()
            start = time.perf_counter()
            await sender.notify_all({**NOTE, "samp.params": {"n": str(n)}})
            end = await asyncio.wait_for(done[n], 120)
            if n:
                times.append(end - start)
        return {"hubs": len(locks), "clients": expected, "rounds": rounds,
                "median_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3}
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.disconnect()


async def run(args: argparse.Namespace, work: Path) -> dict:
    raise_fd_limit()
    nats, url = start_nats(work)
    procs = [nats]
    try:
        hubs = {}
        for name in ("A", "B", "C"):
            proc, lock = start_hub(work, url, name)
            procs.append(proc)
            hubs[name] = lock
        results: dict[str, Any] = {}
        results["call_single_hub"] = await round_trips(hubs["A"], hubs["A"], "bench-responder",
                                                       args.calls)
        results["call_two_linked_hubs"] = await round_trips(
            hubs["A"], hubs["B"], "bench-responder (proxy@B)", args.calls)
        results["notify_all_single_hub"] = await fan_out(
            [hubs["A"]], args.clients * 3, args.fanouts, ["A"])
        results["notify_all_three_hubs"] = await fan_out(
            [hubs["A"], hubs["B"], hubs["C"]], args.clients, args.fanouts, ["A", "B", "C"])
        return results
    finally:
        for proc in reversed(procs):
            proc.stop()


def report(results: dict, out: Path) -> None:
    c1, c2 = results["call_single_hub"], results["call_two_linked_hubs"]
    f1, f3 = results["notify_all_single_hub"], results["notify_all_three_hubs"]
    lines = [
        "# Federation benchmark (`python -m benchmarks.link`)", "",
        (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
         f"load average {os.getloadavg()[0]:.2f}"), "",
        "| call_and_wait round trip | calls | median (ms) | p99 (ms) |",
        "|---|---:|---:|---:|",
        f"| one hub | {c1['calls']} | {c1['median_ms']:.2f} | {c1['p99_ms']:.2f} |",
        (f"| two linked hubs (A -> B) | {c2['calls']} | {c2['median_ms']:.2f} | "
         f"{c2['p99_ms']:.2f} |"), "",
        "| one notifyAll reaching every client | clients | rounds | median (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|",
        (f"| one hub | {f1['clients']} | {f1['rounds']} | {f1['median_ms']:.1f} | "
         f"{f1['max_ms']:.1f} |"),
        (f"| 3 linked hubs | {f3['clients']} | {f3['rounds']} | {f3['median_ms']:.1f} | "
         f"{f3['max_ms']:.1f} |"), "",
    ]
    (out / "link_results.md").write_text("\n".join(lines))
    (out / "link_results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.link", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--clients", type=int, default=100, help="clients per hub (fan-out)")
    parser.add_argument("--fanouts", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sampflow-link-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    report(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
