"""The link's socket-free parts: share policy, signed envelopes, and the proxy mirror driven
against a real `HubCore` / `HubService` in memory (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from sampflow.samp.errors import LocalProtocolError
from sampflow.samp.hub.core import Delivery, HubCore
from sampflow.samp.hub.registry import Profile
from sampflow.samp.hub.service import HubService
from sampflow.samp.link.envelope import Codec, EnvelopeError
from sampflow.samp.link.mirror import PROXY_SOURCE_KEY, HubMirror
from sampflow.samp.link.policy import SharePolicy


# -- policy ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mtype", ["script.aladin.send", "ds9.set", "client.cmd.exec",
                                   "x.exec", "foo.exec.now", "samp.hub.event.register",
                                   "samp.hub.disconnect"])
def test_exec_like_mtypes_never_cross_even_when_everything_is_shared(mtype: str) -> None:
    assert not SharePolicy(["*"]).allows(mtype)


def test_default_share_is_the_data_exchange_mtypes() -> None:
    policy = SharePolicy()
    for mtype in ("table.load.votable", "image.load.fits", "coord.pointAt.sky",
                  "spectrum.load.ssa-generic", "voresource.loadlist", "samp.app.ping"):
        assert policy.allows(mtype), mtype
    for mtype in ("ds9.get", "bibcode.load", "samp.app.event.shutdown", "table"):
        assert not policy.allows(mtype), mtype


def test_proxy_subscriptions_are_the_shared_part() -> None:
    policy = SharePolicy(["table.*", "coord.pointAt.sky"])
    assert policy.subscriptions({"table.load.*": {"a": "1"}, "coord.*": {"b": "2"},
                                 "image.load.fits": {}, "samp.hub.event.*": {}}) == {
        "table.load.*": {"a": "1"}, "coord.pointAt.sky": {"b": "2"}}
    assert SharePolicy(["*"]).subscriptions({"script.aladin.send": {}, "ds9.set": {},
                                             "table.load.votable": {}}) == {
        "table.load.votable": {}}


# -- envelopes -------------------------------------------------------------------------------
def test_tampered_or_unsigned_payloads_are_refused() -> None:
    a, b = Codec("a", b"k"), Codec("b", b"k")
    payload = a.encode({"x": "1"})
    assert b.decode(payload) == ("a", {"x": "1"})
    with pytest.raises(EnvelopeError):
        b.decode(payload.replace(b'"1"', b'"2"'))
    with pytest.raises(EnvelopeError):
        b.decode(Codec("a", None).encode({"x": "1"}))  # unsigned, but b has a secret
    with pytest.raises(EnvelopeError):
        Codec("c", None).decode(payload)  # signed, but c expects credentials only
    with pytest.raises(EnvelopeError):
        b.decode(b"not json")


# -- the mirror against a real core ----------------------------------------------------------
class WebRecorder:
    """A Web Profile stand-in (a `ProfileHooks`): records its clients' deliveries."""

    profile = Profile.WEB

    def __init__(self, seen: list[Delivery]) -> None:
        self.seen = seen

    def filter(self, sender: object, recipient: object, message: dict) -> None:
        return None

    def observe(self, sender: object, message: dict) -> None:
        pass

    def deliver(self, delivery: Delivery) -> None:
        self.seen.append(delivery)

    def client_gone(self, record: object, reason: str) -> None:
        pass


class Harness:
    def __init__(self, share: tuple[str, ...] = ("table.*", "samp.app.ping")) -> None:
        self.core = HubCore()
        self.service = HubService(self.core)
        self.to_proxies: list[tuple[Delivery, str, str]] = []
        self.to_web: list[Delivery] = []
        self.changes = 0
        self.service.add_profile(WebRecorder(self.to_web))
        self.mirror = HubMirror(self.service, "here", SharePolicy(share),
                                lambda d, h, r: self.to_proxies.append((d, h, r)),
                                self._changed)
        self.mirror.attach()

    def _changed(self) -> None:
        self.changes += 1

    def local(self, name: str, subscriptions: dict[str, Any]) -> str:
        """A Web Profile client (its deliveries are recorded, no sockets)."""
        key = self.service.register(Profile.WEB)["samp.private-key"]
        self.core.allow_callbacks(key, True)
        self.core.declare_metadata(key, {"samp.name": name})
        self.core.declare_subscriptions(key, subscriptions)
        self.service.process_outputs()
        return key


def test_proxies_follow_the_remote_client_list() -> None:
    h = Harness()
    watcher = h.local("watcher", {"samp.hub.event.*": {}})
    h.to_web.clear()
    h.mirror.sync_hub("B", [{"id": "c7", "metadata": {"samp.name": "topcat", "x": "1"},
                             "subscriptions": {"*": {}, "table.load.votable": {"k": "v"}}}])
    proxy = h.mirror.proxy("B", "c7")
    assert proxy is not None and proxy.profile is Profile.LINK
    assert proxy.metadata["samp.name"] == "topcat (proxy@B)"
    assert proxy.metadata[PROXY_SOURCE_KEY] == "sampflow-link:B"
    assert proxy.metadata["x"] == "1"
    assert proxy.subscriptions == {"table.*": {}, "samp.app.ping": {},
                                   "table.load.votable": {"k": "v"}}
    events = [d.args[1]["samp.mtype"] for d in h.to_web]
    assert "samp.hub.event.register" in events
    # The same list again changes nothing: no hub events.
    h.to_web.clear()
    h.mirror.sync_hub("B", [{"id": "c7", "metadata": {"samp.name": "topcat", "x": "1"},
                             "subscriptions": {"*": {}, "table.load.votable": {"k": "v"}}}])
    assert h.to_web == []
    # Gone from the list: unregistered, and local clients told.
    h.mirror.sync_hub("B", [{"id": "bad"}, "junk"])  # type: ignore[list-item]
    assert h.mirror.proxy("B", "c7") is None
    assert [d.args[1]["samp.params"]["id"] for d in h.to_web
            if d.args[1]["samp.mtype"] == "samp.hub.event.unregister"] == [proxy.public_id]
    assert watcher


def test_messages_to_proxies_go_to_the_link_and_obey_the_policy() -> None:
    h = Harness()
    sender = h.local("sender", {})
    h.mirror.sync_hub("B", [{"id": "c3", "metadata": {"samp.name": "viewer"},
                             "subscriptions": {"*": {}}}])
    proxy = h.mirror.proxy("B", "c3")
    assert proxy is not None
    h.core.notify(sender, proxy.public_id, {"samp.mtype": "table.load.votable",
                                            "samp.params": {}})
    msg_id = h.core.call(sender, proxy.public_id, "tag", {"samp.mtype": "samp.app.ping",
                                                          "samp.params": {}})
    h.service.process_outputs()
    assert [(d.method, hub, rid) for d, hub, rid in h.to_proxies] == [
        ("receiveNotification", "B", "c3"), ("receiveCall", "B", "c3")]
    # The link answers the call with the proxy's key, like any client.
    h.core.reply(proxy.private_key, msg_id, {"samp.status": "samp.ok", "samp.result": {}})
    h.service.process_outputs()
    assert [d.method for d in h.to_web] == ["receiveResponse"]
    with pytest.raises(LocalProtocolError, match="not subscribed"):  # trimmed by the policy
        h.core.notify(sender, proxy.public_id, {"samp.mtype": "image.load.fits",
                                                "samp.params": {}})
    # notifyAll skips proxies for MTypes that stay home (no error, no delivery).
    h.to_proxies.clear()
    assert h.core.notify_all(sender, {"samp.mtype": "image.load.fits",
                                      "samp.params": {}}) == []
    h.service.process_outputs()
    assert h.to_proxies == []


def test_the_filter_refuses_exec_mtypes_that_a_wildcard_subscription_matches() -> None:
    h = Harness(share=("*",))
    sender = h.local("sender", {})
    h.mirror.sync_hub("B", [{"id": "c3", "metadata": {}, "subscriptions": {"*": {}}}])
    proxy = h.mirror.proxy("B", "c3")
    assert proxy is not None and proxy.subscriptions == {"*": {}}
    with pytest.raises(LocalProtocolError, match="may not cross"):
        h.core.notify(sender, proxy.public_id, {"samp.mtype": "script.aladin.send",
                                                "samp.params": {"script": "quit"}})
    assert proxy.public_id not in h.core.notify_all(
        sender, {"samp.mtype": "ds9.set", "samp.params": {"cmd": "exit"}})
    h.service.process_outputs()
    assert h.to_proxies == []


def test_proxies_do_not_relay_between_two_other_hubs() -> None:
    h = Harness()
    h.mirror.sync_hub("B", [{"id": "c1", "metadata": {}, "subscriptions": {"table.*": {}}}])
    h.mirror.sync_hub("C", [{"id": "c1", "metadata": {}, "subscriptions": {"table.*": {}}}])
    from_b, to_c = h.mirror.proxy("B", "c1"), h.mirror.proxy("C", "c1")
    assert from_b is not None and to_c is not None
    with pytest.raises(LocalProtocolError, match="not relayed"):
        h.core.notify(from_b.private_key, to_c.public_id,
                      {"samp.mtype": "table.load.votable", "samp.params": {}})


def test_local_client_list_excludes_proxies_and_the_bridge() -> None:
    h = Harness()
    before = h.changes
    h.local("topcat", {"table.load.votable": {}, "ds9.set": {}})
    h.mirror.sync_hub("B", [{"id": "c1", "metadata": {"samp.name": "far"},
                             "subscriptions": {}}])
    assert h.changes > before
    (entry,) = h.mirror.local_clients()
    assert entry["metadata"] == {"samp.name": "topcat"}
    assert entry["subscriptions"] == {"table.load.votable": {}}
    names = {r.name for r in h.core.registry}
    assert "sampflow-link (here)" in names and "far (proxy@B)" in names
    h.mirror.detach()
    assert {r.profile for r in h.core.registry} == {Profile.HUB, Profile.WEB}


def test_a_profile_is_added_once_and_never_for_the_hub_client() -> None:
    h = Harness()
    with pytest.raises(ValueError, match="already"):
        h.service.add_profile(h.mirror)
    with pytest.raises(ValueError, match="already"):
        h.service.add_profile(WebRecorder([]))

    class Hub(WebRecorder):
        profile = Profile.HUB

    with pytest.raises(ValueError, match="hub's own client"):
        h.service.add_profile(Hub([]))
    assert h.service.profile_for(Profile.LINK) is h.mirror
