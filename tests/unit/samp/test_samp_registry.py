"""The hub's client registry (`sampflow.samp.hub.registry.Registry`): no I/O."""

from __future__ import annotations

import pytest

from sampflow.samp.errors import LocalProtocolError
from sampflow.samp.hub.registry import Profile, Registry


def test_new_clients_are_indexed_both_ways() -> None:
    reg = Registry()
    a = reg.new_client(Profile.STANDARD)
    b = reg.new_client(Profile.WEB)
    assert reg.by_key(a.private_key) is a and reg.by_id(b.public_id) is b
    assert reg.get_id(a.public_id) is a and reg.get_id("nope") is None
    assert len(reg) == 2 and list(reg) == [a, b]
    assert a.public_id != b.public_id and a.private_key != b.private_key


@pytest.mark.parametrize("key", ["", "x", None, 1, ["k"]])
def test_unknown_keys_and_ids_raise(key: object) -> None:
    reg = Registry()
    reg.new_client(Profile.STANDARD)
    with pytest.raises(LocalProtocolError):
        reg.by_key(key)
    with pytest.raises(LocalProtocolError):
        reg.by_id(key)


def test_remove_is_idempotent_and_ids_are_not_reused() -> None:
    reg = Registry()
    a = reg.new_client(Profile.STANDARD)
    reg.remove(a)
    reg.remove(a)
    with pytest.raises(LocalProtocolError):
        reg.by_key(a.private_key)
    b = reg.new_client(Profile.STANDARD)
    assert b.public_id != a.public_id


def test_subscribed_lookup_follows_changes() -> None:
    reg = Registry()
    a = reg.new_client(Profile.STANDARD)
    b = reg.new_client(Profile.STANDARD)
    reg.set_subscriptions(a, {"table.*": {"n": "a"}})
    assert reg.subscribed("table.load.votable") == ((a, {"n": "a"}),)
    reg.set_subscriptions(b, {"*": {}})  # the cached answer must not go stale
    assert [r for r, _ in reg.subscribed("table.load.votable")] == [a, b]
    reg.set_subscriptions(a, {})
    assert [r for r, _ in reg.subscribed("table.load.votable")] == [b]
    reg.remove(b)
    assert reg.subscribed("table.load.votable") == ()
    assert reg.subscribed("tablefoo.x") == ()


def test_bad_patterns_leave_subscriptions_unchanged() -> None:
    reg = Registry()
    a = reg.new_client(Profile.STANDARD)
    reg.set_subscriptions(a, {"x.y": {}})
    with pytest.raises(LocalProtocolError):
        reg.set_subscriptions(a, {"ok.one": {}, "bad*": {}})
    assert a.subscriptions == {"x.y": {}}


def test_record_name_and_callability() -> None:
    reg = Registry()
    a = reg.new_client(Profile.STANDARD)
    assert a.name == a.public_id and not a.is_callable
    a.metadata = {"samp.name": "topcat"}
    a.callback = "http://127.0.0.1:1/"
    assert a.name == "topcat" and a.is_callable
    assert reg.new_client(Profile.HUB, public_id="hub").is_callable
