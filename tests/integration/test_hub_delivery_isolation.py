"""Values SAMP does not have, failed deliveries and clients that never answer (issue 9,
items 2 and 3).

Every request goes over real loopback HTTP to an in-process `AsyncHub`. What must hold:

- a request carrying a value the hub could not relay (``<nil/>``, an ``<i8>`` beyond 2^31,
  extension types) is refused with a fault at parse time, and nothing of it reaches the
  hub's state; so is any non-SAMP type (``<int>``, ``<double>``, ...) on a hub with
  ``value_types="samp"`` (SAMP 1.3 section 3.3), while a default hub relays those as sent,
  as astropy's does;
- a delivery that fails, for any reason, fails alone: the lane goes on with the next
  message, a pending call gets a ``samp.error`` response at once, hub events still reach
  the other clients, ``getMetadata`` answers, ``sampflow clients`` exits 0;
- a client whose callback accepts connections but never answers fills its lane up to the
  bound; past it the hub unregisters it and tells the others.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import xmlrpc.client
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from samphub import Recorder, post_xmlrpc, sampflow_argv

from sampflow.samp.hub.server import AsyncHub

#: Values no hub could relay as they came: refused by every sampflow hub.
UNRELAYABLE = {
    "nil": "<nil/>",
    "i8-beyond-2^31": "<i8>1099511627776</i8>",
    "int-beyond-2^31": "<int>3000000000</int>",
    "bigdecimal": "<bigdecimal>1.5</bigdecimal>",
    "extension-nil": "<ex:nil xmlns:ex='http://ws.apache.org/xmlrpc/namespaces/extensions'/>",
}
#: XML-RPC types SAMP does not have but astropy's clients send: relayed as sent by default,
#: refused by a hub with ``value_types="samp"``.
NON_SAMP = {
    "int": ("<int>7</int>", 7),
    "i4": ("<i4>7</i4>", 7),
    "double": ("<double>2.5</double>", 2.5),
    "boolean": ("<boolean>1</boolean>", True),
    "base64": ("<base64>eA==</base64>", b"x"),
}
CASES = [pytest.param(x, "relayable", "cannot be relayed", id=f"{k}-relayable")
         for k, x in UNRELAYABLE.items()] + [
         pytest.param(x, "samp", "not a SAMP type", id=f"{k}-samp")
         for k, (x, _) in NON_SAMP.items()]




def raw_call(method: str, key: str, *xml_params: str) -> bytes:
    """A ``methodCall`` written by hand: `key` then parameters given as XML ``<value>``s."""
    params = "".join(f"<param>{p}</param>" for p in
                     (f"<value><string>{key}</string></value>", *xml_params))
    return (f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName>"
            f"<params>{params}</params></methodCall>").encode()


def message_with(xml_value: str, mtype: str = "test.tick") -> str:
    return ("<value><struct><member><name>samp.mtype</name><value><string>"
            f"{mtype}</string></value></member><member><name>samp.params</name><value>"
            f"<struct><member><name>x</name>{f'<value>{xml_value}</value>'}</member>"
            "</struct></value></member></struct></value>")


def tick(n: int) -> dict[str, Any]:
    return {"samp.mtype": "test.tick", "samp.params": {"n": str(n)}}


def run_clients_cli(lockfile: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SAMP_HUB"}
    env["HOME"] = str(home)
    return subprocess.run([*sampflow_argv(), "clients", "--lockfile", lockfile],
                          check=False, capture_output=True, text=True, timeout=60, env=env)


# -- item 2: non-SAMP values are refused at parse time ---------------------------------------

@pytest.mark.parametrize(("xml_value", "value_types", "why"), CASES)
async def test_refused_values_get_a_fault_and_the_hub_serves_on(
        start_hub: Any, session: aiohttp.ClientSession, xml_value: str, value_types: str,
        why: str, tmp_path: Path) -> None:
    hub: AsyncHub = await start_hub(client_timeout=10, value_types=value_types)
    watcher = await Recorder("watcher", {"samp.hub.event.*": {}}).connect(hub.lockfile)
    receiver = await Recorder("receiver", {"test.*": {}}).connect(hub.lockfile)
    sender = await Recorder("sender").connect(hub.lockfile)
    try:
        key = sender.client.private_key
        assert key is not None
        bad = {
            "notify": raw_call("samp.hub.notify", key, f"<value>{receiver.id}</value>",
                               message_with(xml_value)),
            "call": raw_call("samp.hub.call", key, f"<value>{receiver.id}</value>",
                             "<value>t1</value>", message_with(xml_value)),
            "declareMetadata": raw_call(
                "samp.hub.declareMetadata", key,
                "<value><struct><member><name>samp.name</name><value>evil</value></member>"
                f"<member><name>x</name><value>{xml_value}</value></member></struct></value>"),
        }
        for what, body in bad.items():
            status, value = await post_xmlrpc(session, hub.url, body)
            assert status == 200, what
            assert isinstance(value, xmlrpc.client.Fault), (what, value)
            assert why in value.faultString, (what, value.faultString)
            assert "3.3" in value.faultString
        # Nothing of it got in: the receiver had nothing, the sender's metadata is its own.
        await sender.client.notify(receiver.id, tick(1))
        await receiver.wait_for(lambda r: r.messages("test.tick"))
        assert [m["samp.params"] for m in receiver.messages("test.tick")] == [{"n": "1"}]
        assert (await watcher.client.get_metadata(sender.id))["samp.name"] == "sender"
        # Hub events still reach the others.
        late = await Recorder("late").connect(hub.lockfile)
        await watcher.wait_for(lambda w: any(
            m["samp.params"].get("id") == late.id for m in w.messages("samp.hub.event.register")))
        await late.close()
        result = await asyncio.to_thread(run_clients_cli, str(hub.lockfile), tmp_path)
        assert result.returncode == 0, result.stderr
        assert "sender" in result.stdout and "receiver" in result.stdout
    finally:
        for client in (sender, receiver, watcher):
            await client.close()


@pytest.mark.parametrize("case", list(NON_SAMP.values()), ids=list(NON_SAMP))
async def test_xmlrpc_scalars_astropy_sends_are_relayed_as_sent(
        start_hub: Any, session: aiohttp.ClientSession, case: tuple[str, object]) -> None:
    """pyvo's own tests send ``{"parameter2": 1331}`` and expect the int back."""
    xml_value, value = case
    hub: AsyncHub = await start_hub(client_timeout=10)
    receiver = await Recorder("receiver", {"test.*": {}}).connect(hub.lockfile)
    sender = await Recorder("sender").connect(hub.lockfile)
    try:
        key = sender.client.private_key
        assert key is not None
        status, answer = await post_xmlrpc(session, hub.url, raw_call(
            "samp.hub.notify", key, f"<value>{receiver.id}</value>", message_with(xml_value)))
        assert (status, answer) == (200, ""), answer
        [got] = await receiver.wait_for(lambda r: r.messages("test.tick"))
        assert got["samp.params"] == {"x": value}
    finally:
        await sender.close()
        await receiver.close()


# -- item 2: a delivery that fails fails alone -----------------------------------------------

UNENCODABLE = {"none": None, "big-int": 1 << 40, "object": object()}


@pytest.mark.parametrize("bad", list(UNENCODABLE.values()), ids=list(UNENCODABLE))
async def test_a_delivery_that_cannot_be_encoded_fails_alone(
        start_hub: Any, bad: object, tmp_path: Path) -> None:
    """Values no transport accepts any more, put in through the hub core's public verbs (as a
    lenient profile could): the lane, the caller and the other clients must not suffer."""
    hub: AsyncHub = await start_hub(client_timeout=10)
    watcher = await Recorder("watcher", {"samp.hub.event.*": {}}).connect(hub.lockfile)
    receiver = await Recorder("receiver", {"test.*": {}, "samp.hub.event.*": {}}).connect(
        hub.lockfile)
    sender = await Recorder("sender").connect(hub.lockfile)
    try:
        key = sender.client.private_key
        poisoned = {"samp.mtype": "test.tick", "samp.params": {"x": bad}}
        await sender.client.notify(receiver.id, tick(1))
        hub.core.notify(key, receiver.id, poisoned)
        msg_id = hub.core.call(key, receiver.id, "poisoned-call", poisoned)
        hub.service.process_outputs()
        await sender.client.notify(receiver.id, tick(2))
        # The lane went on: the good messages behind the bad ones arrive, in order.
        await receiver.wait_for(lambda r: len(r.messages("test.tick")) == 2)
        assert [m["samp.params"] for m in receiver.messages("test.tick")] == [
            {"n": "1"}, {"n": "2"}]
        # The pending call was answered with an error at once, not at a timeout.
        responses = await sender.wait_for(lambda s: s.responses)
        responder, tag, response = responses[0]
        assert (responder, tag, response["samp.status"]) == (
            receiver.id, "poisoned-call", "samp.error")
        assert "encode" in response["samp.error"]["samp.errortxt"]
        assert msg_id not in hub.core.pending
        # Hub events that cannot be encoded fail for their recipients only ...
        hub.core.declare_metadata(key, {"samp.name": "sender", "x": bad})
        hub.service.process_outputs()
        hub.core.declare_metadata(key, {"samp.name": "sender again"})
        hub.service.process_outputs()
        for client in (watcher, receiver):
            await client.wait_for(lambda c: any(
                m["samp.params"]["metadata"].get("samp.name") == "sender again"
                for m in c.messages("samp.hub.event.metadata")))
        # ... and the hub still answers getMetadata and lists its clients.
        assert (await watcher.client.get_metadata(sender.id))["samp.name"] == "sender again"
        result = await asyncio.to_thread(run_clients_cli, str(hub.lockfile), tmp_path)
        assert result.returncode == 0, result.stderr
    finally:
        for client in (sender, receiver, watcher):
            await client.close()


# -- item 3: a callback that never answers -----------------------------------------------------

@pytest.fixture
async def silent_callback() -> AsyncIterator[tuple[str, list[int]]]:
    """A callback URL whose server accepts connections, reads, and never answers."""
    accepted: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writers.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/", accepted
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("max_queue", [20, 5000])
async def test_a_client_that_never_answers_is_removed_past_the_queue_bound(
        start_hub: Any, session: aiohttp.ClientSession,
        silent_callback: tuple[str, list[int]], max_queue: int) -> None:
    hub: AsyncHub = await start_hub(client_timeout=120, max_queue=max_queue)
    watcher = await Recorder("watcher", {"samp.hub.event.unregister": {}}).connect(
        hub.lockfile)
    sender = await Recorder("sender").connect(hub.lockfile)
    url, accepted = silent_callback
    try:
        status, reg = await post_xmlrpc(session, hub.url, xmlrpc.client.dumps(
            (hub.service.secret,), "samp.hub.register").encode())
        stuck_key, stuck_id = reg["samp.private-key"], reg["samp.self-id"]
        for method, arg in (("samp.hub.setXmlrpcCallback", url),
                            ("samp.hub.declareSubscriptions", {"test.*": {}})):
            status, value = await post_xmlrpc(session, hub.url,
                                       xmlrpc.client.dumps((stuck_key, arg), method).encode())
            assert (status, value) == (200, ""), value
        # A call first: when the client is dropped, its caller must get an error.
        await sender.client.call(stuck_id, "waiting", tick(0))
        payload = {"samp.mtype": "test.tick", "samp.params": {"pad": "x" * 1000}}
        sent = 0
        while stuck_id in await sender.client.get_registered_clients():
            assert sent <= max_queue + 10, "the lane grew past its bound"
            await sender.client.notify(stuck_id, payload)
            sent += 1
        assert sent >= max_queue  # the bound, not something else, removed it
        await watcher.wait_for(lambda w: any(
            m["samp.params"]["id"] == stuck_id
            for m in w.messages("samp.hub.event.unregister")))
        responses = await sender.wait_for(lambda s: s.responses)
        assert responses[0][1] == "waiting"
        assert responses[0][2]["samp.status"] == "samp.error"
        assert accepted, "the callback server was reached"
        # The hub serves on, and the dropped client's queues are gone.
        assert await sender.client.get_metadata(watcher.id)
        assert hub.service.deliverer.queued() == 0
    finally:
        await sender.close()
        await watcher.close()


async def test_a_consented_web_page_cannot_send_non_samp_values(
        start_hub: Any, session: aiohttp.ClientSession) -> None:
    from sampflow.samp.hub.web import attach_web_profile
    from sampflow.samp.hub.web_consent import AllowList

    page_origin = "http://localhost:8123"
    hub: AsyncHub = await start_hub(client_timeout=10)
    web = await attach_web_profile(hub, port=0, consent=AllowList([page_origin]),
                                   idle_timeout=30)
    receiver = await Recorder("receiver", {"test.*": {"x-samp.mostly-harmless": "1"}}).connect(
        hub.lockfile)

    async def web_post(body: bytes) -> Any:
        async with session.post(web.url, data=body, headers={
                "Content-Type": "text/xml", "Origin": page_origin}) as r:
            payload = await r.read()
            assert r.status == 200, payload
        try:
            return xmlrpc.client.loads(payload.decode("utf-8"))[0][0]
        except xmlrpc.client.Fault as fault:
            return fault

    try:
        reg = await web_post(xmlrpc.client.dumps(({"samp.name": "page"},),
                                                 "samp.webhub.register").encode())
        key = reg["samp.private-key"]
        assert await web_post(xmlrpc.client.dumps(
            (key, {"samp.name": "page"}), "samp.webhub.declareMetadata").encode()) == ""
        for xml_value in (UNRELAYABLE["nil"], UNRELAYABLE["i8-beyond-2^31"]):
            for body in (
                raw_call("samp.webhub.notify", key, f"<value>{receiver.id}</value>",
                         message_with(xml_value)),
                raw_call("samp.webhub.declareMetadata", key,
                         "<value><struct><member><name>samp.name</name><value>p</value>"
                         f"</member><member><name>x</name><value>{xml_value}</value>"
                         "</member></struct></value>"),
            ):
                fault = await web_post(body)
                assert isinstance(fault, xmlrpc.client.Fault), fault
                assert "cannot be relayed" in fault.faultString
        assert (await receiver.client.get_metadata(reg["samp.self-id"]))["samp.name"] == "page"
        assert await web_post(xmlrpc.client.dumps(
            (key, receiver.id, tick(1)), "samp.webhub.notify").encode()) == ""
        await receiver.wait_for(lambda r: r.messages("test.tick"))
    finally:
        await receiver.close()
