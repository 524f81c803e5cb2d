"""The sans-I/O hub core (`sampflow.samp.hub.core.HubCore`): no sockets, no loop, no clock.

Each test drives the core through its verbs and checks what `take_outputs` hands the
transport: `Delivery`, `SyncResponse` and `ClientGone` objects.
"""

from __future__ import annotations

from typing import Any

import pytest

from sampflow.samp.errors import LocalProtocolError
from sampflow.samp.hub.core import ClientGone, Delivery, HubCore, SyncResponse
from sampflow.samp.hub.registry import ClientRecord, Profile


def msg(mtype: str, **params: Any) -> dict[str, Any]:
    return {"samp.mtype": mtype, "samp.params": dict(params)}


OK = {"samp.status": "samp.ok", "samp.result": {"x": "1"}}


class Hub:
    """A `HubCore` plus conveniences: register callable clients, collect outputs."""

    def __init__(self, **kwargs: Any) -> None:
        self.core = HubCore(**kwargs)

    def client(self, subscriptions: dict[str, Any] | None = None, *, name: str | None = None,
               callable_: bool = True) -> ClientRecord:
        record = self.core.register(Profile.STANDARD)
        if callable_:
            self.core.set_callback(record.private_key, f"http://127.0.0.1:1/{record.public_id}")
        if name is not None:
            self.core.declare_metadata(record.private_key, {"samp.name": name})
        if subscriptions is not None:
            self.core.declare_subscriptions(record.private_key, subscriptions)
        self.core.take_outputs()
        return record

    def out(self) -> list[Any]:
        return self.core.take_outputs()

    def deliveries(self, to: ClientRecord | None = None) -> list[Delivery]:
        return [o for o in self.out()
                if isinstance(o, Delivery) and (to is None or o.recipient is to)]


@pytest.fixture
def hub() -> Hub:
    return Hub()


# -- registration ------------------------------------------------------------------------------

def test_register_gives_fresh_ids_and_the_registration_map(hub: Hub) -> None:
    a, b = hub.client(), hub.client()
    assert a.public_id != b.public_id and a.private_key != b.private_key
    assert len(a.private_key) >= 16  # from secrets, not a counter
    reg = hub.core.registration_map(a)
    assert reg == {"samp.private-key": a.private_key, "samp.hub-id": hub.core.hub.public_id,
                   "samp.self-id": a.public_id}


def test_registered_clients_exclude_the_caller_and_include_the_hub(hub: Hub) -> None:
    a, b = hub.client(), hub.client()
    ids = hub.core.get_registered_clients(a.private_key)
    assert set(ids) == {hub.core.hub.public_id, b.public_id}


def test_unregister_removes_and_reports_client_gone(hub: Hub) -> None:
    a, b = hub.client(), hub.client()
    hub.core.unregister(a.private_key)
    outputs = hub.out()
    assert ClientGone(a, "unregistered") in outputs
    assert a.public_id not in hub.core.get_registered_clients(b.private_key)
    with pytest.raises(LocalProtocolError):
        hub.core.unregister(a.private_key)  # the key is dead now


@pytest.mark.parametrize("verb,args", [
    ("unregister", ()),
    ("declare_metadata", ({},)),
    ("get_metadata", ("hub",)),
    ("declare_subscriptions", ({},)),
    ("get_subscriptions", ("hub",)),
    ("get_registered_clients", ()),
    ("get_subscribed_clients", ("samp.app.ping",)),
    ("notify", ("hub", msg("samp.app.ping"))),
    ("notify_all", (msg("samp.app.ping"),)),
    ("call", ("hub", "tag", msg("samp.app.ping"))),
    ("call_all", ("tag", msg("samp.app.ping"))),
    ("call_and_wait", ("hub", msg("samp.app.ping"))),
    ("reply", ("m1", OK)),
    ("set_callback", ("http://127.0.0.1:1/",)),
])
@pytest.mark.parametrize("key", ["not-a-key", None, 42, ""])
def test_every_verb_refuses_an_unknown_private_key(hub: Hub, verb: str, args: tuple,
                                                   key: object) -> None:
    hub.client({"*": {}})
    with pytest.raises(LocalProtocolError):
        getattr(hub.core, verb)(key, *args)
    assert hub.out() == []


# -- metadata and subscriptions ----------------------------------------------------------------

def test_metadata_and_subscriptions_are_kept_exactly_as_given(hub: Hub) -> None:
    a, b = hub.client(), hub.client()
    meta = {"samp.name": "A", "x.nested": {"k": ["1", "2"]}, "x.int": 3}
    subs = {"table.load.votable": {"x.note": "as given"}, "image.*": {}}
    hub.core.declare_metadata(a.private_key, meta)
    hub.core.declare_subscriptions(a.private_key, subs)
    assert hub.core.get_metadata(b.private_key, a.public_id) == meta
    assert hub.core.get_subscriptions(b.private_key, a.public_id) == subs
    assert hub.core.get_metadata(b.private_key, b.public_id) == {}


def test_hub_has_its_own_metadata_and_subscribes_to_ping(hub: Hub) -> None:
    a = hub.client()
    hub_id = hub.core.hub.public_id
    assert hub.core.get_metadata(a.private_key, hub_id)["samp.name"]
    assert "samp.app.ping" in hub.core.get_subscriptions(a.private_key, hub_id)


@pytest.mark.parametrize("bad", [{"tab*": {}}, {"table.": {}}, {".x": {}}, {"a b": {}},
                                 {"*.load": {}}, {"": {}}])
def test_invalid_subscription_patterns_are_refused(hub: Hub, bad: dict) -> None:
    a = hub.client()
    with pytest.raises(LocalProtocolError):
        hub.core.declare_subscriptions(a.private_key, bad)


@pytest.mark.parametrize("bad", ["not a map", ["a"], 1])
def test_metadata_and_subscriptions_must_be_maps(hub: Hub, bad: object) -> None:
    a = hub.client()
    with pytest.raises(LocalProtocolError):
        hub.core.declare_metadata(a.private_key, bad)
    with pytest.raises(LocalProtocolError):
        hub.core.declare_subscriptions(a.private_key, bad)


def test_unknown_client_id_is_refused(hub: Hub) -> None:
    a = hub.client()
    with pytest.raises(LocalProtocolError):
        hub.core.get_metadata(a.private_key, "c999")
    with pytest.raises(LocalProtocolError):
        hub.core.get_subscriptions(a.private_key, ["c1"])


@pytest.mark.parametrize("pattern,mtype,matches", [
    ("table.*", "table.load.votable", True),
    ("table.*", "table.highlight.row", True),
    ("table.*", "tablefoo.x", False),
    ("table.*", "table", False),
    ("table.load.*", "table.load.fits", True),
    ("table.load.*", "table.loadx.fits", False),
    ("*", "samp.app.ping", True),
    ("*", "x", True),
    ("image.load.fits", "image.load.fits", True),
    ("image.load.fits", "image.load.fitsx", False),
    ("image.load.fits", "image.load", False),
])
def test_wildcard_subscriptions_match_on_atom_boundaries(hub: Hub, pattern: str, mtype: str,
                                                         matches: bool) -> None:
    a, b = hub.client(), hub.client({pattern: {"x.p": pattern}})
    subscribed = hub.core.get_subscribed_clients(a.private_key, mtype)
    assert (b.public_id in subscribed) is matches
    if matches:
        assert subscribed[b.public_id] == {"x.p": pattern}
        hub.core.notify(a.private_key, b.public_id, msg(mtype))
        assert len(hub.deliveries(b)) == 1
    else:
        with pytest.raises(LocalProtocolError):
            hub.core.notify(a.private_key, b.public_id, msg(mtype))
        assert hub.core.notify_all(a.private_key, msg(mtype)) == []
        assert hub.deliveries(b) == []


def test_exact_subscription_annotation_wins_over_wildcard(hub: Hub) -> None:
    a = hub.client()
    b = hub.client({"*": {"which": "star"}, "table.*": {"which": "table"},
                    "table.load.votable": {"which": "exact"}})
    assert hub.core.get_subscribed_clients(a.private_key, "table.load.votable") == {
        b.public_id: {"which": "exact"}}


def test_subscribed_clients_exclude_the_caller(hub: Hub) -> None:
    a = hub.client({"x.y": {}})
    b = hub.client({"x.*": {}})
    assert hub.core.get_subscribed_clients(a.private_key, "x.y") == {b.public_id: {}}
    assert hub.core.get_subscribed_clients(b.private_key, "x.y") == {a.public_id: {}}


def test_resubscribing_replaces_old_subscriptions(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    assert b.public_id in hub.core.get_subscribed_clients(a.private_key, "x.y")
    hub.core.declare_subscriptions(b.private_key, {"z.*": {}})
    hub.out()
    assert hub.core.get_subscribed_clients(a.private_key, "x.y") == {}
    assert b.public_id in hub.core.get_subscribed_clients(a.private_key, "z.q")


# -- notifications -----------------------------------------------------------------------------

def test_notify_routes_the_message_exactly_as_sent(hub: Hub) -> None:
    a, b, c = hub.client(), hub.client({"x.y": {}}), hub.client({"x.y": {}})
    message = {"samp.mtype": "x.y", "samp.params": {"n": "1", "l": ["a", {"b": "c"}]},
               "x.extra": "kept"}
    hub.core.notify(a.private_key, b.public_id, message)
    out = hub.out()
    assert out == [Delivery(b, "receiveNotification", (a.public_id, message))]
    assert out[0].args[1] == {"samp.mtype": "x.y",
                              "samp.params": {"n": "1", "l": ["a", {"b": "c"}]},
                              "x.extra": "kept"}  # nothing injected
    assert c not in [o.recipient for o in out]


def test_notify_to_an_unsubscribed_client_is_refused(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"other.mtype": {}})
    with pytest.raises(LocalProtocolError, match="not subscribed"):
        hub.core.notify(a.private_key, b.public_id, msg("x.y"))
    assert hub.out() == []


def test_notify_to_an_unknown_or_uncallable_client_is_refused(hub: Hub) -> None:
    a = hub.client()
    b = hub.client({"x.y": {}}, callable_=False)
    with pytest.raises(LocalProtocolError):
        hub.core.notify(a.private_key, "c999", msg("x.y"))
    with pytest.raises(LocalProtocolError):
        hub.core.notify(a.private_key, b.public_id, msg("x.y"))
    assert hub.out() == []


@pytest.mark.parametrize("bad", [
    "not a map", ["x"], {}, {"samp.mtype": ""}, {"samp.mtype": 3},
    {"samp.mtype": "x.y", "samp.params": ["not", "a", "map"]},
])
def test_malformed_messages_are_refused(hub: Hub, bad: object) -> None:
    a, b = hub.client(), hub.client({"*": {}})
    for verb, args in (("notify", (b.public_id, bad)), ("notify_all", (bad,)),
                       ("call", (b.public_id, "t", bad)), ("call_all", ("t", bad)),
                       ("call_and_wait", (b.public_id, bad))):
        with pytest.raises(LocalProtocolError):
            getattr(hub.core, verb)(a.private_key, *args)
    assert hub.out() == []
    assert hub.core.pending == {}


def test_notify_all_reaches_subscribed_callable_clients_but_not_the_sender(hub: Hub) -> None:
    a = hub.client({"x.*": {}})
    b = hub.client({"x.y": {}})
    c = hub.client({"*": {}})
    hub.client({"other": {}})
    hub.client({"x.y": {}}, callable_=False)
    ids = hub.core.notify_all(a.private_key, msg("x.y"))
    assert sorted(ids) == sorted([b.public_id, c.public_id])
    assert sorted(d.recipient.public_id for d in hub.deliveries()) == sorted(ids)


def test_a_client_may_notify_itself(hub: Hub) -> None:
    a = hub.client({"x.y": {}})
    hub.core.notify(a.private_key, a.public_id, msg("x.y"))
    assert [d.recipient for d in hub.deliveries()] == [a]


def test_outputs_keep_the_order_sent(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"seq": {}})
    for i in range(50):
        hub.core.notify(a.private_key, b.public_id, msg("seq", i=str(i)))
    got = [d.args[1]["samp.params"]["i"] for d in hub.deliveries(b)]
    assert got == [str(i) for i in range(50)]


def test_take_outputs_clears(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    hub.core.notify(a.private_key, b.public_id, msg("x.y"))
    assert len(hub.core.take_outputs()) == 1
    assert hub.core.take_outputs() == []


# -- calls, replies and pending calls ----------------------------------------------------------

def test_call_and_reply_route_the_response_to_the_caller(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    msg_id = hub.core.call(a.private_key, b.public_id, "tag-1", msg("x.y"))
    assert hub.out() == [Delivery(b, "receiveCall", (a.public_id, msg_id, msg("x.y")))]
    assert msg_id in hub.core.pending
    hub.core.reply(b.private_key, msg_id, OK)
    assert hub.out() == [Delivery(a, "receiveResponse", (b.public_id, "tag-1", OK))]
    assert hub.core.pending == {}
    with pytest.raises(LocalProtocolError, match="no pending call"):
        hub.core.reply(b.private_key, msg_id, OK)  # only one reply per msg-id


def test_msg_ids_are_unique_and_unguessable(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    ids = [hub.core.call(a.private_key, b.public_id, "t", msg("x.y")) for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(len(i) >= 12 for i in ids)


def test_call_tag_must_be_a_string(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    with pytest.raises(LocalProtocolError):
        hub.core.call(a.private_key, b.public_id, 7, msg("x.y"))
    with pytest.raises(LocalProtocolError):
        hub.core.call_all(a.private_key, ["t"], msg("x.y"))


def test_reply_must_be_a_map(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    msg_id = hub.core.call(a.private_key, b.public_id, "t", msg("x.y"))
    hub.out()
    with pytest.raises(LocalProtocolError):
        hub.core.reply(b.private_key, msg_id, "samp.ok")
    assert msg_id in hub.core.pending  # a bad reply does not consume the call
    hub.core.reply(b.private_key, msg_id, OK)
    assert len(hub.deliveries(a)) == 1


def test_reply_from_the_wrong_client_is_refused_and_the_right_one_still_arrives(hub: Hub) -> None:
    a, b, intruder = hub.client(), hub.client({"x.y": {}}), hub.client({"x.y": {}})
    msg_id = hub.core.call(a.private_key, b.public_id, "tag", msg("x.y"))
    hub.out()
    with pytest.raises(LocalProtocolError, match="not sent to"):
        hub.core.reply(intruder.private_key, msg_id, {"samp.status": "samp.ok",
                                                      "samp.result": {"forged": "1"}})
    assert hub.out() == []
    with pytest.raises(LocalProtocolError):
        hub.core.reply(a.private_key, msg_id, OK)  # not even the caller may answer
    hub.core.reply(b.private_key, msg_id, OK)
    assert hub.out() == [Delivery(a, "receiveResponse", (b.public_id, "tag", OK))]


def test_wrong_client_cannot_answer_a_call_and_wait_either(hub: Hub) -> None:
    a, b, intruder = hub.client(), hub.client({"x.y": {}}), hub.client()
    msg_id = hub.core.call_and_wait(a.private_key, b.public_id, msg("x.y"))
    hub.out()
    with pytest.raises(LocalProtocolError):
        hub.core.reply(intruder.private_key, msg_id, OK)
    hub.core.reply(b.private_key, msg_id, OK)
    assert hub.out() == [SyncResponse(msg_id, OK)]


def test_call_all_gives_one_msg_id_per_recipient(hub: Hub) -> None:
    a = hub.client({"x.y": {}})
    b, c = hub.client({"x.y": {}}), hub.client({"x.*": {}})
    hub.client({"q": {}})
    ids = hub.core.call_all(a.private_key, "tag", msg("x.y"))
    assert set(ids) == {b.public_id, c.public_id}
    assert len(set(ids.values())) == 2
    calls = hub.deliveries()
    assert {(d.recipient.public_id, d.args[1]) for d in calls} == set(ids.items())
    hub.core.reply(c.private_key, ids[c.public_id], OK)
    hub.core.reply(b.private_key, ids[b.public_id], OK)
    responses = hub.deliveries(a)
    assert [(d.method, d.args[0]) for d in responses] == [
        ("receiveResponse", c.public_id), ("receiveResponse", b.public_id)]


def test_call_and_wait_ends_with_a_sync_response(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    msg_id = hub.core.call_and_wait(a.private_key, b.public_id, msg("x.y"))
    assert hub.out() == [Delivery(b, "receiveCall", (a.public_id, msg_id, msg("x.y")))]
    hub.core.reply(b.private_key, msg_id, OK)
    assert hub.out() == [SyncResponse(msg_id, OK)]


def test_expired_call_drops_its_recipients_late_reply_quietly_once(hub: Hub) -> None:
    """Issue 11: a reply after its call timed out is not an error (astropy's hub drops it);
    only its recipient may send it, and only once."""
    a, b, c = hub.client(), hub.client({"x.y": {}}), hub.client()
    msg_id = hub.core.call_and_wait(a.private_key, b.public_id, msg("x.y"))
    hub.out()
    assert hub.core.expire(msg_id) is True
    assert hub.core.expire(msg_id) is False
    with pytest.raises(LocalProtocolError):
        hub.core.reply(c.private_key, msg_id, OK)  # not its recipient
    hub.core.reply(b.private_key, msg_id, OK)       # dropped, no fault
    assert hub.out() == []
    with pytest.raises(LocalProtocolError, match="no pending call"):
        hub.core.reply(b.private_key, msg_id, OK)  # one reply per msg-id, even late


def test_call_to_an_unsubscribed_client_is_refused_and_nothing_is_pending(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    for verb, args in (("call", (b.public_id, "t", msg("no.sub"))),
                       ("call_and_wait", (b.public_id, msg("no.sub")))):
        with pytest.raises(LocalProtocolError):
            getattr(hub.core, verb)(a.private_key, *args)
    assert hub.core.pending == {} and hub.out() == []


def test_recipient_leaving_answers_its_pending_callers_with_an_error(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    async_id = hub.core.call(a.private_key, b.public_id, "tag", msg("x.y"))
    sync_id = hub.core.call_and_wait(a.private_key, b.public_id, msg("x.y"))
    hub.out()
    hub.core.unregister(b.private_key)
    out = hub.out()
    sync = [o for o in out if isinstance(o, SyncResponse)]
    assert [s.msg_id for s in sync] == [sync_id]
    assert sync[0].response["samp.status"] == "samp.error"
    assert sync[0].response["samp.error"]["samp.errortxt"]
    responses = [o for o in out if isinstance(o, Delivery) and o.method == "receiveResponse"]
    assert len(responses) == 1
    responder, tag, response = responses[0].args
    assert (responses[0].recipient, responder, tag) == (a, b.public_id, "tag")
    assert response["samp.status"] == "samp.error"
    assert ClientGone(b, "unregistered") in out
    assert hub.core.pending == {}
    assert async_id not in hub.core.pending


def test_caller_leaving_drops_its_pending_calls(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    msg_id = hub.core.call(a.private_key, b.public_id, "tag", msg("x.y"))
    hub.out()
    hub.core.unregister(a.private_key)
    hub.out()
    assert msg_id not in hub.core.pending
    with pytest.raises(LocalProtocolError):
        hub.core.reply(b.private_key, msg_id, OK)
    assert not [o for o in hub.out() if isinstance(o, Delivery) and o.recipient is a]


# -- the hub as a client -------------------------------------------------------------------------

def test_hub_answers_samp_app_ping(hub: Hub) -> None:
    a = hub.client()
    hub_id = hub.core.hub.public_id
    hub.core.call(a.private_key, hub_id, "ping-tag", msg("samp.app.ping"))
    [d] = hub.out()
    assert (d.recipient, d.method, d.args[0], d.args[1]) == (a, "receiveResponse", hub_id,
                                                            "ping-tag")
    assert d.args[2]["samp.status"] == "samp.ok"
    msg_id = hub.core.call_and_wait(a.private_key, hub_id, msg("samp.app.ping"))
    [s] = hub.out()
    assert s == SyncResponse(msg_id, s.response) and s.response["samp.status"] == "samp.ok"
    hub.core.notify(a.private_key, hub_id, msg("samp.app.ping"))
    assert hub.out() == []  # a notification to the hub is accepted and dropped
    assert hub.core.pending == {}


def test_hub_refuses_mtypes_it_is_not_subscribed_to(hub: Hub) -> None:
    a = hub.client()
    with pytest.raises(LocalProtocolError):
        hub.core.call(a.private_key, hub.core.hub.public_id, "t", msg("table.load.votable"))


def test_call_all_ping_includes_the_hub(hub: Hub) -> None:
    a = hub.client()
    ids = hub.core.call_all(a.private_key, "t", msg("samp.app.ping"))
    assert hub.core.hub.public_id in ids
    responses = hub.deliveries(a)
    assert any(d.args[0] == hub.core.hub.public_id and d.args[2]["samp.status"] == "samp.ok"
               for d in responses)


# -- administrative events ---------------------------------------------------------------------

def events(outputs: list[Any]) -> list[tuple[str, str, dict]]:
    return [(o.recipient.public_id, o.args[1]["samp.mtype"], o.args[1]["samp.params"])
            for o in outputs
            if isinstance(o, Delivery) and o.method == "receiveNotification"]


def test_hub_events_go_to_subscribed_clients_only(hub: Hub) -> None:
    watcher = hub.client({"samp.hub.event.*": {}})
    star = hub.client({"*": {}})
    register_only = hub.client({"samp.hub.event.register": {}})
    hub.client({"other": {}})
    hub.client({"samp.hub.event.*": {}}, callable_=False)
    everyone_watching = {watcher.public_id, star.public_id}

    c = hub.core.register(Profile.STANDARD)
    got = events(hub.out())
    assert {(r, m) for r, m, _ in got} == {(w, "samp.hub.event.register")
                                          for w in everyone_watching | {register_only.public_id}}
    assert all(p == {"id": c.public_id} for _, _, p in got)

    hub.core.declare_metadata(c.private_key, {"samp.name": "C"})
    got = events(hub.out())
    assert {r for r, m, _ in got} == everyone_watching
    assert all(m == "samp.hub.event.metadata" and p == {"id": c.public_id,
                                                        "metadata": {"samp.name": "C"}}
               for _, m, p in got)

    hub.core.declare_subscriptions(c.private_key, {"a.b": {"x": "y"}})
    got = events(hub.out())
    assert {r for r, m, _ in got} == everyone_watching
    assert all(m == "samp.hub.event.subscriptions"
               and p == {"id": c.public_id, "subscriptions": {"a.b": {"x": "y"}}}
               for _, m, p in got)

    hub.core.unregister(c.private_key)
    got = events(hub.out())
    assert {r for r, m, _ in got} == everyone_watching
    assert all(m == "samp.hub.event.unregister" and p == {"id": c.public_id} for _, m, p in got)

    hub.core.shutdown()
    got = events(hub.out())
    assert {r for r, m, _ in got} == everyone_watching
    assert all(m == "samp.hub.event.shutdown" for _, m, _ in got)
    # Every event comes from the hub's own public id.


def test_hub_events_are_sent_by_the_hub(hub: Hub) -> None:
    watcher = hub.client({"samp.hub.event.register": {}})
    hub.core.register(Profile.STANDARD)
    [d] = hub.out()
    assert d.recipient is watcher and d.args[0] == hub.core.hub.public_id


def test_remove_client_can_send_samp_hub_disconnect(hub: Hub) -> None:
    a = hub.client({"samp.hub.disconnect": {}})
    watcher = hub.client({"samp.hub.event.unregister": {}})
    hub.core.remove_client(a.public_id, "too noisy", tell_client=True)
    out = hub.out()
    got = events(out)
    assert (a.public_id, "samp.hub.disconnect", {"reason": "too noisy"}) in got
    assert (watcher.public_id, "samp.hub.event.unregister", {"id": a.public_id}) in got
    assert ClientGone(a, "too noisy") in out
    hub.core.remove_client(a.public_id, "again")  # already gone: a no-op
    hub.core.remove_client(hub.core.hub.public_id, "never")  # the hub cannot be removed
    assert hub.out() == []


# -- failures reported by the transport ---------------------------------------------------------

def test_dead_recipient_is_unregistered_and_the_others_are_told(hub: Hub) -> None:
    a = hub.client({"samp.hub.event.unregister": {}})
    dead = hub.client({"x.y": {}})
    sync_id = hub.core.call_and_wait(a.private_key, dead.public_id, msg("x.y"))
    async_id = hub.core.call(a.private_key, dead.public_id, "tag", msg("x.y"))
    [first, _] = hub.out()
    hub.core.delivery_failed(first, "connection refused", dead=True)
    out = hub.out()
    assert [o for o in out if isinstance(o, ClientGone)][0].client is dead
    assert (a.public_id, "samp.hub.event.unregister", {"id": dead.public_id}) in events(out)
    sync = [o for o in out if isinstance(o, SyncResponse)]
    assert [s.msg_id for s in sync] == [sync_id]
    assert sync[0].response["samp.status"] == "samp.error"
    responses = [o for o in out if isinstance(o, Delivery) and o.method == "receiveResponse"]
    assert [(r.recipient, r.args[1], r.args[2]["samp.status"]) for r in responses] == [
        (a, "tag", "samp.error")]
    assert dead.public_id not in hub.core.get_registered_clients(a.private_key)
    assert async_id not in hub.core.pending and hub.core.pending == {}
    with pytest.raises(LocalProtocolError):
        hub.core.notify(a.private_key, dead.public_id, msg("x.y"))


def test_one_off_failed_call_answers_the_caller_and_keeps_the_client(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    msg_id = hub.core.call(a.private_key, b.public_id, "tag", msg("x.y"))
    [delivery] = hub.out()
    hub.core.delivery_failed(delivery, "timed out", dead=False)
    [response] = hub.out()
    assert response.recipient is a and response.args[1] == "tag"
    assert response.args[2]["samp.status"] == "samp.error"
    assert msg_id not in hub.core.pending
    assert b.public_id in hub.core.get_registered_clients(a.private_key)


def test_failed_notification_is_forgotten(hub: Hub) -> None:
    a, b = hub.client(), hub.client({"x.y": {}})
    hub.core.notify(a.private_key, b.public_id, msg("x.y"))
    [delivery] = hub.out()
    hub.core.delivery_failed(delivery, "fault", dead=False)
    assert hub.out() == []


# -- message filter and observers ---------------------------------------------------------------

def test_message_filter_can_refuse_a_recipient() -> None:
    hub = Hub(message_filter=lambda s, r, m: "no" if r.name == "private" else None)
    a = hub.client()
    p = hub.client({"x.y": {}}, name="private")
    q = hub.client({"x.y": {}}, name="public")
    with pytest.raises(LocalProtocolError, match="no"):
        hub.core.notify(a.private_key, p.public_id, msg("x.y"))
    assert hub.core.notify_all(a.private_key, msg("x.y")) == [q.public_id]


def test_observers_see_accepted_messages_and_responses(hub: Hub) -> None:
    seen: list[tuple[str, dict]] = []
    hub.core.message_observers.append(lambda sender, m: seen.append((sender.public_id, m)))
    a, b = hub.client(), hub.client({"x.y": {}})
    msg_id = hub.core.call(a.private_key, b.public_id, "t", msg("x.y"))
    hub.core.reply(b.private_key, msg_id, OK)
    with pytest.raises(LocalProtocolError):
        hub.core.notify(a.private_key, b.public_id, msg("refused"))
    assert seen == [(a.public_id, msg("x.y")), (b.public_id, OK)]
