"""The Web Profile's URL translator over real sockets (issue 9 item 7; SAMP 1.3 section 5.4.3).

A desktop client (`samphub.Recorder`) offers ``file:`` URLs by sending them to a web page (raw
XML-RPC with an ``Origin`` header); the page then asks the translator for them. What is
opened must be exactly what was offered (split, then decoded once), and only regular files
reached without symbolic links are ever opened.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from samphub import Recorder
from test_web_profile import PAGE, WebClient, msg
from yarl import URL

from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.hub.web import attach_web_profile
from sampflow.samp.hub.web_consent import AllowList


class Page:
    """A registered web page that is sent URLs by the desktop and fetches them."""

    def __init__(self, client: WebClient, desktop: Recorder) -> None:
        self.client, self.desktop = client, desktop

    async def offer(self, url: str) -> None:
        """The desktop client sends the page a table at `url` (the page pulls it)."""
        await self.desktop.client.notify(self.client.id, msg("table.load.votable", url=url))
        (cb,) = await self.client("pullCallbacks", "10")
        assert cb["samp.params"][1]["samp.params"]["url"] == url

    async def fetch(self, url: str) -> tuple[int, bytes, aiohttp.ClientResponse]:
        """GET translator + `url`, sent byte for byte as given."""
        target = URL(self.client.translator + url, encoded=True)
        async with self.client.session.get(target, headers={"Origin": PAGE}) as r:
            return r.status, await r.read(), r


@pytest.fixture
async def page(hub: AsyncHub) -> AsyncIterator[Page]:
    web = await attach_web_profile(hub, port=0, consent=AllowList([PAGE]))
    desk = await Recorder("desktop").connect(hub.lockfile)
    async with aiohttp.ClientSession() as session:
        client = await WebClient(session, web.url).register()
        await client("declareSubscriptions", {"table.load.votable": {}})
        await client("allowReverseCallbacks", "1")
        yield Page(client, desk)
    await desk.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    real = tmp_path.resolve()
    assert os.path.realpath(real) == str(real)
    return real


async def test_encoded_question_mark_does_not_open_another_file(page: Page,
                                                                folder: Path) -> None:
    (folder / "secret").write_text("private")
    table = folder / "secret?.vot"
    table.write_text("<VOTABLE/>")
    offered = table.as_uri()
    assert offered.endswith("/secret%3F.vot")
    await page.offer(offered)
    status, body, _ = await page.fetch(offered)
    assert (status, body) == (200, b"<VOTABLE/>")
    # The same URL decoded before splitting names .../secret: refused, however it is sent.
    decoded = "file://" + str(table)
    for asked in (decoded, quote(decoded, safe="")):
        status, body, _ = await page.fetch(asked)
        assert status == 403 and b"private" not in body, (asked, status, body)
    # The page's encodeURIComponent of the offered URL is the offered file.
    status, body, _ = await page.fetch(quote(offered, safe=""))
    assert (status, body) == (200, b"<VOTABLE/>")


async def test_symbolic_links_are_refused(page: Page, folder: Path) -> None:
    secret = folder / "secret.txt"
    secret.write_text("private")
    link = folder / "table.vot"
    link.symlink_to(secret)
    (folder / "real").mkdir()
    (folder / "real" / "t.vot").write_text("<VOTABLE/>")
    (folder / "via").symlink_to(folder / "real", target_is_directory=True)
    for path in (link, folder / "via" / "t.vot"):
        await page.offer(path.as_uri())
        status, body, _ = await page.fetch(path.as_uri())
        assert status == 403 and b"symbolic link" in body, (path, status, body)
    # The real file, offered by its own path, is served.
    await page.offer((folder / "real" / "t.vot").as_uri())
    assert (await page.fetch((folder / "real" / "t.vot").as_uri()))[:2] == (200, b"<VOTABLE/>")


async def test_only_regular_files_are_opened(page: Page, folder: Path) -> None:
    fifo = folder / "x.fits"
    os.mkfifo(fifo)
    (folder / "dir.vot").mkdir()
    for url in (fifo.as_uri(), (folder / "dir.vot").as_uri(), "file:///dev/zero"):
        await page.offer(url)
        status, body, _ = await asyncio.wait_for(page.fetch(url), 10)
        assert status == 403 and b"only regular files" in body, (url, status, body)
    # Nobody holds the FIFO open for reading: the translator never opened it.
    with pytest.raises(OSError) as info:
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    assert info.value.errno == errno.ENXIO
    missing = (folder / "gone.vot").as_uri()
    await page.offer(missing)
    assert (await page.fetch(missing))[0] == 404
    # The page's own traffic was never held up.
    assert await page.client.call("ping") == ""


async def test_large_file_is_streamed_whole(page: Page, folder: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = folder / "big.fits"
    path.write_bytes(data)
    await page.offer(path.as_uri())
    status, body, response = await page.fetch(path.as_uri())
    assert status == 200 and body == data
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert response.content_type == "image/fits"


async def test_urls_in_a_pages_metadata_stay_untranslatable(page: Page, folder: Path) -> None:
    """The hub relays a page's metadata to desktop clients (``samp.hub.event.metadata``) and
    a desktop client may repeat it: URLs the page declared first are not translatable."""
    secret = folder / "icon.png"
    secret.write_text("private")
    await page.client("declareMetadata", {"samp.name": "page",
                                          "samp.icon.url": secret.as_uri()})
    meta = await page.desktop.client.get_metadata(page.client.id)
    await page.offer(meta["samp.icon.url"])
    status, body, _ = await page.fetch(secret.as_uri())
    assert status == 403 and body != b"private"


async def test_http_urls_fetch_exactly_what_was_offered(page: Page) -> None:
    from aiohttp import web as aioweb

    seen: list[str] = []

    async def serve(request: aioweb.Request) -> aioweb.Response:
        seen.append(request.raw_path)
        return aioweb.Response(text=f"you asked for {request.raw_path}")

    app = aioweb.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        offered = f"http://127.0.0.1:{port}/t%3F.vot"
        await page.offer(offered)
        assert (await page.fetch(f"http://127.0.0.1:{port}/t?.vot"))[0] == 403
        assert (await page.fetch(f"http://127.0.0.1:{port}/t"))[0] == 403
        status, body, _ = await page.fetch(f"HTTP://127.0.0.1:{port}/t%3f.vot#x")
        assert (status, body) == (200, b"you asked for /t%3F.vot")
        assert seen == ["/t%3F.vot"]
    finally:
        await runner.cleanup()
