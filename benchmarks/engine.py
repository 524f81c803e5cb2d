"""Part 4: the rules engine, as ``sampflow run`` runs it.

A sampflow hub subprocess, ``sampflow run RULES --hub connect`` as another (the engine, with
the rule file below), and a worker subprocess (``python -m benchmarks.engine FOLDER N_FILES
N_FIRE``) that registers ``bench-receiver`` and measures

- file closed -> ``image.load.fits`` received: the worker writes small FITS images into the
  watched folder one at a time and times each from its ``close()`` to the arrival of the
  message naming it (the rule's ``settle`` is included, and reported alongside);
- MType-triggered firings per second: the worker sends N ``bench.fire`` notifications to the
  engine (one after the other, each acknowledged by the hub); each firing notifies
  ``bench.fired`` back; rate from the first send to the last ``bench.fired`` received.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

from .hubs import Hub, HubError, kill_group, run_limited, spawn
from .pyclients import percentile

__all__ = ["run_engine_part", "RULES"]

RULES = """\
client: {{name: bench-engine}}
rules:
  - name: new FITS images go to the receiver
    on: {{files: "{folder}", patterns: ["*.fits"], settle: {settle}s}}
    key: "{{{{ file.path }}}}"
    do:
      - send_file: bench-receiver
  - name: MType-triggered firing
    on: {{mtype: bench.fire}}
    mode: queued
    max: 100000
    do:
      - notify: {{to: bench-receiver, mtype: bench.fired, params: {{n: "{{{{ params.n }}}}"}}}}
"""


def _fits_bytes() -> bytes:
    import numpy as np
    from astropy.io import fits

    buf = io.BytesIO()
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.int16)).writeto(buf)
    return buf.getvalue()


async def _worker(folder: Path, n_files: int, n_fire: int) -> dict:
    from sampflow.samp.client.aio import AsyncSAMPClient

    arrivals: dict[str, float] = {}
    fired = [0]
    file_event = asyncio.Event()
    fired_all = asyncio.Event()

    async def on_message(kind, sender, msg_id, message):
        mtype = message.get("samp.mtype")
        params = message.get("samp.params", {})
        if mtype == "image.load.fits":
            arrivals[os.path.basename(str(params.get("url", "")))] = time.perf_counter()
            file_event.set()
        elif mtype == "bench.fired":
            fired[0] += 1
            if fired[0] >= n_fire:
                fired_all.set()
        return {"samp.status": "samp.ok", "samp.result": {}} if kind == "call" else None

    result: dict = {"failures": []}
    async with AsyncSAMPClient("bench-receiver") as recv:
        await recv.connect()
        recv.on_message = on_message
        await recv.declare_subscriptions({"image.load.fits": {}, "bench.fired": {}})
        engine_id = None
        deadline = time.monotonic() + 60
        while engine_id is None and time.monotonic() < deadline:
            subscribed = await recv.get_subscribed_clients("bench.fire")
            engine_id = next(iter(subscribed), None)
            if engine_id is None:
                await asyncio.sleep(0.1)
        if engine_id is None:
            result["failures"].append("the engine did not subscribe to bench.fire within 60 s")
            return result
        data = _fits_bytes()
        latencies = []
        for i in range(n_files):
            name = f"img-{i:04d}.fits"
            file_event.clear()
            with open(folder / name, "wb") as f:
                f.write(data)
            closed = time.perf_counter()
            try:
                while name not in arrivals:
                    await asyncio.wait_for(file_event.wait(), 10)
                    file_event.clear()
                latencies.append((arrivals[name] - closed) * 1e3)
            except asyncio.TimeoutError:
                result["failures"].append(f"{name}: no image.load.fits within 10 s")
            await asyncio.sleep(0.05)
        result["file_ms"] = latencies
        t0 = time.perf_counter()
        for i in range(n_fire):
            await recv.notify(engine_id, {"samp.mtype": "bench.fire",
                                          "samp.params": {"n": str(i)}})
        try:
            await asyncio.wait_for(fired_all.wait(), 60)
        except asyncio.TimeoutError:
            result["failures"].append(f"only {fired[0]}/{n_fire} firings within 60 s")
        result["fired"] = fired[0]
        result["fire_per_s"] = fired[0] / (time.perf_counter() - t0)
    return result


def worker_main(argv: list[str]) -> int:
    folder, n_files, n_fire = Path(argv[0]), int(argv[1]), int(argv[2])
    print("RESULT " + json.dumps(asyncio.run(_worker(folder, n_files, n_fire))), flush=True)
    return 0


def _sampflow_argv() -> list[str]:
    import shutil

    script = shutil.which("sampflow", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "sampflow.cli"]


def ledger_cost(workdir: Path, n: int = 2000) -> float:
    """Microseconds of delivery-ledger work per file, as the engine does it for one file of a
    files rule: two look-ups (before admitting the firing and before running it), ``pending``
    before sending and ``sent`` after, on a WAL database file in `workdir`."""
    from sampflow.rules.ledger import Ledger

    ledger = Ledger(workdir / "ledger-bench.sqlite3")
    try:
        t0 = time.perf_counter()
        for i in range(n):
            path = f"/data/night/frame{i:06d}.fits"
            ledger.get("bench", path)
            ledger.get("bench", path)
            ledger.begin("bench", path, 2880, i)
            ledger.finish("bench", path, "sent", recipients=["bench-receiver"])
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        ledger.close()


def run_engine_part(workdir: Path, *, n_files: int, n_fire: int, settle: float, limit: float,
                    log=print) -> dict:
    """Run part 4; returns a dict of the measures (or ``{"failure": ...}``)."""
    params = {"n_files": n_files, "n_fire": n_fire, "settle_s": settle, "limit": limit}
    folder = (workdir / "engine-watched").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    rules = workdir / "engine-rules.yaml"
    rules.write_text(RULES.format(folder=folder, settle=settle))
    hub = Hub("sampflow", workdir / "engine-hub")
    try:
        hub.start()
    except HubError as exc:
        return {"params": params, "failure": f"hub did not start: {exc}"}
    engine = None
    try:
        argv = [*_sampflow_argv(), "run", str(rules), "--hub", "connect",
                "--lockfile", str(hub.lockfile), "--no-web-profile",
                "--state", str(workdir / "engine-state")]
        engine = spawn(argv, hub.env(), workdir / "engine.log", workdir)
        run = run_limited([sys.executable, "-m", "benchmarks.engine", str(folder), str(n_files),
                           str(n_fire)], env=hub.env(), cwd=workdir, limit=limit)
        line = next((ln for ln in run.output.splitlines() if ln.startswith("RESULT ")), None)
        engine_alive = engine.poll() is None
        engine_log = (workdir / "engine.log").read_text("utf-8", "replace").strip()
        if run.timed_out:
            return {"params": params, "failure": f"hung: killed at the {limit:g} s limit"}
        if line is None:
            tail = run.output.strip().splitlines()[-1:] or [""]
            return {"params": params, "failure": f"worker failed: {tail[0][:120]}"}
        result = json.loads(line[7:])
        if not engine_alive and result["failures"]:
            result["failures"].append("sampflow run exited: " + engine_log[-200:])
        lat = result.pop("file_ms", [])
        if lat:
            result.update(file_median_ms=statistics.median(lat),
                          file_p99_ms=percentile(lat, 0.99), n_files_ok=len(lat))
        result["params"] = params
        result["ledger_us_per_file"] = ledger_cost(workdir)
        log(f"  engine: file->message median {result.get('file_median_ms', float('nan')):.1f} ms"
            f" (settle {settle * 1e3:.0f} ms), p99 {result.get('file_p99_ms', float('nan')):.1f}"
            f" ms; {result.get('fire_per_s', 0):,.0f} firings/s; delivery ledger "
            f"{result['ledger_us_per_file']:.0f} us/file; failures {result['failures']}")
        return result
    finally:
        if engine is not None:
            engine.terminate()
            try:
                engine.wait(8)
            except Exception:
                pass
            kill_group(engine)
        hub.stop()


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
