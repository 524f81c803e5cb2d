"""JSAMP's conformance suite and load test against ``sampflow hub`` (issue 2, items 1 and 2).

The hub is the real ``sampflow hub`` command (`samphub.SampflowHub`), one per test, on a
temporary lockfile; the ``samp_hub`` fixture of ``tests/conftest.py`` is overridden so that
``run_jsamp`` points JSAMP's tools at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import samphub

pytestmark = pytest.mark.peer

#: Lines the JVM itself prints on stderr; anything else there is an error.
JVM_NOISE = ("Picked up JAVA_TOOL_OPTIONS", "Picked up _JAVA_OPTIONS", "Picked up JDK_JAVA_OPTIONS")


@pytest.fixture
def samp_hub(tmp_path: Path) -> Iterator[samphub.SampflowHub]:
    """``sampflow hub`` on a temporary lockfile, stopped by SIGTERM (lockfile checked)."""
    with samphub.running_hub(tmp_path / "samp.lock", log_dir=tmp_path / "hub") as hub:
        yield hub
    assert "Traceback" not in hub.log_tail(200_000), hub.log_tail()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(JVM_NOISE)]


def test_hubtester_passes(run_jsamp, samp_hub: samphub.SampflowHub) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_jsamp("hubtester", hub=samp_hub, timeout=240)
    assert code == 0, (f"hubtester failed ({code}):\n{out[-4000:]}\n{err[-4000:]}\n"
                       f"hub log:\n{samp_hub.log_tail()}")
    assert samp_hub.running()


@pytest.mark.parametrize("mode", ["sync", "async", "notify"])
def test_calcstorm_completes_without_errors(run_jsamp, samp_hub: samphub.SampflowHub,  # type: ignore[no-untyped-def]
                                            mode: str) -> None:
    code, out, err = run_jsamp("calcstorm", "-nclient", "10", "-nquery", "100", "-mode", mode,
                               hub=samp_hub, timeout=280)
    detail = f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}\nhub log:\n{samp_hub.log_tail()}"
    assert code == 0, detail
    assert error_lines(err) == [], detail
    assert "Elapsed time" in out, detail
    assert "Exception" not in out and "Error" not in out, detail
    assert samp_hub.running()
