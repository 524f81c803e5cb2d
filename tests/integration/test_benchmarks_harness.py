"""The benchmark harness runs end to end in its tiny mode (seconds) and writes its report.

No timing assertion here: the numbers of a tiny run mean nothing, and CI machines are noisy.
What is checked is that every part ran, that each hub and worker was started and stopped, and
that results.md, results.json and the plot are written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.calcstorm import MODES, Cell
from benchmarks.pyclients import percentile
from benchmarks.report import calcstorm_section

REPO = Path(__file__).resolve().parents[2]


def test_failure_cells_say_what_happened():
    cell = Cell(rates=[], failures=["hung: killed at the 30 s limit"])
    assert cell.text() == "hung: killed at the 30 s limit"
    cell = Cell(rates=[100.0, 300.0], failures=["hung: killed at the 30 s limit"])
    assert cell.text() == "200 hung: killed at the 30 s limit (1/3 runs)"


def test_calcstorm_report_gives_the_load_generator_cpu_and_the_ceiling():
    cells = {mode: {"sampflow": Cell(rates=[500.0], cpu_us=[800.0], client_cpu_us=[2500.0]),
                    "pyvo": Cell(rates=[400.0], cpu_us=[2000.0], client_cpu_us=[2600.0]),
                    "jsamp": Cell(rates=[100.0], cpu_us=[1500.0], client_cpu_us=[3000.0])}
             for mode in MODES}
    cells["async"]["pyvo"] = Cell(failures=["failed (exit 1): Connection reset"])
    part = {"params": {"nclient": 10, "nquery": 1000, "repeats": 2, "limit": 300},
            "cells": cells}
    text = "\n".join(calcstorm_section(part, ["sampflow", "pyvo", "jsamp"], cpus=2))
    assert "load generator CPU with JSAMP hub (us/msg)" in text
    assert "| sync | 800 | 2,000 | 1,500 | 2.50x | 1.88x | 2,500 | 2,600 | 3,000 |" in text
    assert "throughput <= 2 / (hub CPU + load generator CPU per message)" in text
    # 2 CPUs / 2.5 ms = 800 msg/s: 2x pyvo's 400 (3x out of reach), 8x JSAMP's 100
    assert ("- sync: ceiling 2 / 2,500 us = 800 msg/s; sampflow measured 500 (62% of it); "
            "ceiling / pyvo's 400 msg/s = 2.00x: 3x is out of reach here; "
            "ceiling / JSAMP's 100 msg/s = 8.00x: 1.5x needs 150 msg/s, 19% of the ceiling."
            ) in text
    assert "- async: ceiling 2 / 2,500 us = 800 msg/s; sampflow measured 500 (62% of it); " \
           "pyvo: no throughput measured;" in text
    assert "With only" not in text  # 10,000 messages per run: no short-run caveat
    part["params"]["nquery"] = 50
    section = "\n".join(calcstorm_section(part, ["sampflow"], cpus=2))
    assert "With only 500 messages per run" in section


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.timeout(300)
def test_tiny_run_writes_every_part(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SAMP_HUB"}
    env["HOME"] = str(tmp_path)  # nothing may touch a real ~/.samp
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--hubs", "sampflow,pyvo",
         "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (out / "results.md").read_text()
    for heading in ("## 1. JSAMP calcstorm", "## 2. Python clients", "## 3. Scale",
                    "## 4. Rules engine", "CPU(s)"):
        assert heading in text
    data = json.loads((out / "results.json").read_text())
    results = data["results"]
    assert set(results) == {"calcstorm", "clients", "scale", "engine"}
    assert data["meta"]["cpus"] == os.cpu_count()
    assert "load generator CPU with sampflow hub (us/msg)" in text
    for mode in MODES:  # the load generator's CPU is known for every successful calcstorm run
        cell = results["calcstorm"]["cells"][mode]["sampflow"]
        assert len(cell["client_cpu_us"]) == len(cell["rates"])
        assert all(0 < us < 1e6 for us in cell["client_cpu_us"])
    # every Python client reached every hub and every scale size ran (or its failure is written)
    for client in ("sampflow", "pyvo"):
        for hub in ("sampflow", "pyvo"):
            cell = results["clients"]["cells"][client][hub]
            assert cell["runs"] or cell["failures"]
    for hub in ("sampflow", "pyvo"):
        for n in ("1", "5"):
            assert n in results["scale"]["cells"][hub]
    assert "file_median_ms" in results["engine"] or "failure" in results["engine"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "fanout.png").stat().st_size > 0
    assert "fanout.png" in text
