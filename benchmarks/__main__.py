"""``python -m benchmarks [--quick | --tiny] [--parts 1,2,3,4] [--hubs sampflow,pyvo,jsamp]``.

Default: the fuller run (about 30 minutes on 2 cores; calcstorm 10 clients x 1000 queries, so
that the JVM's start-up and JIT warm-up are a small part of each run, 3 interleaved repeats;
each run is limited to 150 s, three times the slowest hub's normal run, so that a hub that
hangs, as pyvo's does in sync mode, costs 150 s rather than more). ``--quick``: about 2 minutes.
``--tiny``: seconds, for the harness test (numbers meaningless). Writes ``results.md``,
``results.json`` and ``fanout.png`` into ``--out`` (default: this folder).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .hubs import HUBS, JSAMP_JAR, java_available, raise_fd_limit

PRESETS = {
    "tiny": dict(calc_nquery=4, calc_repeats=1, calc_warmup=False, calc_limit=40, notify=20,
                 calls=20,
                 client_repeats=1, client_limit=60, sizes=[1, 5], fanouts=1, scale_limit=60,
                 files=2, fire=10, settle=0.05, engine_limit=60),
    "quick": dict(calc_nquery=50, calc_repeats=1, calc_limit=30, notify=200, calls=200,
                  client_repeats=1, client_limit=60, sizes=[1, 10, 100, 500], fanouts=2,
                  scale_limit=90, files=10, fire=300, settle=0.05, engine_limit=90),
    # calcstorm: 10,000 messages a run; JSAMP's hub in async mode does ~80 msg/s here (~125 s).
    "full": dict(calc_nquery=1000, calc_repeats=3, calc_limit=150, notify=1000, calls=1000,
                 client_repeats=3, client_limit=120, sizes=[1, 10, 100, 500], fanouts=5,
                 scale_limit=180, files=30, fire=1000, settle=0.05, engine_limit=180),
}


def _cmd(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _meta(preset: str, argv: list[str]) -> dict:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    repo = Path(__file__).resolve().parent.parent
    commit = _cmd(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]) or "?"
    java = _cmd(["java", "-version"]).splitlines()[:1] if shutil.which("java") else []
    try:
        import pyvo
        pyvo_version = pyvo.__version__
    except Exception:
        pyvo_version = "missing"
    jsamp = "missing"
    if java_available():
        import zipfile
        try:
            with zipfile.ZipFile(JSAMP_JAR) as jar:
                for name in jar.namelist():
                    if name.endswith("samp.version"):
                        jsamp = jar.read(name).decode().strip()
                        break
                else:
                    jsamp = Path(JSAMP_JAR).name
        except Exception:
            jsamp = Path(JSAMP_JAR).name
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks " + " ".join(argv),
        "preset": preset,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "sampflow": f"commit {commit}",
        "pyvo": pyvo_version,
        "jsamp": jsamp,
        "java": java[0] if java else "missing",
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="about 2 minutes")
    size.add_argument("--tiny", action="store_true", help="seconds; proves the harness works")
    parser.add_argument("--parts", default="1,2,3,4", help="which parts (default: 1,2,3,4)")
    parser.add_argument("--hubs", default=",".join(HUBS), help="default: sampflow,pyvo,jsamp")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for results.md, results.json, fanout.png")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args(argv)
    preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = PRESETS[preset]
    hubs = [h.strip() for h in args.hubs.split(",") if h.strip()]
    if "sampflow" not in hubs or any(h not in HUBS for h in hubs):
        parser.error(f"--hubs must include sampflow and name only {', '.join(HUBS)}")
    parts = {p.strip() for p in args.parts.split(",")}
    raise_fd_limit()
    meta = _meta(preset, argv)
    work = Path(tempfile.mkdtemp(prefix="sampflow-bench-"))
    # Child processes import `benchmarks` from the repository, whatever the working folder.
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + (
        os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    t0 = time.monotonic()
    results: dict = {}

    def log(text: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {text}", flush=True)

    from . import report

    try:
        if "1" in parts:
            from .calcstorm import run_calcstorm_part
            log("part 1: calcstorm")
            results["calcstorm"] = run_calcstorm_part(
                hubs, work, nclient=10, nquery=cfg["calc_nquery"], repeats=cfg["calc_repeats"],
                limit=cfg["calc_limit"], warmup=cfg.get("calc_warmup", True), log=log)
        if "2" in parts:
            from .pyclients import run_pyclients_part
            log("part 2: Python clients")
            results["clients"] = run_pyclients_part(
                hubs, work, n_notify=cfg["notify"], n_calls=cfg["calls"],
                repeats=cfg["client_repeats"], limit=cfg["client_limit"], log=log)
        if "3" in parts:
            from .scale import run_scale_part
            log("part 3: scale")
            results["scale"] = run_scale_part(hubs, work, sizes=cfg["sizes"],
                                              fanouts=cfg["fanouts"], limit=cfg["scale_limit"],
                                              log=log)
        if "4" in parts:
            from .engine import run_engine_part
            log("part 4: rules engine")
            results["engine"] = run_engine_part(work, n_files=cfg["files"], n_fire=cfg["fire"],
                                                settle=cfg["settle"], limit=cfg["engine_limit"],
                                                log=log)
    finally:
        meta["seconds"] = time.monotonic() - t0
        meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        args.out.mkdir(parents=True, exist_ok=True)
        plot = None
        if "scale" in results:
            plot = report.write_plot(args.out / "fanout.png", results["scale"], hubs)
        report.write_markdown(args.out / "results.md", meta, results, hubs, plot)
        report.write_json(args.out / "results.json", meta, results)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work folder kept: {work}")
    log(f"wrote {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
