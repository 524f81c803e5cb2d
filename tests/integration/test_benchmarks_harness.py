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

from benchmarks.calcstorm import Cell
from benchmarks.pyclients import percentile

REPO = Path(__file__).resolve().parents[2]


def test_failure_cells_say_what_happened():
    cell = Cell(rates=[], failures=["hung: killed at the 30 s limit"])
    assert cell.text() == "hung: killed at the 30 s limit"
    cell = Cell(rates=[100.0, 300.0], failures=["hung: killed at the 30 s limit"])
    assert cell.text() == "200 hung: killed at the 30 s limit (1/3 runs)"


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
        [sys.executable, "-m", "benchmarks", "--tiny", "--hubs", "sampflow,pyvo", "--out", str(out)],
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
