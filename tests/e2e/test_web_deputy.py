"""The confused deputy of issue 9 item 6, end to end: a web page must not read local files
by getting a relay to repeat its URLs.

Everything is real and separate: ``sampflow hub`` with its Web Profile (``--web-allow`` the
page's origin), ``sampflow run rules/rebroadcast-selections.yaml`` unchanged, a web page
speaking XML-RPC over HTTP with an ``Origin`` header as a browser does, and Standard Profile
clients (`samphub.Recorder`). The page calls itself ``topcat``, sends
``table.select.rowList`` with the URL of a private file, and then asks the hub's URL
translator (SAMP 1.3 section 5.4.3) for that URL:

- the rule's ``from: topcat`` does not match a web page (no ``profile: web``), so the engine
  does not pass the message on;
- an engine whose rule does say ``profile: web`` passes it on, and a Standard Profile client
  repeating it by hand mentions it too: the URL still is not translatable, because a web
  client mentioned it first;
- a file a desktop client offers first is served (the translator works in this set-up).

The same attack is then made by a real page: sampjs (unmodified) in headless Chromium
(``tests/e2e/web/deputy.html``, driven as in ``test_sampjs.py``), reading through
``translateUrl`` with ``fetch``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "web"))

import peers
from browser import PageServer, ensure_node_modules, missing_tools, run_page, web_port_of
from samphub import Recorder, SampflowHub, running_hub

from sampflow.samp.xmlrpc import dumps_request, loads_response

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
PAGE = "http://localhost:8642"
SELECT = "table.select.rowList"

WEB_RELAY = """\
client: {name: web-relay}
rules:
  - name: relay the pages' selections too
    on: {mtype: table.select.rowList, from: topcat, profile: web}
    do: [{forward: {}}]
"""


class Page:
    """A web page's SAMP calls: XML-RPC POSTs to the Web Profile carrying ``Origin``."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session, self.url = session, f"http://127.0.0.1:{port}/"
        self.key = self.id = self.translator = ""

    async def call(self, method: str, *params: Any) -> Any:
        async with self.session.post(self.url, data=dumps_request(f"samp.webhub.{method}", params),
                                     headers={"Origin": PAGE, "Content-Type": "text/xml"}) as r:
            assert r.status == 200, await r.text()
            return loads_response(await r.read())

    async def register(self, name: str) -> Page:
        reg = await self.call("register", {"samp.name": name})
        self.key, self.id = reg["samp.private-key"], reg["samp.self-id"]
        self.translator = reg["samp.url-translator"]
        await self.call("declareMetadata", self.key, {"samp.name": name})
        return self

    async def __call__(self, method: str, *params: Any) -> Any:
        return await self.call(method, self.key, *params)

    async def fetch(self, url: str) -> tuple[int, str]:
        async with self.session.get(self.translator + url, headers={"Origin": PAGE}) as r:
            return r.status, await r.text()


@pytest.fixture
def web_hub(tmp_path: Path) -> Iterator[SampflowHub]:
    with running_hub(tmp_path / "hub" / "lock", log_dir=tmp_path / "hub",
                     args=["--web-port", "0", "--web-allow", PAGE], check_lockfile=False) as hub:
        yield hub


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _subscribed(client: Recorder, engine_id: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while SELECT not in await client.client.get_subscriptions(engine_id):
            await asyncio.sleep(0.05)


def _selection(url: str) -> dict[str, Any]:
    return {"samp.mtype": SELECT,
            "samp.params": {"table-id": "t1", "url": url, "row-list": ["1", "2"]}}


async def test_web_page_cannot_read_files_through_a_relay(
        tmp_path: Path, web_hub: SampflowHub, engines: Any,
        session: aiohttp.ClientSession) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    offered = tmp_path / "offered.vot"
    offered.write_text("<VOTABLE/>")
    engine = engines([ROOT / "rules" / "rebroadcast-selections.yaml"],
                     "--lockfile", str(web_hub.lockfile), "--hub", "connect")
    relay_file = tmp_path / "web-relay.yaml"
    relay_file.write_text(WEB_RELAY)
    relay = engines([relay_file], "--lockfile", str(web_hub.lockfile), "--hub", "connect")
    engine_id = await engine.await_connected()
    relay_id = await relay.await_connected()
    viewer = await Recorder("viewer", {SELECT: {}}).connect(web_hub.lockfile)
    desk = await Recorder("topcat", {}).connect(web_hub.lockfile)
    try:
        await _subscribed(viewer, engine_id)
        await _subscribed(viewer, relay_id)
        page = await Page(session, web_port_of(web_hub)).register("topcat")

        # 1. The shipped rule file: `from: topcat` is not the page calling itself topcat.
        await page("notify", engine_id, _selection(secret.as_uri()))
        await desk.client.notify(engine_id, _selection(offered.as_uri()))  # the real TOPCAT
        (got,) = await viewer.wait_messages(SELECT, 1, timeout=30)
        assert got["samp.params"]["url"] == offered.as_uri()
        await asyncio.sleep(1.5)  # a forward of the page's message would show up meanwhile
        assert [m["samp.params"]["url"] for m in viewer.messages(SELECT)] == [offered.as_uri()]
        assert await page.fetch(offered.as_uri()) == (200, "<VOTABLE/>")
        assert (await page.fetch(secret.as_uri()))[0] == 403

        # 2. A rule that asks for web senders relays it; a desktop client repeats it by
        # hand: a URL a web client mentioned first stays untranslatable, whoever repeats it.
        await page("notify", relay_id, _selection(secret.as_uri()))
        relayed = await viewer.wait_messages(SELECT, 2, timeout=30)
        assert relayed[-1]["samp.params"]["url"] == secret.as_uri()
        await desk.client.notify(viewer.id, _selection(secret.as_uri()))
        await viewer.wait_messages(SELECT, 3, timeout=30)
        for variant in (secret.as_uri(), "file://" + str(secret), "file:" + str(secret)):
            status, text = await page.fetch(variant)
            assert status == 403 and "private" not in text, (variant, status, text)
        assert "private" not in (await page.fetch("file:///etc/passwd"))[1]
    finally:
        await viewer.close()
        await desk.close()


# -- the same from a real browser page (sampjs in headless Chromium) -------------------------

@pytest.fixture
async def page_server(peer_policy) -> AsyncIterator[PageServer]:  # type: ignore[no-untyped-def]
    missing = missing_tools()
    if missing:
        peer_policy.unavailable(peers.PeerUnavailable(
            f"browser tests need {', '.join(missing)} (apt-get install chromium nodejs npm)"))
    ensure_node_modules()
    server = await PageServer().start()
    yield server
    await server.close()


@pytest.mark.peer
async def test_sampjs_page_cannot_read_files_through_a_relay(
        tmp_path: Path, page_server: PageServer, engines: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    relay_file = tmp_path / "web-relay.yaml"
    relay_file.write_text(WEB_RELAY)
    with SampflowHub(tmp_path / "hub" / "lock", log_dir=tmp_path / "hub",
                     args=["--web-port", "0", "--web-allow", page_server.origin]) as hub:
        engine = engines([ROOT / "rules" / "rebroadcast-selections.yaml"],
                         "--lockfile", str(hub.lockfile), "--hub", "connect")
        relay = engines([relay_file], "--lockfile", str(hub.lockfile), "--hub", "connect")
        engine_id, relay_id = await engine.await_connected(), await relay.await_connected()
        viewer = await Recorder("viewer", {SELECT: {}}).connect(hub.lockfile)
        desk = await Recorder("desk", {}).connect(hub.lockfile)
        try:
            await _subscribed(viewer, engine_id)
            await _subscribed(viewer, relay_id)
            browser = asyncio.ensure_future(run_page(page_server.url(
                "deputy.html", hub=web_port_of(hub), to=f"{engine_id},{relay_id}",
                url=secret.as_uri()), timeout=90))
            # Only the rule that says `profile: web` relays the page's selection.
            (relayed,) = await viewer.wait_messages(SELECT, 1, timeout=90)
            assert relayed["samp.params"]["url"] == secret.as_uri()
            assert viewer.received[0][1] == relay_id
            await asyncio.sleep(1.5)
            assert len(viewer.messages(SELECT)) == 1
            # A desktop client repeats it too; then the page tries to read it.
            await desk.client.notify(viewer.id, _selection(secret.as_uri()))
            await viewer.wait_messages(SELECT, 2)
            async with asyncio.timeout(30):
                while not (pages := await desk.client.get_subscribed_clients(
                        "sampflow.test.fetch")):
                    await asyncio.sleep(0.1)
            await desk.client.notify(next(iter(pages)),
                                     {"samp.mtype": "sampflow.test.fetch", "samp.params": {}})
            result, log = await browser
            assert result is not None, log
            assert result["registered"] and result["sent"] == 2 and result["error"] is None, (
                result, log)
            assert result["status"] == 403 and "private" not in result["body"], result
        finally:
            await viewer.close()
            await desk.close()
