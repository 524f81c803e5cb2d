"""astropy's SAMP documentation examples, unchanged but for the import, on sampflow (issue 11).

Each test is the code of one page of astropy's SAMP tutorial, with ``astropy.samp`` replaced
by ``sampflow.samp``, run against sampflow's hub over real loopback sockets:

- "Sending and Receiving Tables and Images over SAMP",
  https://docs.astropy.org/en/stable/samp/example_table_image.html (TOPCAT, DS9 and Aladin
  are played by the page's own ``Receiver`` class);
- "Communication between Integrated Clients Objects",
  https://docs.astropy.org/en/stable/samp/example_clients.html;
- "Starting and Stopping a SAMP Hub Server",
  https://docs.astropy.org/en/stable/samp/example_hub.html;
- "Embedding a SAMP Hub in a GUI",
  https://docs.astropy.org/en/stable/samp/advanced_embed_samp_hub.html (its Tk timer is a
  thread here: no display needed).

The examples find the hub as astropy's do, through ``SAMP_HUB``, which each test points at a
lockfile of its own (``HOME`` too), so ``~/.samp`` is never touched. Waiting for a message
uses the pages' own loop (``time.sleep(0.1)`` until ``r.received``), bounded here.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sampflow.samp import SAMPWarning
from sampflow.samp.hub import sync as hub_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``SAMP_HUB`` and ``HOME`` pointed at `tmp_path`; returns the lockfile path."""
    lockfile = tmp_path / ".samp"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:" + lockfile.as_uri())
    return lockfile


@pytest.fixture
def running_hub(desktop: Path) -> Iterator[Any]:
    """A sampflow hub on the test's lockfile, "already running" as the pages assume."""
    from sampflow.samp import SAMPHubServer

    hub = SAMPHubServer(lockfile=str(desktop), web_profile=False)
    hub.start()
    yield hub
    hub.stop()


def wait_for(predicate: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the message never arrived"
        time.sleep(0.1)


@pytest.fixture
def votable(tmp_path: Path) -> Path:
    from astropy.table import Table

    path = tmp_path / "aj285677t3_votable.xml"
    Table({"col1": ["SSTGLMC G000.0046+01.1431"], "col4": [265.2992]}).write(
        str(path), format="votable")
    return path


@pytest.fixture
def fits_image(tmp_path: Path) -> Path:
    from astropy.io import fits

    path = tmp_path / "MSX_E.fits"
    fits.PrimaryHDU(np.arange(16.0).reshape(4, 4)).writeto(path)
    return path


def receiver_page(mtype: str) -> tuple[Any, Any]:
    """example_table_image.html, "Receiving a Table from TOPCAT", up to the binding."""
    from sampflow.samp import SAMPIntegratedClient
    client = SAMPIntegratedClient()
    client.connect()

    class Receiver(object):  # noqa: UP004 (the page's code)
        def __init__(self, client):
            self.client = client
            self.received = False

        def receive_call(self, private_key, sender_id, msg_id, mtype, params, extra):
            self.params = params
            self.received = True
            self.client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

        def receive_notification(self, private_key, sender_id, mtype, params, extra):
            self.params = params
            self.received = True

    r = Receiver(client)
    client.bind_receive_call(mtype, r.receive_call)
    client.bind_receive_notification(mtype, r.receive_notification)
    assert r.received is False
    return client, r


def test_sending_a_table_to_topcat_and_receiving_it(running_hub: Any, votable: Path) -> None:
    """example_table_image.html: "Sending a Table to TOPCAT and DS9" to the page's
    "Receiving a Table from TOPCAT" receiver, then ``Table.read(r.params['url'])``."""
    topcat, r = receiver_page("table.load.votable")
    topcat.declare_metadata({"samp.name": "topcat"})
    try:
        from sampflow.samp import SAMPIntegratedClient
        client = SAMPIntegratedClient()
        client.connect()
        params = {}
        params["url"] = urllib.parse.urljoin('file:', os.path.abspath(str(votable)))
        params["name"] = "Robitaille et al. (2008), Table 3"
        message = {}
        message["samp.mtype"] = "table.load.votable"
        message["samp.params"] = params
        client.notify_all(message)
        wait_for(lambda: r.received)
        assert r.received is True

        ids = client.get_registered_clients()
        assert "hub" in ids and topcat.get_public_id() in ids
        c1 = next(i for i in ids if client.get_metadata(i).get("samp.name") == "topcat")
        r.received = False
        client.notify(c1, message)
        wait_for(lambda: r.received)
        client.disconnect()

        from astropy.table import Table
        t = Table.read(r.params['url'])
        assert list(t["col1"]) == ["SSTGLMC G000.0046+01.1431"]
    finally:
        topcat.disconnect()


def test_the_full_receiving_script_gets_a_table_by_call(running_hub: Any, votable: Path) -> None:
    """example_table_image.html: the full receiving script (its wait loop, its
    try/finally), with the table sent as a call, as TOPCAT's "Send table to" does."""
    from sampflow.samp import SAMPIntegratedClient
    sender = SAMPIntegratedClient(name="topcat")
    sender.connect()
    result: dict[str, Any] = {}
    done = threading.Event()

    def script() -> None:
        from astropy.table import Table

        from sampflow.samp import SAMPIntegratedClient

        # Instantiate the client and connect to the hub
        client = SAMPIntegratedClient()
        client.connect()

        # Set up a receiver class
        class Receiver(object):  # noqa: UP004 (the page's code)
            def __init__(self, client):
                self.client = client
                self.received = False

            def receive_call(self, private_key, sender_id, msg_id, mtype, params, extra):
                self.params = params
                self.received = True
                self.client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

            def receive_notification(self, private_key, sender_id, mtype, params, extra):
                self.params = params
                self.received = True

        # Instantiate the receiver
        r = Receiver(client)

        # Listen for any instructions to load a table
        client.bind_receive_call("table.load.votable", r.receive_call)
        client.bind_receive_notification("table.load.votable", r.receive_notification)
        result["id"] = client.get_public_id()
        done.set()

        try:
            # We test every 0.1s to see if the hub has sent a message
            deadline = time.monotonic() + 60  # (not in the page: bound the test)
            while time.monotonic() < deadline:
                time.sleep(0.1)
                if r.received:
                    t = Table.read(r.params['url'])
                    break
        finally:
            client.disconnect()

        result["table"] = t

    thread = threading.Thread(target=script)
    thread.start()
    try:
        assert done.wait(30)
        response = sender.ecall_and_wait(result["id"], "table.load.votable", "10",
                                         url=votable.as_uri(), name="t")
        assert response == {"samp.status": "samp.ok", "samp.result": {}}
    finally:
        thread.join(60)
        sender.disconnect()
    assert len(result["table"]) == 1


def test_sending_an_image_to_ds9_and_aladin(running_hub: Any, fits_image: Path) -> None:
    """example_table_image.html: "Sending an Image to DS9 and Aladin" and "Receiving a
    Table from DS9 or Aladin" (``image.load.fits``, then ``fits.open(r.params['url'])``)."""
    ds9, r = receiver_page("image.load.fits")
    try:
        from sampflow.samp import SAMPIntegratedClient
        client = SAMPIntegratedClient()
        client.connect()
        params = {}
        params["url"] = fits_image.as_uri()
        params["name"] = "MSX Band E Image of the Galactic Center"
        message = {}
        message["samp.mtype"] = "image.load.fits"
        message["samp.params"] = params
        client.notify_all(message)
        client.disconnect()
        wait_for(lambda: r.received)

        from astropy.io import fits
        with fits.open(urllib.parse.urlparse(r.params['url']).path) as hdus:
            assert hdus[0].data.shape == (4, 4)
    finally:
        ds9.disconnect()


def test_communication_between_integrated_clients(running_hub: Any,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """example_clients.html, all of it: notifications, calls, responses, a synchronous call
    answered after two seconds, and ``SAMPProxyError``'s ``faultCode`` / ``faultString``."""
    from sampflow import samp
    client1 = samp.SAMPIntegratedClient(name="Client 1", description="Test Client 1",
                                        metadata = {"client1.version":"0.01"})
    client2 = samp.SAMPIntegratedClient(name="Client 2", description="Test Client 2",
                                        metadata = {"client2.version":"0.25"})
    client1.connect()
    client2.connect()
    responses = []

    def test_receive_notification(private_key, sender_id, mtype, params, extra):
        print("Notification:", private_key, sender_id, mtype, params, extra)

    def test_receive_call(private_key, sender_id, msg_id, mtype, params, extra):
        print("Call:", private_key, sender_id, msg_id, mtype, params, extra)
        client1.ereply(msg_id, samp.SAMP_STATUS_OK, result = {"txt": "printed"})

    def test_receive_response(private_key, sender_id, msg_id, response):
        print("Response:", private_key, sender_id, msg_id, response)
        responses.append((msg_id, response))

    client1.bind_receive_notification("samp.app.*", test_receive_notification)
    client1.bind_receive_call("samp.app.*", test_receive_call)
    client2.bind_receive_response("my-dummy-print", test_receive_response)
    client2.bind_receive_response("my-dummy-print-specific", test_receive_response)

    assert client2.enotify_all("samp.app.echo", txt="Hello world!") == [
        client1.get_public_id()]
    print(client2.get_subscribed_clients("samp.app.echo"))
    print(client2.call_all("my-dummy-print",
                           {"samp.mtype": "samp.app.echo",
                            "samp.params": {"txt": "Hello world!"}}))
    try:
        print(client2.call(client1.get_public_id(),
                           "my-dummy-print-specific",
                           {"samp.mtype": "samp.app.echo",
                            "samp.params": {"txt": "Hello client 1!"}}))
    except samp.SAMPProxyError as e:
        print("Error ({0}): {1}".format(e.faultCode, e.faultString))  # noqa: UP030, UP032
    wait_for(lambda: len(responses) == 2)

    def test_receive_sync_call(private_key, sender_id, msg_id, mtype, params, extra):
        import time
        print("SYNC Call:", sender_id, msg_id, mtype, params, extra)
        time.sleep(2)
        client1.reply(msg_id, {"samp.status": samp.SAMP_STATUS_OK,
                               "samp.result": {"txt": "printed sync"}})

    client1.bind_receive_call("samp.test", test_receive_sync_call)
    try:
        # Sync call
        print(client2.call_and_wait(client1.get_public_id(),
                                    {"samp.mtype": "samp.test",
                                     "samp.params": {"txt": "Hello SYNCRO client 1!"}},
                                    "10"))
    except samp.SAMPProxyError as e:
        # If timeout expires than a SAMPProxyError is returned
        print("Error ({0}): {1}".format(e.faultCode, e.faultString))  # noqa: UP030, UP032

    # A call to an MType client 1 does not subscribe to: the page's except clause.
    try:
        client2.call(client1.get_public_id(), "my-dummy-print-specific",
                     {"samp.mtype": "nobody.listens", "samp.params": {}})
    except samp.SAMPProxyError as e:
        print("Error ({0}): {1}".format(e.faultCode, e.faultString))  # noqa: UP030, UP032

    client1.disconnect()
    client2.disconnect()

    out = capfd.readouterr().out
    assert out.count("Notification:") == 1 and "{'txt': 'Hello world!'}" in out
    assert out.count("Call:") == 3  # two samp.app.echo calls and the "SYNC Call:"
    assert out.count("Response:") == 2 and "{'txt': 'printed'}" in out
    assert "{'samp.status': 'samp.ok', 'samp.result': {'txt': 'printed sync'}}" in out
    error = [line for line in out.splitlines() if line.startswith("Error (")]
    assert len(error) == 1 and "samp.hub." not in error[0] and "nobody.listens" in error[0]
    assert {m for m, _ in responses} == {"my-dummy-print", "my-dummy-print-specific"}


def test_starting_and_stopping_a_hub_programmatically(desktop: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """example_hub.html, "Starting a hub programmatically": under astropy that hub also
    serves the Web Profile; sampflow's says so once with a SAMPWarning (issue 11)."""
    monkeypatch.setattr(hub_server, "_web_default_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from sampflow.samp import SAMPHubServer
        hub = SAMPHubServer()
        hub.start()
    try:
        assert desktop.exists() and hub.is_running
        assert [str(w.message) for w in caught if w.category is SAMPWarning] == [
            hub_server.WEB_PROFILE_DEFAULT_WARNING]
        from sampflow.samp import SAMPIntegratedClient
        client = SAMPIntegratedClient()
        client.connect()
        assert client.is_connected
        client.disconnect()
    finally:
        hub.stop()
    assert not desktop.exists() and not hub.is_running


def test_embedding_a_hub_with_a_web_profile_dialog(desktop: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """advanced_embed_samp_hub.html: a ``WebProfileDialog`` subclass whose ``show_dialog``
    consents, driven by a timer calling ``handle_queue``. Unchanged, the page's hub gets no
    Web Profile on sampflow (and a SAMPWarning says so); with ``web_profile=True`` a web
    client registers once the dialog consents."""
    from pyvo.samp.tests.web_profile_test_helpers import SAMPIntegratedWebClient

    from sampflow.samp import SAMPHubServer
    from sampflow.samp.hub import WebProfileDialog
    from sampflow.samp.hub.registry import Profile

    asked: list[tuple[str, str]] = []

    class TimerWebProfileDialog(WebProfileDialog):
        def __init__(self, root):
            self.root = root
            self.wait_for_dialog()

        def wait_for_dialog(self):
            self.handle_queue()
            if not self.root.is_set():
                threading.Timer(0.1, self.wait_for_dialog).start()  # root.after(100, ...)

        def show_dialog(self, samp_name, details, client, origin):
            asked.append((samp_name, origin))
            response = True  # the user clicks "yes"
            if response:
                self.consent()
            else:
                self.reject()

    root = threading.Event()
    try:
        monkeypatch.setattr(hub_server, "_web_default_warned", False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            h = SAMPHubServer(web_profile_dialog=TimerWebProfileDialog(root))
            h.start()
        assert any(w.category is SAMPWarning for w in caught)
        assert h._hub.profile_for(Profile.WEB) is None
        h.stop()

        h = SAMPHubServer(web_profile=True, web_profile_dialog=TimerWebProfileDialog(root),
                          web_port=0)
        h.start()
        try:
            web = h._hub.profile_for(Profile.WEB)
            assert web is not None
            page = SAMPIntegratedWebClient()
            page.connect(web_port=web.port)
            assert page.is_connected and asked and asked[0][0]
            page.disconnect()
        finally:
            h.stop()
    finally:
        root.set()
