"""Three desktops in separate network namespaces (issue 13): nothing is shared but a virtual
switch, so a URL that only means something on one desktop cannot be reached from another.

NATS listens on the switch; hubs A, B and C (``sampflow link``) each run in their own
namespace, and so do the SAMP clients (small scripts started with ``ip netns exec``). A
client on A sends a ``file://`` VOTable URL to a client on B: B receives an URL on A's address
(not loopback) and reads the table through it. Then B is killed and its proxies leave A and C
within 5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import samphub
from linkfed import SECRET, NatsServer, NetLab, start_in_namespace

RECEIVER = r"""
import asyncio, json, sys, urllib.request
from sampflow.samp.client.aio import AsyncSAMPClient

async def main():
    client = AsyncSAMPClient("receiver")
    got = asyncio.get_running_loop().create_future()
    async def on_message(kind, sender, msg_id, message):
        if not got.done():
            got.set_result(message)
    client.on_message = on_message
    await client.connect(lockfile=sys.argv[1])
    await client.declare_subscriptions({"table.load.votable": {}})
    print("ready", flush=True)
    message = await asyncio.wait_for(got, 60)
    url = message["samp.params"]["url"]
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
    print(json.dumps({"url": url, "body": body.decode()}), flush=True)
    await asyncio.Event().wait()  # stay registered until killed with the hub

asyncio.run(main())
"""

SENDER = r"""
import asyncio, sys
from sampflow.samp.client.aio import AsyncSAMPClient

async def names(client):
    return {cid: (await client.get_metadata(cid)).get("samp.name", "")
            for cid in await client.get_registered_clients()}

async def main():
    client = AsyncSAMPClient("sender", callable=False)
    await client.connect(lockfile=sys.argv[1])
    async with asyncio.timeout(60):
        while not (ids := [c for c, n in (await names(client)).items()
                           if n == "receiver (proxy@B)"]):
            await asyncio.sleep(0.1)
    await client.notify(ids[0], {"samp.mtype": "table.load.votable",
                                 "samp.params": {"url": sys.argv[2]}})
    await client.disconnect()

asyncio.run(main())
"""

WATCH_GONE = r"""
import asyncio, sys
from sampflow.samp.client.aio import AsyncSAMPClient
from sampflow.samp.errors import SAMPProxyError

async def name(client, cid):
    try:
        return (await client.get_metadata(cid)).get("samp.name", "")
    except SAMPProxyError:  # it left between the two calls
        return ""

async def main():
    client = AsyncSAMPClient("watcher", callable=False)
    await client.connect(lockfile=sys.argv[1])
    async with asyncio.timeout(30):
        while True:
            found = [cid for cid in await client.get_registered_clients()
                     if (await name(client, cid)).endswith("(proxy@B)")]
            if sys.argv[2] == "present" and found or sys.argv[2] == "gone" and not found:
                break
            await asyncio.sleep(0.1)
    await client.disconnect()

asyncio.run(main())
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[NetLab, dict[str, samphub.SampflowHub]]]:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs as root)")
    with NetLab(["A", "B", "C"]) as net, \
            NatsServer(tmp_path / "nats", addr=NetLab.SWITCH_IP,
                       prefix=net.exec_prefix()) as nats:
        hubs: dict[str, samphub.SampflowHub] = {}
        try:
            for name in ("A", "B", "C"):
                folder = tmp_path / f"hub-{name}"
                hubs[name] = start_in_namespace(samphub.SampflowHub(
                    folder / "lockfile", log_dir=folder, verbose=True,
                    command=["link", nats.url, "--name", name],
                    env={"SAMPFLOW_LINK_SECRET": SECRET}, prefix=net.exec_prefix(name)))
            yield net, hubs
        finally:
            for hub in hubs.values():
                if hub.running():
                    hub.stop(check_lockfile=False)


def in_ns(net: NetLab, name: str, script: str, *args: str, tmp_path: Path,
          **popen: object) -> subprocess.Popen[str]:
    env = samphub.hub_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path.cwd()), env.get("PYTHONPATH"))
                                        if p)
    return subprocess.Popen([*net.exec_prefix(name), sys.executable, "-c", script, *args],
                            env=env, text=True, start_new_session=True, **popen)  # type: ignore[call-overload]


def test_data_and_departures_across_network_namespaces(
        tmp_path: Path, lab: tuple[NetLab, dict[str, samphub.SampflowHub]]) -> None:
    net, hubs = lab
    table = tmp_path / "a-desk" / "lab.vot"
    table.parent.mkdir()
    table.write_text("<VOTABLE version='1.4'/>")
    receiver = in_ns(net, "B", RECEIVER, str(hubs["B"].lockfile), tmp_path=tmp_path,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready", receiver.stderr
        sender = in_ns(net, "A", SENDER, str(hubs["A"].lockfile), table.as_uri(),
                       tmp_path=tmp_path, stderr=subprocess.PIPE)
        assert sender.wait(90) == 0, sender.stderr.read() if sender.stderr else ""
        line = receiver.stdout.readline()
        if not line:
            receiver.wait(10)
            pytest.fail(f"receiver: {receiver.stderr.read() if receiver.stderr else ''}\n"
                        f"{hubs['A'].log_tail(100_000)}\n{hubs['B'].log_tail(100_000)}")
        got = json.loads(line)
        assert got["body"] == "<VOTABLE version='1.4'/>"
        # Served by A's link on A's own address: the only way it could have been read on B.
        assert got["url"].startswith(f"http://{net.ips['A']}:"), got
        for name in ("A", "C"):
            watch = in_ns(net, name, WATCH_GONE, str(hubs[name].lockfile), "present",
                          tmp_path=tmp_path)
            assert watch.wait(60) == 0
        hubs["B"].kill()
        killed = time.monotonic()
        for name in ("A", "C"):
            watch = in_ns(net, name, WATCH_GONE, str(hubs[name].lockfile), "gone",
                          tmp_path=tmp_path)
            assert watch.wait(60) == 0, hubs[name].log_tail()
        assert time.monotonic() - killed < 5.0 + 1.0  # 5 s, plus two watcher start-ups
    finally:
        if receiver.poll() is None:
            os.killpg(receiver.pid, 9)
        receiver.wait(10)
