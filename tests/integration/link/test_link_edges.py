"""Federation edge cases over real sockets: secrets, the CLI's refusals, calls in flight when
a hub dies, loopback HTTP data and files that are not served (issue 13)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import samphub
from aiohttp import web
from linkfed import Clients, Federation, NatsServer, names, wait_proxy


async def test_a_hub_with_the_wrong_secret_is_not_federated(
        tmp_path: Path, nats_server: NatsServer, fed: Federation, clients: Clients) -> None:
    await clients.on("B", "insider", {"test.echo": {}})
    a = await clients.on("A", "seer")
    await wait_proxy(a, "insider (proxy@B)")
    with Federation(tmp_path / "rogue", nats_server.url, "R", secret="wrong") as rogue:
        outsider = Clients(rogue)
        try:
            r = await outsider.on("R", "outsider", {"test.echo": {}})
            await asyncio.sleep(3.0)  # three heartbeats: long enough to be seen if accepted
            assert not [n for n in (await names(a)).values() if "proxy@R" in n]
            assert not [n for n in (await names(r)).values() if "(proxy@" in n]
        finally:
            await outsider.close()
        assert "bad signature" in fed["A"].log_tail(1_000_000)


def test_link_refuses_to_start_without_a_secret_or_credentials(
        tmp_path: Path, nats_server: NatsServer) -> None:
    env = {k: v for k, v in samphub.hub_env(tmp_path).items() if k != "SAMPFLOW_LINK_SECRET"}
    done = subprocess.run([*samphub.sampflow_argv(), "link", nats_server.url, "--name", "X",
                           "--lockfile", str(tmp_path / "lock")],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 2, done
    assert "shared secret or NATS credentials" in done.stderr
    assert not (tmp_path / "lock").exists()


async def test_call_in_flight_to_a_hub_that_dies_is_answered_with_an_error(
        fed: Federation, clients: Clients) -> None:
    async def never(sender_id: str, msg_id: str, message: dict) -> None:
        await asyncio.sleep(3600)

    await clients.on("B", "silent", {"test.slow": {}}, respond=never)
    a = await clients.on("A", "waiter")
    proxy = await wait_proxy(a, "silent (proxy@B)")
    call = asyncio.create_task(a.client.call_and_wait(
        proxy, {"samp.mtype": "test.slow", "samp.params": {}}, timeout=60))
    await asyncio.sleep(1.0)
    assert not call.done()
    fed["B"].kill()
    response = await asyncio.wait_for(call, 30)
    assert response["samp.status"] == "samp.error", response


async def test_loopback_http_urls_are_relayed_and_odd_files_left_alone(
        tmp_path: Path, fed: Federation, clients: Clients) -> None:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=b"SIMPLE  = T", content_type="application/fits")

    app = web.Application()
    app.router.add_get("/data/img.fits", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fifo = tmp_path / "pipe.fits"
    os.mkfifo(fifo)
    try:
        b = await clients.on("B", "viewer", {"image.load.fits": {}})
        a = await clients.on("A", "sender")
        proxy = await wait_proxy(a, "viewer (proxy@B)")
        local = f"http://127.0.0.1:{port}/data/img.fits"
        await a.client.notify(proxy, {"samp.mtype": "image.load.fits", "samp.params": {
            "url": local, "list": [fifo.as_uri(), tmp_path.as_uri(), "http://example.org/x"]}})
        (got,) = await b.wait_messages("image.load.fits")
        params = got["samp.params"]
        assert params["url"] != local and params["url"].endswith("/img.fits")
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(params["url"], timeout=10).read())
        assert body == b"SIMPLE  = T"
        # A FIFO and a directory are not regular files; a remote URL needs nothing.
        assert params["list"] == [fifo.as_uri(), tmp_path.as_uri(), "http://example.org/x"]
    finally:
        await runner.cleanup()


async def test_nats_credentials_alone_protect_a_federation(tmp_path: Path) -> None:
    """No shared secret: the NATS server's user and password are the protection; a hub with
    the wrong password never joins, and no password appears in any log."""
    with NatsServer(tmp_path / "nats", args=("--user", "lab", "--pass", "pw-s3cret")) as server:
        good = f"nats://lab:pw-s3cret@127.0.0.1:{server.port}"
        bad = f"nats://lab:wrong@127.0.0.1:{server.port}"
        with Federation(tmp_path, good, "A", "B", secret="") as fed, \
                Federation(tmp_path / "intruder", bad, "X", secret="") as intruder:
            people, strangers = Clients(fed), Clients(intruder)
            try:
                await people.on("B", "b-tool", {"table.load.votable": {}})
                a = await people.on("A", "a-tool")
                await wait_proxy(a, "b-tool (proxy@B)")
                x = await strangers.on("X", "x-tool")
                await asyncio.sleep(3.0)
                assert not [n for n in (await names(a)).values() if "proxy@X" in n]
                assert not [n for n in (await names(x)).values() if "(proxy@" in n]
            finally:
                await people.close()
                await strangers.close()
            logs = fed.logs(1_000_000) + intruder.logs(1_000_000)
            assert "pw-s3cret" not in logs


def test_a_desktop_without_nats_py_still_runs_hubs_and_is_told_what_link_needs(
        tmp_path: Path) -> None:
    """``nats-py`` is optional (``sampflow[link]``): without it the rest of sampflow imports,
    and ``sampflow link`` says what to install."""
    code = ("import sys; sys.modules['nats'] = None\n"
            "import sampflow.samp.link, sampflow.rules.clients, sampflow.samp.hub.server\n"
            "from sampflow.cli import main\n"
            "sys.exit(main(['link', 'nats://127.0.0.1:1', '--name', 'x', '--lockfile', "
            f"{str(tmp_path / 'lock')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=samphub.hub_env(tmp_path), check=False)
    assert done.returncode == 2, done
    assert "pip install 'sampflow[link]'" in done.stderr, done.stderr
    assert not (tmp_path / "lock").exists()


async def test_a_message_signed_for_one_hub_and_replayed_to_another_is_dropped(
        fed: Federation, clients: Clients) -> None:
    import nats

    b = await clients.on("B", "target-b", {"coord.pointAt.sky": {}})
    c = await clients.on("C", "target-c", {"coord.pointAt.sky": {}})
    a = await clients.on("A", "sender")
    to_b = await wait_proxy(a, "target-b (proxy@B)")
    await wait_proxy(c, "sender (proxy@A)")
    server = fed["A"].command[1]
    snoop = await nats.connect(server)
    captured: asyncio.Queue[bytes] = asyncio.Queue()

    async def keep(msg: Any) -> None:
        await captured.put(msg.data)

    try:
        await snoop.subscribe("sampflow.link.to.B", cb=keep)
        await snoop.flush()
        await a.client.notify(to_b, {"samp.mtype": "coord.pointAt.sky",
                                     "samp.params": {"ra": "1", "dec": "2"}})
        payload = await asyncio.wait_for(captured.get(), 20)
        await b.wait_messages("coord.pointAt.sky")
        await snoop.publish("sampflow.link.to.C", payload)  # signed by A, meant for B
        await snoop.flush()
        log = ""
        async with asyncio.timeout(20):
            while "addressed to hub 'B'" not in log:
                await asyncio.sleep(0.1)
                log = fed["C"].log_tail(1_000_000)
        assert c.messages("coord.pointAt.sky") == []
    finally:
        await snoop.close()
