"""``sampflow run`` hears a hub that shuts down (SAMP 1.3 hub administrative MTypes).

A hub that stops cleanly tells its clients ``samp.hub.event.shutdown`` first; the engine must
be subscribed to it (and to ``samp.hub.disconnect``), so it notices at once and says why,
instead of finding out at its next heartbeat ping.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from samphub import SampflowHub

ROOT = Path(__file__).resolve().parents[2]
REBROADCAST = ROOT / "rules" / "rebroadcast-selections.yaml"

pytestmark = pytest.mark.timeout(120)


async def test_the_engine_hears_the_hub_announce_its_shutdown(
        hub_process: SampflowHub, engines: Any) -> None:
    engine = engines([REBROADCAST], "--lockfile", str(hub_process.lockfile), "--hub", "connect")
    await engine.await_connected()
    assert hub_process.stop() == 0
    deadline = time.monotonic() + 30
    while (m := re.search(r"the SAMP hub went away \((.*)\)", engine.log())) is None:
        assert time.monotonic() < deadline, engine.log()[-3000:]
        await asyncio.sleep(0.1)
    assert m.group(1) == "it announced shutdown or disconnected us", engine.log()[-3000:]
