"""A client killed without unregistering (issue 2, item 6).

The client is a real separate process (sampflow's `AsyncSAMPClient`), killed with SIGKILL so
that it never unregisters. The next delivery to it must make the hub notice, unregister it,
tell the others (``samp.hub.event.unregister``) and answer a ``callAndWait`` to it with an
error instead of hanging. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samphub import Recorder, msg

from sampflow.samp.errors import SAMPHubError
from sampflow.samp.hub.server import AsyncHub

CLIENT = r"""
import asyncio, sys
from sampflow.samp.client.aio import AsyncSAMPClient

async def main():
    client = AsyncSAMPClient("doomed")
    async def on_message(kind, sender_id, msg_id, message):
        return {"samp.status": "samp.ok", "samp.result": {}}
    client.on_message = on_message
    await client.connect(lockfile=sys.argv[1])
    await client.declare_subscriptions({"samp.app.ping": {}, "test.*": {},
                                        "samp.hub.event.*": {}})
    print(client.public_id, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def hub(start_hub: Any) -> AsyncHub:
    return await start_hub(client_timeout=60)


@pytest.fixture
def doomed_process(hub: AsyncHub, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if k != "SAMP_HUB"}
    env["HOME"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, str(hub.lockfile)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


async def read_id(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    failed = proc.stderr.read() if proc.poll() is not None else ""
    assert line.strip(), f"client process failed: {failed}"
    return line.strip()


@pytest.mark.parametrize("first_delivery", ["callAndWait", "notify", "notifyAll", "call"])
async def test_killed_client_is_noticed_unregistered_and_announced(
        hub: AsyncHub, doomed_process: subprocess.Popen[str], first_delivery: str) -> None:
    watcher = await Recorder("watcher", {"samp.hub.event.unregister": {}}).connect(hub.lockfile)
    caller = await Recorder("caller").connect(hub.lockfile)
    try:
        doomed = await read_id(doomed_process)
        # It works while alive (and the hub now holds a kept-alive connection to it).
        response = await caller.client.call_and_wait(doomed, msg("samp.app.ping"), 30)
        assert response["samp.status"] == "samp.ok"
        # (A call answered, not a notification: a notification still on its way when the
        # process dies would be the first delivery to fail, and this test picks that.)
        response = await caller.client.call_and_wait(doomed, msg("test.hello"), 30)
        assert response["samp.status"] == "samp.ok"

        os.kill(doomed_process.pid, signal.SIGKILL)
        await asyncio.to_thread(doomed_process.wait, 10)

        if first_delivery == "callAndWait":
            try:
                response = await asyncio.wait_for(
                    caller.client.call_and_wait(doomed, msg("test.work"), 120), 60)
            except SAMPHubError:
                pass  # a fault is an acceptable answer too; hanging is not
            else:
                assert response["samp.status"] == "samp.error", response
        elif first_delivery == "notify":
            await caller.client.notify(doomed, msg("test.work"))
        elif first_delivery == "notifyAll":
            assert doomed in await caller.client.notify_all(msg("test.work"))
        else:
            await caller.client.call(doomed, "tag", msg("test.work"))

        def announced(w: Recorder) -> bool:
            return any(m["samp.params"] == {"id": doomed}
                       for m in w.messages("samp.hub.event.unregister"))

        await watcher.wait_for(announced, timeout=60)
        assert doomed not in await caller.client.get_registered_clients()
        if first_delivery == "call":
            [(responder, tag, response)] = await caller.wait_for(lambda c: c.responses, 30)
            assert (responder, tag, response["samp.status"]) == (doomed, "tag", "samp.error")
        # Messages to it are refused now, at once.
        with pytest.raises(SAMPHubError):
            await asyncio.wait_for(caller.client.call_and_wait(doomed, msg("test.work"), 120), 30)
        await caller.client.ping()
    finally:
        await watcher.close()
        await caller.close()


async def test_pending_call_and_wait_to_a_client_killed_mid_call_gets_an_error(
        hub: AsyncHub, doomed_process: subprocess.Popen[str], tmp_path: Path) -> None:
    """The call was delivered, then the recipient died before replying: callers must not
    hang until their timeout once the hub learns the client is gone."""
    watcher = await Recorder("watcher", {"samp.hub.event.unregister": {},
                                         "test.*": {}}).connect(hub.lockfile)
    caller = await Recorder("caller").connect(hub.lockfile)
    try:
        doomed = await read_id(doomed_process)
        # Block its replies: stop the process (SIGSTOP), deliver a call, then kill it.
        os.kill(doomed_process.pid, signal.SIGSTOP)
        waiting = asyncio.ensure_future(
            caller.client.call_and_wait(doomed, msg("test.work"), 600))
        await asyncio.sleep(0.5)  # let the hub start delivering (not a speed assertion)
        os.kill(doomed_process.pid, signal.SIGKILL)
        await asyncio.to_thread(doomed_process.wait, 10)
        try:
            response = await asyncio.wait_for(waiting, 90)
        except SAMPHubError:
            pass
        else:
            assert response["samp.status"] == "samp.error", response
        # Any delivery to the dead client makes the hub notice and announce it.
        try:
            await caller.client.notify(doomed, msg("test.more"))
        except SAMPHubError:
            pass  # already removed
        await watcher.wait_for(lambda w: any(m["samp.params"] == {"id": doomed}
                                             for m in w.messages("samp.hub.event.unregister")),
                               timeout=60)
    finally:
        await watcher.close()
        await caller.close()
