"""``results.md``, ``results.json`` and ``fanout.png`` from the parts' results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .calcstorm import MODES
from .pyclients import CLIENTS

__all__ = ["write_markdown", "write_json", "write_plot"]

NAMES = {"sampflow": "sampflow", "pyvo": "pyvo", "jsamp": "JSAMP"}
TARGET_CALCSTORM = {"pyvo": 3.0, "jsamp": 1.5}


def _ratio(ours: float | None, theirs: float | None, failed: bool) -> str:
    if ours is None:
        return "n/a"
    if theirs is None:
        return "∞ (it failed)" if failed else "n/a"
    return f"{ours / theirs:.2f}x"


def _f(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else fmt.format(value)


def calcstorm_section(part: dict, hubs: list[str], cpus: int | None = None) -> list[str]:
    """The Markdown lines of the report\'s calcstorm section (part 1) for `part`, the
    calcstorm results, comparing sampflow with the other `hubs`."""
    p = part["params"]
    others = [h for h in hubs if h != "sampflow"]
    lines = [f"## 1. JSAMP calcstorm: {p['nclient']} clients x {p['nquery']} queries",
             "",
             f"Messages per second (higher is better), median of {p['repeats']} interleaved "
             f"run(s) per cell; each run is limited to {p['limit']:g} s. Ratio = sampflow's "
             "throughput / the other hub's. Targets: >= 1.5x JSAMP, >= 3x pyvo. calcstorm's "
             "elapsed time includes the work of its own JVM clients (the load generator), which "
             "share the machine's CPUs with the hub; so the second table gives CPU time per "
             "message (user + system, all threads) of the hub process (from /proc) and of the "
             "load generator (its rusage at exit, JVM start-up included).",
             "",
             "| mode | " + " | ".join(NAMES[h] for h in hubs) + " | " +
             " | ".join(f"sampflow / {NAMES[h]}" for h in others) + " | targets |",
             "|---" * (1 + len(hubs) + len(others) + 1) + "|"]
    for mode in MODES:
        row = part["cells"][mode]
        ours = row["sampflow"].median if "sampflow" in row else None
        ratios, met = [], []
        for h in others:
            cell = row[h]
            ratios.append(_ratio(ours, cell.median, bool(cell.failures)))
            if ours is None:
                met.append(False)
            elif cell.median is None:
                met.append(bool(cell.failures))
            else:
                met.append(ours / cell.median >= TARGET_CALCSTORM[h])
        if "sampflow" in row and row["sampflow"].failures:
            met.append(False)
        verdict = "met" if met and all(met) else "MISSED"
        lines.append(f"| {mode} | " + " | ".join(row[h].text() for h in hubs) + " | " +
                     " | ".join(ratios) + f" | {verdict} |")
    lines += ["", "| mode | " + " | ".join(f"{NAMES[h]} hub CPU (us/msg)" for h in hubs) + " | " +
              " | ".join(f"{NAMES[h]} / sampflow CPU" for h in others) + " | " +
              " | ".join(f"load generator CPU with {NAMES[h]} hub (us/msg)" for h in hubs) +
              " |",
              "|---" * (1 + 2 * len(hubs) + len(others)) + "|"]
    for mode in MODES:
        row = part["cells"][mode]
        ours = row["sampflow"].cpu_median
        lines.append(f"| {mode} | " + " | ".join(_f(row[h].cpu_median) for h in hubs) + " | " +
                     " | ".join(_ratio(row[h].cpu_median, ours, False) if ours else "n/a"
                                for h in others) + " | " +
                     " | ".join(_f(row[h].client_cpu_median) for h in hubs) +
                     " |")
    return lines + [""] + _ceiling(part, hubs, cpus)


def _ceiling(part: dict, hubs: list[str], cpus: int | None) -> list[str]:
    """The CPU bound on calcstorm throughput, from the load generator's CPU per message."""
    if not cpus:
        return []
    items = []
    for mode in MODES:
        row = part["cells"][mode]
        ours = row.get("sampflow")
        gen = ours.client_cpu_median if ours is not None else None
        if not gen:
            continue
        ceiling = cpus * 1e6 / gen
        text = f"- {mode}: ceiling {cpus} / {gen:,.0f} us = {ceiling:,.0f} msg/s"
        if ours.median:
            text += f"; sampflow measured {ours.median:,.0f} ({ours.median / ceiling:.0%} of it)"
        for h in hubs:
            if h == "sampflow":
                continue
            rate, target = row[h].median, TARGET_CALCSTORM[h]
            if rate is None:
                text += f"; {NAMES[h]}: no throughput measured"
                continue
            ratio = ceiling / rate
            text += f"; ceiling / {NAMES[h]}'s {rate:,.0f} msg/s = {ratio:.2f}x: " + (
                f"{target:g}x is out of reach here" if ratio < target else
                f"{target:g}x needs {target * rate:,.0f} msg/s, {target / ratio:.0%} of the "
                "ceiling")
        items.append(text + ".")
    if not items:
        return []
    messages = part["params"]["nclient"] * part["params"]["nquery"]
    short = (f" With only {messages:,} messages per run, the JVM's start-up and JIT warm-up weigh "
             "more in the load generator's CPU per message, which lowers these ceilings; read "
             "them from the full run (10,000 messages per run)." if messages < 5000 else "")
    return [f"Each message costs the hub's CPU plus the load generator's, so on {cpus} CPU(s) "
            f"throughput <= {cpus} / (hub CPU + load generator CPU per message). For a hub that "
            f"used no CPU at all this is {cpus} / (load generator CPU per message), taken with "
            "sampflow's hub: the ceiling below, compared with the other hubs' measured "
            "throughput. A target above that ratio cannot be met on this machine with this load "
            "generator, whatever the hub does." + short,
            "", *items, ""]


def _clients(part: dict, hubs: list[str]) -> list[str]:
    p = part["params"]
    lines = ["## 2. Python clients",
             "",
             f"{p['n_notify']} notifications sent one after the other (each acknowledged by "
             f"the hub) and {p['n_calls']} sequential `call_and_wait` round trips per run; "
             f"median of {p['repeats']} run(s). Ratios are against sampflow's hub with the same "
             "client (throughput: sampflow / other; latency: other / sampflow). Target: "
             "`call_and_wait` median < 1 ms through sampflow's hub with sampflow's client.",
             "",
             "| client | hub | notifications/s | call_and_wait median (ms) | p99 (ms) | "
             "lost or failed | vs sampflow hub (notif/s, median) |",
             "|---|---|---|---|---|---|---|"]
    for client in CLIENTS:
        row = part["cells"][client]
        base = row.get("sampflow")
        for h in hubs:
            cell = row[h]
            if not cell.runs:
                lines.append(f"| {client} | {NAMES[h]} | " + " | ".join(
                    ["n/a"] * 3) + f" | {'; '.join(sorted(set(cell.failures)))} | |")
                continue
            notif, med, p99 = (cell.median("notify_per_s"), cell.median("call_median_ms"),
                               cell.median("call_p99_ms"))
            lost = cell.lost()
            errs = sorted({r["first_error"] for r in cell.runs if r.get("first_error")})
            lost_txt = str(lost) + (f" ({errs[0][:80]})" if errs else "") + (
                "; " + "; ".join(sorted(set(cell.failures))) if cell.failures else "")
            vs = ""
            if h != "sampflow" and base is not None and base.runs:
                bn, bm = base.median("notify_per_s"), base.median("call_median_ms")
                vs = f"{_ratio(bn, notif, False)}, {_ratio(med, bm, False)}" if bn and bm else ""
            lines.append(f"| {client} | {NAMES[h]} | {_f(notif)} | {_f(med, '{:.2f}')} | "
                         f"{_f(p99, '{:.2f}')} | {lost_txt} | {vs} |")
    return lines + [""]


def _scale(part: dict, hubs: list[str], plot: str | None) -> list[str]:
    p = part["params"]
    lines = ["## 3. Scale: many clients",
             "",
             "N sampflow `AsyncSAMPClient` receivers on one event loop in one process, registered "
             "16 at a time; one more client sends `notifyAll`; fan-out time is from the send until "
             f"the last receiver has it (median of {p['fanouts']}). RSS is the hub process's "
             "`VmRSS` with N clients; KiB/client is its growth from before registration divided "
             "by N. Targets: 500 clients with no failed delivery; < 50 KB per client.",
             "",
             "| clients | hub | register all (s) | fan-out (ms) | missed deliveries | "
             "hub RSS (MiB) | KiB / client |",
             "|---|---|---|---|---|---|---|"]
    for n in p["sizes"]:
        for h in hubs:
            c = part["cells"][h].get(n) or part["cells"][h].get(str(n))
            if c is None:
                continue
            if "failure" in c:
                lines.append(f"| {n} | {NAMES[h]} | {c['failure']} | | | | |")
                continue
            missed = str(c["missing"] + (n - c["registered"]))
            if c.get("n_failures"):
                missed += f" ({c['failures'][0][:80]})"
            lines.append(f"| {n} | {NAMES[h]} | {c['register_s']:.2f} | {c['fanout_ms']:.1f} | "
                         f"{missed} | {c['rss_after_kb'] / 1024:.1f} | "
                         f"{_f(c.get('kb_per_client'), '{:.1f}')} |")
    if plot:
        lines += ["", f"![fan-out time and hub memory against the number of clients]({plot})"]
    return lines + [""]


def _engine(part: dict) -> list[str]:
    p = part.get("params", {})
    lines = ["## 4. Rules engine (`sampflow run`, against sampflow's hub)", ""]
    if "failure" in part:
        return lines + [f"Not measured: {part['failure']}", ""]
    lines += [f"{p['n_files']} FITS images written one at a time into the watched folder "
              f"(rule `settle: {p['settle_s']:g}s`); latency from the writer's `close()` to the "
              "receiving client getting `image.load.fits`. Firings: "
              f"{p['n_fire']} `bench.fire` notifications to the engine, each firing a rule that "
              "notifies `bench.fired` back. Target: median < 100 ms plus settle.",
              "",
              "| file closed -> image.load.fits median (ms) | p99 (ms) | of which settle (ms) | "
              "MType-triggered firings/s | delivery ledger per file (us) | failures |",
              "|---|---|---|---|---|---|",
              f"| {_f(part.get('file_median_ms'), '{:.1f}')} | "
              f"{_f(part.get('file_p99_ms'), '{:.1f}')} | {p['settle_s'] * 1e3:.0f} | "
              f"{_f(part.get('fire_per_s'))} | {_f(part.get('ledger_us_per_file'), '{:.0f}')} | "
              f"{'; '.join(part['failures']) or 'none'} |"]
    return lines + [""]


def write_markdown(path: Path, meta: dict, results: dict, hubs: list[str],
                   plot: str | None) -> None:
    """Write ``results.md``."""
    lines = ["# sampflow benchmarks", "",
             f"- date: {meta['date']}",
             f"- command: `{meta['command']}` ({meta['preset']})",
             f"- machine: {meta['cpus']} CPU(s) ({meta['cpu_model']}), load average at start "
             f"{meta['load_start']}, at end {meta.get('load_end', '?')}; other work may be "
             "running: compare within this file, not across machines",
             f"- software: Python {meta['python']}, sampflow {meta['sampflow']}, "
             f"pyvo {meta['pyvo']}, JSAMP {meta['jsamp']}, Java {meta['java']}",
             f"- run time: {meta.get('seconds', 0):.0f} s", ""]
    if "calcstorm" in results:
        lines += calcstorm_section(results["calcstorm"], hubs, meta.get("cpus"))
    if "clients" in results:
        lines += _clients(results["clients"], hubs)
    if "scale" in results:
        lines += _scale(results["scale"], hubs, plot)
    if "engine" in results:
        lines += _engine(results["engine"])
    path.write_text("\n".join(lines).rstrip() + "\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(path: Path, meta: dict, results: dict) -> None:
    """Write every raw number to ``results.json``."""
    path.write_text(json.dumps({"meta": meta, "results": _plain(results)}, indent=1) + "\n")


def write_plot(path: Path, scale: dict, hubs: list[str]) -> str | None:
    """Plot fan-out time and hub RSS against N; returns None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for h in hubs:
        cells = scale["cells"][h]
        points = sorted((n, c) for n, c in cells.items() if "failure" not in c)
        if not points:
            continue
        ns = [n for n, _ in points]
        ax1.plot(ns, [c["fanout_ms"] for _, c in points], "o-", label=NAMES[h])
        ax2.plot(ns, [c["rss_after_kb"] / 1024 for _, c in points], "o-", label=NAMES[h])
    for ax, title, unit in ((ax1, "notifyAll fan-out time", "ms"),
                            (ax2, "hub resident memory", "MiB")):
        ax.set_xscale("log")
        ax.set_xlabel("registered clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax1.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
