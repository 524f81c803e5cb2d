"""Bad input over real HTTP gets an XML-RPC fault, and the hub keeps serving (issue 2, item 5).

Every bad request is POSTed raw to a running hub (in-process `AsyncHub` on loopback). Each
must come back as HTTP 200 carrying an XML-RPC ``<fault>``; right after it, ``samp.hub.ping``
must succeed (with and without a private key), and another registered client must still get
the notifications sent to it.
"""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from samphub import Recorder, post_xmlrpc

from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.xmlrpc import MAX_BODY_BYTES, dumps_request

SECRET_TEXT = "top-secret-file-content-7f3a"


@pytest.fixture
async def hub(start_hub: Any) -> AsyncHub:
    return await start_hub(client_timeout=10)


@pytest.fixture
async def pair(hub: AsyncHub) -> AsyncIterator[tuple[Recorder, Recorder]]:
    sender = await Recorder("sender").connect(hub.lockfile)
    receiver = await Recorder("receiver", {"test.tick": {}}).connect(hub.lockfile)
    try:
        yield sender, receiver
    finally:
        await sender.close()
        await receiver.close()




def call_body(method: str, *params: object) -> bytes:
    return xmlrpc.client.dumps(params, method, allow_none=False).encode()


async def assert_fault(session: aiohttp.ClientSession, url: str, body: object,
                       *words: str) -> xmlrpc.client.Fault:
    status, value = await post_xmlrpc(session, url, body)
    assert status == 200
    assert isinstance(value, xmlrpc.client.Fault), f"expected a fault, got {value!r}"
    assert isinstance(value.faultCode, int) and value.faultString
    for word in words:
        assert word.lower() in value.faultString.lower(), value.faultString
    return value


async def assert_still_serving(session: aiohttp.ClientSession, hub: AsyncHub,
                               pair: tuple[Recorder, Recorder], n: int) -> None:
    status, value = await post_xmlrpc(session, hub.url, call_body("samp.hub.ping"))
    assert (status, value) == (200, "")
    sender, receiver = pair
    status, value = await post_xmlrpc(session, hub.url,
                               call_body("samp.hub.ping", sender.client.private_key))
    assert (status, value) == (200, "")
    await sender.client.notify(receiver.id, {"samp.mtype": "test.tick",
                                             "samp.params": {"n": str(n)}})
    got = await receiver.wait_messages("test.tick", n)
    assert got[-1]["samp.params"]["n"] == str(n)


def external_entity_body(target: Path) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE methodCall [\n'
            f'  <!ENTITY xxe SYSTEM "{target.as_uri()}">\n]>\n'
            "<methodCall><methodName>samp.hub.register</methodName><params><param><value>"
            "<string>&xxe;</string></value></param></params></methodCall>").encode()


def billion_laughs_body() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    return ('<?xml version="1.0"?>\n<!DOCTYPE lolz [' + "".join(entities) + "]>\n"
            "<methodCall><methodName>samp.hub.ping</methodName><params><param><value>"
            "<string>&lol9;</string></value></param></params></methodCall>").encode()


def deep_body(depth: int) -> bytes:
    open_, close = "<value><array><data>" * depth, "</data></array></value>" * depth
    return ("<?xml version='1.0'?><methodCall><methodName>samp.hub.ping</methodName><params>"
            f"<param>{open_}<value><string>x</string></value>{close}</param></params>"
            "</methodCall>").encode()


BAD_XML = {
    "not-xml": b"this is not XML at all",
    "empty": b"",
    "truncated": b"<?xml version='1.0'?><methodCall><methodName>samp.hub.ping</methodName>",
    "no-method-name": b"<?xml version='1.0'?><methodCall><params/></methodCall>",
    "bad-int": b"<methodCall><methodName>samp.hub.ping</methodName><params><param><value>"
               b"<int>one</int></value></param></params></methodCall>",
    "wrong-root": b"<?xml version='1.0'?><html><body>hi</body></html>",
    "binary": bytes(range(256)),
    "too-deep": deep_body(500),
    "very-deep": deep_body(100_000),
}


@pytest.mark.parametrize("name", list(BAD_XML))
async def test_malformed_xml_gets_a_fault(hub: AsyncHub, session: aiohttp.ClientSession,
                                          pair: tuple[Recorder, Recorder], name: str) -> None:
    await assert_fault(session, hub.url, BAD_XML[name])
    await assert_still_serving(session, hub, pair, 1)


async def test_xxe_external_entity_is_refused_and_not_read(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder],
        tmp_path: Path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET_TEXT)
    fault = await assert_fault(session, hub.url, external_entity_body(secret_file))
    assert SECRET_TEXT not in fault.faultString
    # Had the entity been expanded, the file's content would have been taken as the secret:
    # make it the hub's real secret to be sure a successful expansion would show.
    hub.service.secret = SECRET_TEXT
    fault = await assert_fault(session, hub.url, external_entity_body(secret_file))
    assert SECRET_TEXT not in fault.faultString
    await assert_still_serving(session, hub, pair, 1)


async def test_billion_laughs_is_refused(hub: AsyncHub, session: aiohttp.ClientSession,
                                         pair: tuple[Recorder, Recorder]) -> None:
    await assert_fault(session, hub.url, billion_laughs_body())
    await assert_still_serving(session, hub, pair, 1)


@pytest.mark.parametrize("method", ["samp.hub.noSuchMethod", "system.listMethods",
                                    "samp.client.receiveNotification", "samp.webhub.register",
                                    "samp.hub.", "ping"])
async def test_unknown_method_gets_a_fault(hub: AsyncHub, session: aiohttp.ClientSession,
                                           pair: tuple[Recorder, Recorder], method: str) -> None:
    sender, _ = pair
    await assert_fault(session, hub.url, call_body(method, sender.client.private_key))
    await assert_still_serving(session, hub, pair, 1)


def wrong_calls(key: str, receiver: str) -> dict[str, bytes]:
    message = {"samp.mtype": "test.tick", "samp.params": {}}
    return {
        # wrong argument types
        "register-int-secret": call_body("samp.hub.register", 12345),
        "register-map-secret": call_body("samp.hub.register", {"a": "b"}),
        "metadata-list": call_body("samp.hub.declareMetadata", key, ["samp.name", "x"]),
        "metadata-string": call_body("samp.hub.declareMetadata", key, "samp.name=x"),
        "subscriptions-list": call_body("samp.hub.declareSubscriptions", key, ["test.tick"]),
        "subscriptions-bad-pattern": call_body("samp.hub.declareSubscriptions", key,
                                               {"te*st": {}}),
        "get-metadata-int-id": call_body("samp.hub.getMetadata", key, 1),
        "subscribed-clients-list": call_body("samp.hub.getSubscribedClients", key, ["x"]),
        "notify-message-string": call_body("samp.hub.notify", key, receiver, "test.tick"),
        "notify-params-list": call_body("samp.hub.notify", key, receiver,
                                        {"samp.mtype": "test.tick", "samp.params": ["a"]}),
        "notify-no-mtype": call_body("samp.hub.notify", key, receiver, {"samp.params": {}}),
        "notify-unknown-recipient": call_body("samp.hub.notify", key, "nobody", message),
        "notify-unsubscribed-mtype": call_body("samp.hub.notify", key, receiver,
                                               {"samp.mtype": "not.subscribed"}),
        "call-tag-map": call_body("samp.hub.call", key, receiver, {"t": "x"}, message),
        "call-and-wait-bad-timeout": call_body("samp.hub.callAndWait", key, receiver, message,
                                               "soon"),
        "reply-unknown-msg-id": call_body("samp.hub.reply", key, "no-such-msg-id",
                                          {"samp.status": "samp.ok"}),
        "reply-response-string": call_body("samp.hub.reply", key, "m", "samp.ok"),
        "callback-int": call_body("samp.hub.setXmlrpcCallback", key, 8080),
        # wrong argument counts
        "register-no-args": call_body("samp.hub.register"),
        "register-two-args": call_body("samp.hub.register", "a", "b"),
        "notify-two-args": call_body("samp.hub.notify", key, receiver),
        "notify-four-args": call_body("samp.hub.notify", key, receiver, message, "extra"),
        "registered-clients-no-args": call_body("samp.hub.getRegisteredClients"),
        "call-and-wait-three-args": call_body("samp.hub.callAndWait", key, receiver, message),
        "unregister-two-args": call_body("samp.hub.unregister", key, key),
        "reply-one-arg": call_body("samp.hub.reply", key),
    }


WRONG_CALL_NAMES = list(wrong_calls("k", "c"))


@pytest.mark.parametrize("name", WRONG_CALL_NAMES)
async def test_wrong_argument_types_and_counts_get_a_fault(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder],
        name: str) -> None:
    sender, receiver = pair
    body = wrong_calls(sender.client.private_key, receiver.id)[name]
    await assert_fault(session, hub.url, body)
    await assert_still_serving(session, hub, pair, 1)
    # The sender is still registered and unharmed.
    assert receiver.id in await sender.client.get_registered_clients()


@pytest.mark.parametrize("method,extra", [
    ("unregister", ()),
    ("declareMetadata", ({"samp.name": "evil"},)),
    ("getMetadata", ("hub",)),
    ("declareSubscriptions", ({"*": {}},)),
    ("getSubscriptions", ("hub",)),
    ("getRegisteredClients", ()),
    ("getSubscribedClients", ("test.tick",)),
    ("notify", ("RECEIVER", {"samp.mtype": "test.tick", "samp.params": {}})),
    ("notifyAll", ({"samp.mtype": "test.tick", "samp.params": {}},)),
    ("call", ("RECEIVER", "tag", {"samp.mtype": "test.tick", "samp.params": {}})),
    ("callAll", ("tag", {"samp.mtype": "test.tick", "samp.params": {}})),
    ("callAndWait", ("RECEIVER", {"samp.mtype": "test.tick", "samp.params": {}}, "5")),
    ("reply", ("m1", {"samp.status": "samp.ok", "samp.result": {}})),
    ("setXmlrpcCallback", ("http://127.0.0.1:9/",)),
])
async def test_wrong_private_key_gets_a_fault(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder],
        method: str, extra: tuple) -> None:
    sender, receiver = pair
    args = tuple(receiver.id if a == "RECEIVER" else a for a in extra)
    for key in ("not-a-private-key", sender.client.private_key[:-1] + "!", ""):
        await assert_fault(session, hub.url, call_body(f"samp.hub.{method}", key, *args),
                           "key")
    # Nothing was delivered to the receiver by the refused requests.
    assert receiver.messages("test.tick") == []
    await assert_still_serving(session, hub, pair, 1)


async def test_wrong_hub_secret_gets_a_fault(hub: AsyncHub, session: aiohttp.ClientSession,
                                             pair: tuple[Recorder, Recorder]) -> None:
    await assert_fault(session, hub.url, call_body("samp.hub.register", "wrong-secret"),
                       "secret")
    await assert_still_serving(session, hub, pair, 1)


async def test_oversized_body_gets_a_fault(hub: AsyncHub, session: aiohttp.ClientSession,
                                           pair: tuple[Recorder, Recorder]) -> None:
    filler = "x" * (MAX_BODY_BYTES + 1024)
    body = dumps_request("samp.hub.ping", (filler,))
    assert len(body) > MAX_BODY_BYTES
    await assert_fault(session, hub.url, body, "exceeds")
    await assert_still_serving(session, hub, pair, 1)


async def test_oversized_chunked_body_gets_a_fault(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder]) -> None:
    """No Content-Length: the hub must still stop reading at the bound."""
    chunk = b"<!-- " + b"x" * (1024 * 1024) + b" -->"

    async def stream() -> AsyncIterator[bytes]:
        yield b"<?xml version='1.0'?><methodCall><methodName>samp.hub.ping</methodName>"
        for _ in range(17):
            yield chunk
        yield b"</methodCall>"

    await assert_fault(session, hub.url, stream())
    await assert_still_serving(session, hub, pair, 1)


async def test_receiver_keeps_getting_messages_while_bad_requests_arrive(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder],
        tmp_path: Path) -> None:
    sender, receiver = pair
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET_TEXT)
    bad = [*BAD_XML.values(), external_entity_body(secret_file), billion_laughs_body(),
           *wrong_calls(sender.client.private_key, receiver.id).values(),
           call_body("samp.hub.nope", sender.client.private_key)]
    n = 100

    async def barrage() -> None:
        for body in bad * 2:
            await assert_fault(session, hub.url, body)

    async def ticks() -> None:
        for i in range(n):
            await sender.client.notify(receiver.id, {"samp.mtype": "test.tick",
                                                     "samp.params": {"n": str(i)}})

    await asyncio.gather(barrage(), ticks())
    got = await receiver.wait_messages("test.tick", n)
    assert [m["samp.params"]["n"] for m in got] == [str(i) for i in range(n)]
