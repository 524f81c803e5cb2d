"""A sampjs page in headless Chromium against ``sampflow hub`` (SAMP 1.3 section 5).

The page (``tests/e2e/web/page.html``) uses sampjs from the npm registry, unmodified, and is
served from ``http://127.0.0.1:<ephemeral>``; the hub runs as ``sampflow hub --web-port 0
--web-allow <that origin>`` with stdin not a terminal. The Standard Profile side is sampflow's
`AsyncSAMPClient` (``samphub.Recorder``). Chromium is Debian's, driven by playwright-core
(``tests/e2e/web/drive.mjs``); npm installs ``tests/e2e/web/package.json`` when needed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "web"))

import peers
from browser import PageServer, ensure_node_modules, missing_tools, run_page, web_port_of
from samphub import Recorder, SampflowHub

pytestmark = [pytest.mark.peer, pytest.mark.timeout(180)]


@pytest.fixture(scope="session")
def browser_tools(peer_policy) -> None:  # type: ignore[no-untyped-def]
    missing = missing_tools()
    if missing:
        peer_policy.unavailable(peers.PeerUnavailable(
            f"browser tests need {', '.join(missing)} (apt-get install chromium nodejs npm)"))
    ensure_node_modules()


@pytest.fixture
async def page_server(browser_tools: None) -> AsyncIterator[PageServer]:
    server = await PageServer().start()
    yield server
    await server.close()


@pytest.fixture
async def other_server(browser_tools: None) -> AsyncIterator[PageServer]:
    server = await PageServer().start()
    yield server
    await server.close()


@pytest.fixture
def web_hub(tmp_path: Path, page_server: PageServer) -> Iterator[SampflowHub]:
    hub = SampflowHub(tmp_path / "lock", log_dir=tmp_path,
                      args=["--web-port", "0", "--web-allow", page_server.origin])
    hub.start()
    try:
        yield hub
    finally:
        hub.stop(check_lockfile=False)


async def wait_subscribed(desktop: Recorder, mtype: str, timeout: float = 60.0) -> str:
    """The id of the first other client subscribed to `mtype` (the page, once it is ready)."""
    async with asyncio.timeout(timeout):
        while True:
            subscribed = await desktop.client.get_subscribed_clients(mtype)
            if subscribed:
                return next(iter(subscribed))
            await asyncio.sleep(0.1)


async def test_sampjs_page_registers_receives_and_sends(
        web_hub: SampflowHub, page_server: PageServer, tmp_path: Path) -> None:
    table = tmp_path / "t.vot"
    table.write_text("<VOTABLE/>")
    desktop = await Recorder("desktop", {"table.load.votable": {}}).connect(web_hub.lockfile)
    try:
        port = web_port_of(web_hub)
        browser = asyncio.ensure_future(run_page(page_server.url(hub=port, name="sampjs-page")))
        page_id = await wait_subscribed(desktop, "sampflow.test.hello")
        meta = await desktop.client.get_metadata(page_id)
        assert meta["samp.name"] == "sampjs-page"
        # Standard Profile -> web page, through pullCallbacks.
        await desktop.client.notify(page_id, {"samp.mtype": "sampflow.test.hello",
                                              "samp.params": {"url": table.as_uri()}})
        # Web page -> Standard Profile: table.load.votable.
        (got,) = await desktop.wait_messages("table.load.votable", timeout=60)
        assert got["samp.params"] == {"url": table.as_uri(), "name": "from the page"}
        assert desktop.received[-1][1] == page_id
        result, log = await browser
        assert result is not None, log
        assert result["registered"] and result["sent"] and result["error"] is None, (result, log)
        assert result["selfId"] == page_id
        assert result["hello"] == {"url": table.as_uri()}
    finally:
        await desktop.close()
    assert web_hub.running()


async def test_page_from_other_origin_is_refused(
        web_hub: SampflowHub, other_server: PageServer) -> None:
    desktop = await Recorder("desktop").connect(web_hub.lockfile)
    try:
        before = set(await desktop.client.get_registered_clients())
        result, log = await run_page(other_server.url(hub=web_port_of(web_hub)), timeout=60)
        assert result is not None, log
        assert not result["registered"], result
        assert "refused" in (result["error"] or ""), result
        # No client registered, and the hub keeps serving.
        assert set(await desktop.client.get_registered_clients()) == before
        await desktop.client.ping()
    finally:
        await desktop.close()
    assert web_hub.running()
    assert "not on the allow-list" in web_hub.log_tail(20000)


