"""Issue 11: each difference from astropy.samp that broke unchanged code, over real sockets.

Where a value comes from the hub, astropy's own client is run against the same sampflow hub
and must see the same thing as sampflow's client (same hub, same answer).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import warnings
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampflow.samp import (
    SAMPHubProxy,
    SAMPHubServer,
    SAMPIntegratedClient,
    SAMPMsgReplierWrapper,
    SAMPProxyError,
    SAMPWarning,
    SAMPXXEServerProxy,
)
from sampflow.samp.client.proxy import NOBODY_WARNING
from sampflow.samp.hub import sync as hub_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import astropy.samp as astropy_samp

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[SAMPHubServer]:
    server = SAMPHubServer(lockfile=str(tmp_path / "lock"), web_profile=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clients(hub: SAMPHubServer) -> Iterator[Any]:
    """``clients(n, module=sampflow.samp)``: n connected integrated clients; all
    disconnected after the test."""
    made: list[Any] = []

    def make(n: int = 1, module: Any = None) -> list[Any]:
        cls = (module.SAMPIntegratedClient if module is not None else SAMPIntegratedClient)
        for _ in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client = cls(name=f"c{len(made)}")
                client.connect(hub_params=hub.params)
            made.append(client)
        return made[-n:]

    yield make
    for client in made:
        if client.is_connected:
            client.disconnect()


def _line_of(function: Any) -> int:
    return function.__code__.co_firstlineno


def received(box: list[Any], n: int = 1, seconds: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + seconds
    while len(box) < n:
        assert time.monotonic() < deadline, f"got {box}, wanted {n}"
        time.sleep(0.05)
    return box


# -- SAMPProxyError -------------------------------------------------------------------------

def test_a_refused_notify_is_an_xmlrpc_fault_with_the_hubs_fault_string(clients: Any) -> None:
    a, b = clients(2)
    theirs = clients(1, astropy_samp)[0]
    for client in (a, theirs):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            client.enotify(b.get_public_id(), "not.subscribed")
        assert caught.value.faultString == f"client {b.get_public_id()} is not subscribed " \
            "to not.subscribed"
    with pytest.raises(SAMPProxyError) as caught:
        a.ecall_and_wait(b.get_public_id(), "not.subscribed", "5")
    assert not caught.value.faultString.startswith("samp.hub")


# -- notify returns the hub's answer ----------------------------------------------------------

def test_notify_and_enotify_return_the_hubs_answer_as_astropys_client_does(clients: Any) -> None:
    a, b = clients(2)
    theirs = clients(1, astropy_samp)[0]
    b.bind_receive_notification("x.y", lambda *args: None)
    ours = [a.notify(b.get_public_id(), {"samp.mtype": "x.y", "samp.params": {}}),
            a.enotify(b.get_public_id(), "x.y")]
    astropys = [theirs.notify(b.get_public_id(), {"samp.mtype": "x.y", "samp.params": {}}),
                theirs.enotify(b.get_public_id(), "x.y")]
    assert ours == astropys == ["", ""]


def test_the_other_operations_return_what_astropys_client_returns(clients: Any) -> None:
    a, b = clients(2)
    theirs = clients(1, astropy_samp)[0]
    b.bind_receive_call("x.y", lambda pk, s, msg_id, m, p, e: b.ereply(msg_id, "samp.ok", {}))

    def run(client: Any) -> list[Any]:
        target = b.get_public_id()
        return [
            type(client.ping()),
            client.declare_metadata({"samp.name": "same"}),
            type(client.call(target, "tag", {"samp.mtype": "x.y", "samp.params": {}})),
            list(client.call_all("tag", {"samp.mtype": "x.y", "samp.params": {}})),
            client.ecall_and_wait(target, "x.y", "5"),
            client.get_metadata(target)["samp.name"],
            sorted(client.get_subscribed_clients("x.y")),
            client.notify_all({"samp.mtype": "x.y", "samp.params": {}}),
        ]

    assert run(a) == run(theirs)


# -- broadcasts that reach nobody --------------------------------------------------------------

@pytest.mark.parametrize("operation", ["notify_all", "enotify_all", "call_all", "ecall_all",
                                       "proxy.notify_all", "proxy.call_all"])
def test_a_broadcast_that_reaches_nobody_warns(clients: Any, operation: str) -> None:
    (a,) = clients(1)
    message = {"samp.mtype": "no.one", "samp.params": {}}
    calls = {
        "notify_all": lambda: a.notify_all(message),
        "enotify_all": lambda: a.enotify_all("no.one"),
        "call_all": lambda: a.call_all("tag", message),
        "ecall_all": lambda: a.ecall_all("tag", "no.one"),
        "proxy.notify_all": lambda: a.hub.notify_all(a.get_private_key(), message),
        "proxy.call_all": lambda: a.hub.call_all(a.get_private_key(), "tag", message),
    }
    with pytest.warns(SAMPWarning, match=NOBODY_WARNING) as caught:
        result = calls[operation]()
    assert not result and len(caught) == 1
    assert (caught[0].filename, caught[0].lineno) == (__file__, _line_of(calls[operation]))


def test_a_broadcast_that_reaches_someone_does_not_warn(clients: Any) -> None:
    a, b = clients(2)
    b.bind_receive_notification("x.y", lambda *args: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert a.enotify_all("x.y") == [b.get_public_id()]


# -- notification handlers by arity -----------------------------------------------------------

def test_notification_handlers_get_five_or_six_arguments_by_their_arity(clients: Any) -> None:
    a, b = clients(2)
    got: list[tuple[Any, ...]] = []
    seen: list[str] = []

    def six(private_key, sender_id, msg_id, mtype, params, extra):  # type: ignore[no-untyped-def]
        got.append(("six", msg_id, mtype, params))

    def five(private_key, sender_id, mtype, params, extra):  # type: ignore[no-untyped-def]
        got.append(("five", mtype, params))

    b.bind_receive_notification("six.n", six)
    b.bind_receive_notification("five.n", five)
    b.bind_receive_notification("default.n", lambda pk, s, m, p, e, seen=seen: got.append(
        ("default", m)))
    b.bind_receive_notification("star.n", lambda *args: got.append(("star", len(args))))
    for mtype in ("six.n", "five.n", "default.n", "star.n"):
        a.enotify(b.get_public_id(), mtype, k="v")
    assert sorted(received(got, 4)) == sorted([
        ("six", None, "six.n", {"k": "v"}), ("five", "five.n", {"k": "v"}),
        ("default", "default.n"), ("star", 6)])


def test_one_six_argument_handler_serves_calls_and_notifications(clients: Any) -> None:
    a, b = clients(2)
    got: list[Any] = []

    def handler(private_key, sender_id, msg_id, mtype, params, extra):  # type: ignore[no-untyped-def]
        got.append(msg_id)
        if msg_id is not None:
            b.ereply(msg_id, "samp.ok", {"echo": params["x"]})

    b.bind_receive_message("both.x", handler)
    a.enotify(b.get_public_id(), "both.x", x="1")
    assert a.ecall_and_wait(b.get_public_id(), "both.x", "10", x="2")["samp.result"] == {
        "echo": "2"}
    received(got, 2)
    assert got[0] is None and isinstance(got[1], str)


def test_notifications_run_every_matching_handler_most_specific_first(clients: Any) -> None:
    a, b = clients(2)
    got: list[str] = []
    for pattern in ("*", "a.*", "a.b"):  # "*" also gets the hub's samp.hub.event.* ones
        b.bind_receive_notification(pattern, lambda pk, s, m, p, e, pattern=pattern:
                                    m == "a.b" and got.append(pattern))
    a.enotify(b.get_public_id(), "a.b")
    assert received(got, 3) == ["a.b", "a.*", "*"]


# -- a reply after its call timed out --------------------------------------------------------

def test_a_reply_after_the_call_timed_out_is_silent(clients: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    a, b = clients(2)
    replied = threading.Event()
    outcome: list[Any] = []

    def slow(private_key, sender_id, msg_id, mtype, params, extra):  # type: ignore[no-untyped-def]
        assert replied.wait(30)
        outcome.append(b.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}}))

    b.bind_receive_call("slow.x", slow)
    caplog.set_level(logging.DEBUG, logger="sampflow")
    with pytest.raises(SAMPProxyError, match="no response"):
        a.ecall_and_wait(b.get_public_id(), "slow.x", "1")
    replied.set()
    received(outcome)
    assert outcome == [None]  # the reply itself raised nothing
    deadline = time.monotonic() + 10
    while not any("late reply" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "no debug log of the late reply"
        time.sleep(0.05)
    noisy = [r for r in caplog.records if r.levelno > logging.INFO or r.exc_info]
    assert noisy == []
    late = [r for r in caplog.records if "late reply" in r.getMessage()]
    assert [r.levelno for r in late] == [logging.DEBUG]


# -- callAndWait timeout -------------------------------------------------------------------

@pytest.mark.parametrize("via", ["integrated", "proxy"])
def test_a_half_second_timeout_waits_one_second_not_forever(clients: Any, via: str) -> None:
    a, b = clients(2)
    b.bind_receive_call("never.x", lambda *args: None)  # never replies
    message = {"samp.mtype": "never.x", "samp.params": {}}
    with pytest.raises(SAMPProxyError) as caught:
        if via == "proxy":
            a.hub.call_and_wait(a.get_private_key(), b.get_public_id(), message, "0.5")
        else:
            a.call_and_wait(b.get_public_id(), message, "0.5")
    assert "within 1 s" in caught.value.faultString


# -- SAMPHubServer's web_profile default ---------------------------------------------------------

@pytest.fixture
def desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lockfile = tmp_path / ".samp"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:" + lockfile.as_uri())
    monkeypatch.setattr(hub_server, "_web_default_warned", False)
    return lockfile


def _start_and_stop(**options: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server = SAMPHubServer(**options)
        server.start()
    server.stop()
    return [str(w.message) for w in caught if w.category is SAMPWarning]


def test_the_desktop_hub_relying_on_the_web_profile_default_warns_once(desktop: Path) -> None:
    assert _start_and_stop() == [hub_server.WEB_PROFILE_DEFAULT_WARNING]
    assert _start_and_stop() == []  # once per process


@pytest.mark.parametrize("options", [{"web_port": 0}, {"web_profile_dialog": lambda r: True}])
def test_web_profile_options_without_web_profile_warn(desktop: Path, tmp_path: Path,
                                                      options: dict[str, Any]) -> None:
    assert _start_and_stop(lockfile=str(tmp_path / "private"), **options) == [
        hub_server.WEB_PROFILE_DEFAULT_WARNING]


@pytest.mark.parametrize("options", [{"web_profile": False}, {"lockfile": "private"},
                                     {"web_profile": True, "web_port": 0}])
def test_no_warning_when_the_code_says_what_it_wants(desktop: Path, tmp_path: Path,
                                                     options: dict[str, Any]) -> None:
    if "lockfile" in options:
        options = {"lockfile": str(tmp_path / options["lockfile"])}
    assert _start_and_stop(**options) == []


def test_the_docstring_says_the_web_profile_is_off_in_its_first_line() -> None:
    first = (SAMPHubServer.__doc__ or "").strip().splitlines()[0]
    assert "no Web Profile unless ``web_profile=True``" in first


# -- the other names ---------------------------------------------------------------------------

def test_get_mtype_subtypes_is_astropys() -> None:
    for mtype in ("samp.app.ping", "table.load.votable", "x", "*"):
        assert SAMPHubServer.get_mtype_subtypes(mtype) == \
            astropy_samp.SAMPHubServer.get_mtype_subtypes(mtype)


def test_the_msg_replier_wrapper_replies_with_the_result_or_the_error(clients: Any) -> None:
    a, b = clients(2)

    @SAMPMsgReplierWrapper(b)
    def add(private_key, sender_id, msg_id, mtype, params, extra):  # type: ignore[no-untyped-def]
        return {"sum": str(int(params["x"]) + 1)}

    b.bind_receive_call("calc.add", add)
    assert a.ecall_and_wait(b.get_public_id(), "calc.add", "10", x="41") == {
        "samp.status": "samp.ok", "samp.result": {"sum": "42"}}
    error = a.ecall_and_wait(b.get_public_id(), "calc.add", "10", x="not a number")
    assert error["samp.status"] == "samp.error"
    assert "ValueError" in error["samp.error"]["samp.errortxt"]


def test_the_xxe_safe_server_proxy_talks_to_the_hub(hub: SAMPHubServer) -> None:
    proxy = SAMPXXEServerProxy(hub.params["samp.hub.xmlrpc.url"])
    proxy.samp.hub.ping()
    with pytest.raises(xmlrpc.client.Fault):
        proxy.samp.hub.getRegisteredClients("not-a-key")


def test_the_hub_proxy_and_client_classes_as_astropy_documents_them(hub: SAMPHubServer) -> None:
    """astropy's lower-level API (SAMPHubProxy + SAMPClient), as in its API docs."""
    from sampflow.samp import SAMPClient

    myhub = SAMPHubProxy()
    myhub.connect(hub_params=hub.params)
    client = SAMPClient(myhub)
    client.start()
    client.register()
    client.declare_metadata({"samp.name": "Client", "client.version": "0.01"})
    try:
        key = client.get_private_key()
        assert myhub.get_metadata(key, client.get_public_id())["samp.name"] == "Client"
        with pytest.warns(SAMPWarning):
            assert myhub.notify_all(key, {"samp.mtype": "table.load.votable",
                                          "samp.params": {"url": "file:///x.xml"}}) == []
    finally:
        client.unregister()
        client.stop()
        myhub.disconnect()


def test_lockfile_helpers_find_the_running_hub(desktop: Path) -> None:
    from sampflow.samp import lockfile_helpers

    server = SAMPHubServer(web_profile=False)
    server.start()
    try:
        assert lockfile_helpers.check_running_hub(str(desktop)) == (True, server.params)
        assert lockfile_helpers.get_main_running_hub() == server.params
        assert lockfile_helpers.get_running_hubs() == {str(desktop): server.params}
        assert lockfile_helpers.create_lock_file(hub_params={"samp.secret": "x"}) is False
    finally:
        server.stop()
    assert lockfile_helpers.check_running_hub(str(desktop)) == (False, {})
    with pytest.raises(astropy_samp.SAMPHubError.__mro__[1]):  # any Exception: SAMPHubError
        lockfile_helpers.get_main_running_hub()
    made = lockfile_helpers.create_lock_file(
        hub_params={"samp.secret": "s", "samp.hub.xmlrpc.url": "http://127.0.0.1:9/x"})
    assert made == str(desktop) and (desktop.stat().st_mode & 0o777) == 0o600
    lockfile_helpers.remove_garbage_lock_files()  # its hub does not answer
    assert not desktop.exists()


def test_hub_script_runs_astropys_samp_hub_options_until_sigterm(tmp_path: Path) -> None:
    lockfile = tmp_path / "script.lock"
    code = ("import sys; from sampflow.samp.hub_script import hub_script; "
            "sys.argv[1:] = sys.argv[2:]; hub_script()")
    process = subprocess.Popen([sys.executable, "-c", code, "samp_hub", "-f", str(lockfile),
                                "-w", "-l", "scripted", "-L", "WARNING"])
    try:
        deadline = time.monotonic() + 60
        while not lockfile.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        client = SAMPIntegratedClient("probe")
        from sampflow.samp.lockfile import read_lockfile
        client.connect(hub_params=read_lockfile(lockfile))
        assert "scripted" in read_lockfile(lockfile)["hub.label"]
        client.disconnect()
        process.terminate()
        assert process.wait(30) == 0
        assert not lockfile.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
