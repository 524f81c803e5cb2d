"""Web Profile policies without sockets: MType restriction, URL control, consent gate."""

from __future__ import annotations

import asyncio
import io

import pytest

from sampflow.samp.errors import LocalProtocolError
from sampflow.samp.hub.core import HubCore
from sampflow.samp.hub.registry import Profile
from sampflow.samp.hub.web_consent import (
    AllowList,
    ConsentGate,
    ConsentRequest,
    TerminalPrompt,
    as_consent,
    default_consent,
)
from sampflow.samp.hub.web_policy import MTypeRestriction, UrlControl


def message(mtype: str, **params: str) -> dict:
    return {"samp.mtype": mtype, "samp.params": params}


@pytest.fixture
def core() -> HubCore:
    c = HubCore()
    c.message_filter = MTypeRestriction(previous=None)
    return c


def test_restriction_in_core_routing(core: HubCore) -> None:
    web = core.register(Profile.WEB)
    web.callback = "pull"
    desk = core.register(Profile.STANDARD)
    desk.callback = "http://127.0.0.1:1/"
    core.declare_subscriptions(desk.private_key, {
        "*": {}, "x.ok": {"x-samp.mostly-harmless": "1"},
        "table.load.fits": {"x-samp.mostly-harmless": "0"}})
    core.take_outputs()
    with pytest.raises(LocalProtocolError, match="may not send script.run"):
        core.notify(web.private_key, desk.public_id, message("script.run"))
    with pytest.raises(LocalProtocolError, match="table.load.fits"):
        core.call(web.private_key, desk.public_id, "t", message("table.load.fits"))
    assert core.notify_all(web.private_key, message("client.env.get")) == []
    assert core.call_all(web.private_key, "t", message("script.run")) == {}
    assert core.notify_all(web.private_key, message("table.load.votable")) == [desk.public_id]
    core.notify(web.private_key, desk.public_id, message("x.ok"))
    # The hub's own samp.app.ping is on the harmless list.
    assert core.call(web.private_key, core.hub.public_id, "t", message("samp.app.ping"))


def test_restriction_chains_previous_filter() -> None:
    calls = []

    def previous(sender, recipient, msg):  # type: ignore[no-untyped-def]
        calls.append(msg["samp.mtype"])
        return "blocked" if msg["samp.mtype"] == "table.bad" else None

    c = HubCore()
    c.message_filter = MTypeRestriction(previous=previous)
    desk = c.register(Profile.STANDARD)
    desk.callback = "http://x/"
    c.declare_subscriptions(desk.private_key, {"*": {}})
    web = c.register(Profile.WEB)
    with pytest.raises(LocalProtocolError, match="blocked"):
        c.notify(web.private_key, desk.public_id, message("table.bad"))
    assert calls == ["table.bad"]


def test_url_control_learns_from_desktop_messages_and_responses(core: HubCore) -> None:
    urls = UrlControl(max_urls=2)
    core.message_observers.append(urls)
    desk = core.register(Profile.STANDARD)
    desk.callback = "http://x/"
    web = core.register(Profile.WEB)
    web.callback = "pull"
    core.declare_subscriptions(web.private_key, {"*": {}})
    core.declare_subscriptions(desk.private_key, {"*": {}})
    core.notify(web.private_key, desk.public_id, message("table.load.votable", url="file:///etc/passwd"))
    assert not urls.allows("file:///etc/passwd")
    msg_id = core.call(web.private_key, desk.public_id, "t", message("table.load.votable"))
    core.reply(desk.private_key, msg_id, {"samp.status": "samp.ok",
                                          "samp.result": {"url": "file:///data/a.fits"}})
    assert urls.allows("file:///data/a.fits")
    core.notify(desk.private_key, web.public_id, message("image.load.fits", url="http://h/b"))
    core.notify(desk.private_key, web.public_id, message("image.load.fits", url="http://h/c"))
    assert urls.allows("http://h/c") and not urls.allows("file:///data/a.fits")  # bounded


def req(origin: str | None = "http://a:1", name: str = "page") -> ConsentRequest:
    return ConsentRequest(name, origin, "127.0.0.1", {"samp.name": name})


async def test_allow_list_and_default_consent_without_terminal() -> None:
    consent = default_consent(["http://a:1"], interactive=False)
    assert await consent(req()) is True
    assert await consent(req("http://b:1")) is False
    assert await consent(req(None)) is False
    assert AllowList(["null"])(req("null"))


async def test_terminal_prompt_reads_an_answer_and_times_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    r, w = os.pipe()
    with os.fdopen(r) as stdin, os.fdopen(w, "w") as feed:
        out = io.StringIO()
        prompt = TerminalPrompt(0.3, stdin=stdin, stdout=out)
        assert await prompt(req(name="evil\x1b[2J")) is False  # nobody answers
        assert "evil?[2J" in out.getvalue()  # control characters neutralised
        feed.write("y\n")
        feed.flush()
        assert await prompt(req()) is True


async def test_gate_times_out_bounds_and_survives_broken_policies() -> None:
    release = asyncio.Event()

    async def slow(request: ConsentRequest) -> bool:
        await release.wait()
        return True

    gate = ConsentGate(slow, timeout=0.2, max_pending=1)
    first = asyncio.ensure_future(gate.ask(req()))
    await asyncio.sleep(0.01)
    assert await gate.ask(req()) is False  # too many pending
    assert await first is False  # timed out
    release.set()

    def broken(request: ConsentRequest) -> bool:
        raise RuntimeError("dialog crashed")

    assert await ConsentGate(as_consent(broken)).ask(req()) is False
    assert await ConsentGate(as_consent(None)).ask(req()) is False
    assert await ConsentGate(as_consent(lambda r: True)).ask(req()) is True


async def test_astropy_style_dialog_is_supported() -> None:
    import threading

    class Dialog:  # the interface of astropy's / pyvo's WebProfileDialog
        def __init__(self) -> None:
            self.seen: list = []

        def handle_queue(self) -> None:
            request = self.queue_request.get(timeout=5)  # type: ignore[attr-defined]
            self.seen.append(request)
            self.queue_result.put(request[2] == "http://a:1")  # type: ignore[attr-defined]

        def show_dialog(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    dialog = Dialog()
    consent = as_consent(dialog)
    worker = threading.Thread(target=dialog.handle_queue)
    worker.start()
    assert await consent(req()) is True
    worker.join(5)
    assert dialog.seen[0][0] == {"samp.name": "page"} and dialog.seen[0][2] == "http://a:1"
