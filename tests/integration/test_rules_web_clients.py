"""Rules tell Web Profile clients from the others (issue: the SAMP Web Profile).

A real sampflow hub with its Web Profile, a real engine (`Engine` on `AsyncSAMPClient`), a
web page speaking XML-RPC with an ``Origin`` header, and a Standard Profile client:

- ``sender.profile`` is ``"web"`` for the page's message and ``"standard"`` for the other;
- an MType that can make a rule run a program is declared not harmless, so the hub refuses
  it from the page, while the Standard Profile client's message runs the program.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from test_web_profile import PAGE, WebClient, msg

from sampflow.rules.engine import Engine
from sampflow.rules.loader import load
from sampflow.rules.trace import FiringRecord
from sampflow.samp.client.aio import AsyncSAMPClient
from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.hub.web import attach_web_profile
from sampflow.samp.hub.web_consent import AllowList
from sampflow.samp.xmlrpc import Fault

RULES = """
rules:
  - name: who
    on: {mtype: coord.pointAt.sky}
    do: [{log: "{{ sender.profile }}"}]
  - name: run
    on: {mtype: table.load.votable}
    do:
      - exec: [PYTHON, -c, "open(r'OUT', 'w').write('ran')"]
"""


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[AsyncHub, Engine, list[FiringRecord]]]:
    hub = AsyncHub(lockfile=tmp_path / "lock")
    await hub.start()
    await attach_web_profile(hub, port=0, consent=AllowList([PAGE]))
    records: list[FiringRecord] = []
    text = RULES.replace("PYTHON", sys.executable).replace("OUT", str(tmp_path / "out"))
    engine = Engine(load(text, allow_exec=True), allow_exec=True, on_firing=records.append)
    client = AsyncSAMPClient("engine")
    await engine.start()
    await client.connect(lockfile=str(tmp_path / "lock"))
    await engine.connect(client)
    try:
        yield hub, engine, records
    finally:
        await engine.stop(2)
        await client.disconnect()
        await hub.stop(grace=0.5)


async def _wait(records: list[FiringRecord], count: int) -> None:
    async with asyncio.timeout(20):
        while len(records) < count:
            await asyncio.sleep(0.05)


async def test_rules_see_the_senders_profile(setup, tmp_path: Path) -> None:
    hub, engine, records = setup
    from sampflow.samp.hub.registry import Profile

    web = hub.profile_for(Profile.WEB)
    assert web is not None
    engine_id = engine.client.public_id  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        page = await WebClient(session, web.url).register()
        await page("notify", engine_id, msg("coord.pointAt.sky", ra="10", dec="20"))
        await _wait(records, 1)
        # The run rule's MType is declared not harmless: the hub refuses it from the page.
        with pytest.raises(Fault, match="may not send table.load.votable"):
            await page("notify", engine_id, msg("table.load.votable", url="http://x/t.vot"))
    desk = AsyncSAMPClient("desk", callable=False)
    await desk.connect(lockfile=str(tmp_path / "lock"))
    try:
        await desk.notify(engine_id, msg("coord.pointAt.sky", ra="1", dec="2"))
        await desk.notify(engine_id, msg("table.load.votable", url="http://x/t.vot"))
        await _wait(records, 3)
    finally:
        await desk.disconnect()
    await engine.wait_idle()
    said = [s["message"] for r in records if r.rule == "who" for s in r.steps]
    assert said == ["web", "standard"]
    assert (tmp_path / "out").read_text() == "ran"
