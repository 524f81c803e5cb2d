"""Interoperability with pyvo's SAMP classes (issue 2, item 3).

pyvo's ``SAMPIntegratedClient`` against sampflow's hub (the ``sampflow hub`` process and the
in-process ``SAMPHubServer``), and sampflow's ``SAMPIntegratedClient`` against pyvo's hub and
JSAMP's hub, in every pairing: metadata, subscriptions, notify, call/reply, call_and_wait.

Every client is given ``hub_params`` read from the hub's temporary lockfile; ``~/.samp`` is
never read. pyvo would probe the internet in its constructors: ``conf.use_internet = False``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peers as peerlib
import pytest
import pyvo.samp
import samphub

from sampflow.samp.lockfile import read_lockfile_unchecked

pyvo.samp.conf.use_internet = False


def read_params(lockfile: Path) -> dict[str, str]:
    return read_lockfile_unchecked(lockfile)


# -- hubs ----------------------------------------------------------------------------------

def _sampflow_process(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    with samphub.running_hub(tmp_path / "sampflow.lock", log_dir=tmp_path) as hub:
        yield hub.lockfile


def _sampflow_inprocess(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    from sampflow.samp.hub.sync import SAMPHubServer

    hub = SAMPHubServer(lockfile=str(tmp_path / "sampflow.lock"))
    hub.start()
    try:
        yield Path(hub.lockfile)  # type: ignore[arg-type]
    finally:
        hub.stop()
    assert not (tmp_path / "sampflow.lock").exists()


def _pyvo_hub(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    lockfile = tmp_path / "pyvo.lock"
    hub = pyvo.samp.SAMPHubServer(lockfile=str(lockfile), web_profile=False, addr="127.0.0.1")
    hub.start()
    try:
        yield lockfile
    finally:
        hub.stop()


def _jsamp_hub(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    launcher: peerlib.PeerLauncher = request.getfixturevalue("peers")
    yield launcher.jsamp_hub(tmp_path / "jsamp.lock").lockfile


HUBS: dict[str, Callable[[Path, pytest.FixtureRequest], Iterator[Path]]] = {
    "sampflow-hub": _sampflow_process,
    "sampflow-SAMPHubServer": _sampflow_inprocess,
    "pyvo-hub": _pyvo_hub,
    "jsamp-hub": _jsamp_hub,
}


@pytest.fixture
def hub_lockfile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    yield from HUBS[request.param](tmp_path, request)


# -- clients -------------------------------------------------------------------------------

def make_client(kind: str, **kwargs: Any) -> Any:
    if kind == "pyvo":
        return pyvo.samp.SAMPIntegratedClient(addr="127.0.0.1", **kwargs)
    from sampflow.samp import SAMPIntegratedClient

    return SAMPIntegratedClient(addr="127.0.0.1", **kwargs)


class Inbox:
    """Thread-safe record of what a client's bound functions received."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

    def add(self, kind: str, value: Any) -> None:
        with self._cond:
            self.items.append((kind, value))
            self._cond.notify_all()

    def wait(self, kind: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [v for k, v in self.items if k == kind]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {count} x {kind}: {self.items}")
                self._cond.wait(left)


def exercise(kind_a: str, kind_b: str, params: dict[str, str], *,
             racy_sync_calls: bool = False) -> None:
    """Alice (`kind_a`) and Bob (`kind_b`) talk through the hub of `params`.

    `racy_sync_calls`: the hub loses a callAndWait response that arrives very quickly. pyvo's
    (and astropy's) hub registers the msg-id it waits for only after it has dispatched the
    call (``_call_and_wait`` in pyvo/samp/hub.py: ``_call(...)`` then
    ``_sync_msg_ids_heap[msg_id] = None``), so a fast recipient's reply can land in between and
    be dropped: the caller then sees "Timeout expired!". Against such a hub each synchronous
    call is given three short tries; the assertions on what comes back are unchanged.
    """
    alice = make_client(kind_a, name="alice", description="client A",
                        metadata={"x.kind": kind_a})
    bob = make_client(kind_b, name="bob", description="client B", metadata={"x.kind": kind_b})
    inbox_a, inbox_b = Inbox(), Inbox()
    alice.connect(hub_params=dict(params))
    bob.connect(hub_params=dict(params))
    try:
        assert alice.is_connected and bob.is_connected
        a_id, b_id = alice.get_public_id(), bob.get_public_id()
        assert a_id != b_id and alice.get_private_key() != bob.get_private_key()
        assert b_id in alice.get_registered_clients()
        assert a_id not in alice.get_registered_clients()

        # metadata
        meta = alice.get_metadata(b_id)
        assert (meta["samp.name"], meta["samp.description.text"], meta["x.kind"]) == (
            "bob", "client B", kind_b)
        bob.declare_metadata({"samp.name": "bob2", "x.kind": kind_b})
        assert alice.get_metadata(b_id)["samp.name"] == "bob2"

        # subscriptions
        def on_note(private_key: str, sender_id: str, mtype: str, params: dict,
                    extra: dict) -> None:
            inbox_b.add("note", (sender_id, mtype, params))

        def on_echo(private_key: str, sender_id: str, msg_id: str, mtype: str, params: dict,
                    extra: dict) -> None:
            inbox_b.add("call", (sender_id, mtype, params))
            bob.reply(msg_id, {"samp.status": pyvo.samp.SAMP_STATUS_OK,
                               "samp.result": {"echo": params.get("text", ""),
                                               "by": "bob"}})

        def on_fail(private_key: str, sender_id: str, msg_id: str, mtype: str, params: dict,
                    extra: dict) -> None:
            bob.ereply(msg_id, pyvo.samp.SAMP_STATUS_ERROR,
                       error={"samp.errortxt": "refused on purpose"})

        bob.bind_receive_notification("test.note", on_note)
        bob.bind_receive_call("test.echo", on_echo)
        bob.bind_receive_call("test.fail", on_fail)
        subs = alice.get_subscriptions(b_id)
        assert {"test.note", "test.echo", "test.fail", "samp.app.ping"} <= set(subs)
        assert b_id in alice.get_subscribed_clients("test.echo")
        assert b_id not in alice.get_subscribed_clients("test.unknown")

        # notify
        alice.notify(b_id, {"samp.mtype": "test.note", "samp.params": {"n": "1"}})
        alice.enotify(b_id, "test.note", n="2")
        recipients = alice.notify_all({"samp.mtype": "test.note", "samp.params": {"n": "3"}})
        assert b_id in recipients
        alice.enotify_all("test.note", n="4")
        notes = inbox_b.wait("note", 4)
        assert sorted(p["n"] for _, _, p in notes) == ["1", "2", "3", "4"]
        assert all(sender == a_id and mtype == "test.note" for sender, mtype, _ in notes)

        # call / reply
        def on_response(private_key: str, sender_id: str, msg_id: str, response: dict) -> None:
            inbox_a.add("response", (sender_id, msg_id, response))

        alice.bind_receive_response("tag-1", on_response)
        alice.bind_receive_response("tag-2", on_response)
        alice.call(b_id, "tag-1", {"samp.mtype": "test.echo", "samp.params": {"text": "hi"}})
        alice.ecall(b_id, "tag-2", "test.echo", text="there")
        responses = inbox_a.wait("response", 2)
        by_tag = {tag: (sender, r) for sender, tag, r in responses}
        assert set(by_tag) == {"tag-1", "tag-2"}
        assert by_tag["tag-1"][0] == b_id
        assert by_tag["tag-1"][1]["samp.status"] == "samp.ok"
        assert by_tag["tag-1"][1]["samp.result"]["echo"] == "hi"
        assert by_tag["tag-2"][1]["samp.result"]["echo"] == "there"

        # call_and_wait
        def sync(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            tries = 3 if racy_sync_calls else 1
            for attempt in range(tries):
                try:
                    return call(*args, **kwargs)
                except Exception as exc:  # pyvo: SAMPProxyError; sampflow: SAMPProxyError
                    if attempt == tries - 1 or "Timeout expired" not in str(exc):
                        raise

        timeout = "8" if racy_sync_calls else "20"
        r = sync(alice.call_and_wait, b_id, {"samp.mtype": "test.echo",
                                             "samp.params": {"text": "sync"}}, timeout)
        assert r["samp.status"] == "samp.ok" and r["samp.result"]["echo"] == "sync"
        r = sync(alice.ecall_and_wait, b_id, "test.echo", timeout, text="esync")
        assert r["samp.result"] == {"echo": "esync", "by": "bob"}
        r = sync(alice.ecall_and_wait, b_id, "test.fail", timeout)
        assert r["samp.status"] == "samp.error"
        assert r["samp.error"]["samp.errortxt"] == "refused on purpose"
        r = sync(alice.ecall_and_wait, b_id, "samp.app.ping", timeout)
        assert r["samp.status"] == "samp.ok"
        # and the other way round
        r = sync(bob.ecall_and_wait, a_id, "samp.app.ping", timeout)
        assert r["samp.status"] == "samp.ok"
        assert len(inbox_b.wait("call", 4)) == 4

        # unbinding stops the subscription
        bob.unbind_receive_notification("test.note")
        assert b_id not in alice.get_subscribed_clients("test.note")
        alice.ping()
    finally:
        for client in (alice, bob):
            if client.is_connected:
                client.disconnect()
    assert not alice.is_connected and not bob.is_connected


PYVO_ON_SAMPFLOW = [
    pytest.param("sampflow-hub", "pyvo", "pyvo", id="sampflow-hub:pyvo-pyvo"),
    pytest.param("sampflow-SAMPHubServer", "pyvo", "pyvo", id="sampflow-inproc:pyvo-pyvo"),
]
SAMPFLOW_CLIENT = [
    pytest.param("sampflow-hub", "pyvo", "sampflow", id="sampflow-hub:pyvo-sampflow"),
    pytest.param("sampflow-hub", "sampflow", "pyvo", id="sampflow-hub:sampflow-pyvo"),
    pytest.param("sampflow-hub", "sampflow", "sampflow", id="sampflow-hub:sampflow-sampflow"),
    pytest.param("pyvo-hub", "sampflow", "sampflow", id="pyvo-hub:sampflow-sampflow"),
    pytest.param("pyvo-hub", "sampflow", "pyvo", id="pyvo-hub:sampflow-pyvo"),
    pytest.param("pyvo-hub", "pyvo", "sampflow", id="pyvo-hub:pyvo-sampflow"),
    pytest.param("jsamp-hub", "sampflow", "sampflow", id="jsamp-hub:sampflow-sampflow",
                 marks=pytest.mark.peer),
]


@pytest.mark.parametrize("hub_lockfile,kind_a,kind_b", PYVO_ON_SAMPFLOW + SAMPFLOW_CLIENT,
                         indirect=["hub_lockfile"])
def test_integrated_clients_talk_through_the_hub(hub_lockfile: Path, kind_a: str,
                                                 kind_b: str,
                                                 request: pytest.FixtureRequest) -> None:
    racy = request.node.callspec.params["hub_lockfile"] == "pyvo-hub"
    exercise(kind_a, kind_b, read_params(hub_lockfile), racy_sync_calls=racy)


@pytest.mark.parametrize("hub_lockfile", ["sampflow-hub"], indirect=True)
def test_pyvo_client_sees_hub_events_from_sampflow_hub(hub_lockfile: Path) -> None:
    params = read_params(hub_lockfile)
    inbox = Inbox()
    watcher = make_client("pyvo", name="watcher")
    watcher.connect(hub_params=dict(params))
    try:
        for mtype in ("samp.hub.event.register", "samp.hub.event.metadata",
                      "samp.hub.event.subscriptions", "samp.hub.event.unregister"):
            watcher.bind_receive_notification(
                mtype, lambda k, s, m, p, e: inbox.add(m, (s, p)))
        other = make_client("pyvo", name="other")
        other.connect(hub_params=dict(params))
        other_id = other.get_public_id()
        other.disconnect()
        senders = set()
        for mtype in ("samp.hub.event.register", "samp.hub.event.metadata",
                      "samp.hub.event.unregister"):
            got = inbox.wait(mtype)
            assert any(p.get("id") == other_id for _, p in got), (mtype, got)
            senders |= {sender for sender, _ in got}
        [hub_id] = senders  # every event comes from the hub's own client
        assert hub_id in watcher.get_registered_clients()
        assert watcher.get_metadata(hub_id)["samp.name"].startswith("sampflow")
        assert watcher.ecall_and_wait(hub_id, "samp.app.ping", "10")["samp.status"] == "samp.ok"
    finally:
        watcher.disconnect()


@pytest.mark.parametrize("hub_lockfile", ["sampflow-hub", "pyvo-hub"], indirect=True)
def test_sampflow_call_and_wait_timeout_raises(hub_lockfile: Path) -> None:
    """A call nobody answers: call_and_wait raises (astropy raises SAMPProxyError)."""
    params = read_params(hub_lockfile)
    caller = make_client("sampflow", name="caller")
    mute = make_client("pyvo", name="mute")
    caller.connect(hub_params=dict(params))
    mute.connect(hub_params=dict(params))
    try:
        mute.bind_receive_call("test.silence", lambda *a: None)
        from sampflow.samp import SAMPHubError, SAMPProxyError

        with pytest.raises((SAMPProxyError, SAMPHubError)):
            caller.ecall_and_wait(mute.get_public_id(), "test.silence", "1")
        caller.ping()
    finally:
        caller.disconnect()
        mute.disconnect()
