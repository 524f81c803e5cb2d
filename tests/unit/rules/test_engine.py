"""Engine behaviour against the hub core wired in memory: modes, timing gates, replies,
errors, loops."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest

from sampflow.rules.engine import Engine
from sampflow.rules.errors import RulesError
from sampflow.rules.loader import load

from .waiting import until

PING = {"samp.mtype": "test.go", "samp.params": {}}


def msg(mtype: str = "test.go", **params: object) -> dict:
    return {"samp.mtype": mtype, "samp.params": dict(params)}


def overlapping(records) -> bool:
    """Whether any two firings ran at the same time (from their start and duration)."""
    spans = sorted((datetime.fromisoformat(r.time).timestamp(),
                    datetime.fromisoformat(r.time).timestamp() + r.duration_ms / 1000)
                   for r in records)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


async def burst(tool, engine, messages, started: list[int] | None = None) -> None:
    """Notify `engine` of each message, each handed to the rules before the next is sent;
    with `started`, also wait after message ``i`` until the engine has started
    ``started[i]`` runs in all."""
    for i, m in enumerate(messages):
        await tool.notify(engine.client.public_id, m)
        await tool.hub.delivered()
        if started is not None:
            n = started[i]
            await until(lambda n=n: engine.firings >= n, what=f"{n} runs")


MODE_RULE = """
rules:
  - name: slow
    on: {{mtype: test.go}}
    mode: {mode}
    max: {max}
    do:
      - log: "start {{{{ params.n }}}}"
      - delay: 200ms
"""


@pytest.mark.parametrize("mode,max_,started,expected", [
    ("single", 10, [1, 1, 1], ["ok"]),
    ("restart", 10, [1, 2, 3], ["cancelled", "cancelled", "ok"]),
    ("queued", 2, [1, 1, 1], ["ok", "ok"]),
    ("parallel", 2, [1, 2, 2], ["ok", "ok"]),
])
async def test_run_modes(setup, mode, max_, started, expected) -> None:
    eng = await setup.engine(MODE_RULE.format(mode=mode, max=max_))
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg(n=str(i)) for i in range(3)], started)
    await setup.hub.settle()
    await eng.wait_idle()
    assert sorted(setup.statuses()) == sorted(expected)
    runs = [r for r in setup.records if r.status == "ok"]
    if mode == "queued":
        assert not overlapping(runs)  # serialised
    if mode == "parallel":
        assert overlapping(runs)


async def test_debounce_runs_once_with_the_last_event(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: d
            on: {mtype: test.go}
            debounce: 150ms
            do: [{log: "n={{ params.n }}"}]
    """)
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg(n=str(i)) for i in range(5)])
    await setup.hub.settle()
    await eng.wait_idle()
    assert setup.statuses() == ["ok"]
    assert setup.records[0].steps[0]["message"] == "n=4"


async def test_throttle_drops_inside_window(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: t
            on: {mtype: test.go}
            throttle: 300ms
            mode: parallel
            do: [{log: hi}]
    """)
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg() for _ in range(5)])
    await setup.hub.settle()
    await eng.wait_idle()
    assert setup.statuses() == ["ok"]
    # Calls until one runs: those inside the window are answered "not run: throttled".
    answers = []

    async def runs() -> bool:
        answers.append(await tool.call_and_wait(eng.client.public_id, msg(), 5))
        return answers[-1]["samp.status"] == "samp.ok"
    await until(runs, what="a firing after the throttle window")
    await setup.hub.settle()
    assert setup.statuses() == ["ok", "ok"]
    assert all(a["samp.status"] == "samp.warning" and "throttled" in a["samp.error"][
        "samp.errortxt"] for a in answers[:-1])


async def test_key_serialises_per_key_and_parallelises_keys(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: k
            on: {mtype: test.go}
            key: "{{ params.k }}"
            do:
              - log: "{{ params.k }}{{ params.n }} start"
              - delay: 200ms
              - log: "{{ params.k }}{{ params.n }} end"
    """)
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg(k="a", n="1"), msg(k="a", n="2"), msg(k="b", n="1")])
    await setup.hub.settle()
    await eng.wait_idle()
    assert setup.statuses() == ["ok", "ok", "ok"]
    ends = [r.steps[-1]["message"] for r in setup.records]
    assert ends.index("a1 end") < ends.index("a2 end")
    assert ends.index("b1 end") < ends.index("a2 end")
    by_key = {r.steps[-1]["message"][:2]: r for r in setup.records}
    assert not overlapping([by_key["a1"], by_key["a2"]])  # one key: one after the other
    assert overlapping([by_key["a1"], by_key["b1"]])  # different keys: side by side


async def test_calls_get_replies(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: answer
            on: {mtype: test.answer}
            do:
              - reply: {result: {value: "{{ params.x|int * 2 }}"}}
          - name: plain
            on: {mtype: test.plain}
            do: [{log: hi}]
          - name: broken
            on: {mtype: test.broken}
            do: [{notify: {to: NoSuchTool, mtype: x.y, hold: 0}}]
          - name: busy
            on: {mtype: test.busy}
            do: [{delay: 300ms}]
    """)
    tool = setup.hub.client("tool")
    eid = eng.client.public_id
    r = await tool.call_and_wait(eid, msg("test.answer", x="21"), 5)
    assert r == {"samp.status": "samp.ok", "samp.result": {"value": "42"}}
    assert (await tool.call_and_wait(eid, msg("test.plain"), 5))["samp.status"] == "samp.ok"
    r = await tool.call_and_wait(eid, msg("test.broken"), 5)
    assert r["samp.status"] == "samp.error"
    assert "broken" in r["samp.error"]["samp.errortxt"]
    assert "NoSuchTool" in r["samp.error"]["samp.errortxt"]
    started = eng.firings
    first = asyncio.create_task(tool.call_and_wait(eid, msg("test.busy"), 5))
    await until(lambda: eng.firings > started, what="the first busy run to start")
    second = await tool.call_and_wait(eid, msg("test.busy"), 5)
    assert second["samp.status"] == "samp.warning"
    assert (await first)["samp.status"] == "samp.ok"


async def test_failing_rule_does_not_stop_others_and_options(setup) -> None:
    calls = {"n": 0}

    def flaky(message):
        calls["n"] += 1
        if calls["n"] < 3:
            return {"samp.status": "samp.error", "samp.error": {"samp.errortxt": "not yet"}}
        return {"samp.status": "samp.ok", "samp.result": {"v": "ok"}}

    setup.hub.client("flaky", {"test.q": {}}, respond=flaky)
    eng = await setup.engine("""
        rules:
          - name: fails
            on: {mtype: test.go}
            do:
              - notify: {to: Ghost, mtype: test.x, hold: 0}
              - log: never
          - name: keeps going
            on: {mtype: test.go}
            do:
              - notify: {to: Ghost, mtype: test.x, hold: 0}
                continue_on_error: true
              - call: {to: flaky, mtype: test.q, as: q}
                retry: {times: 3, delay: 10ms}
              - log: "{{ responses.q['samp.result'].v }} {{ result.v }}"
    """)
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg()])
    await setup.hub.settle()
    await eng.wait_idle()
    by_rule = {r.rule: r for r in setup.records}
    assert by_rule["fails"].status == "error"
    assert "Ghost" in by_rule["fails"].error and "do[0] notify" in by_rule["fails"].error
    assert by_rule["keeps going"].status == "ok"
    assert by_rule["keeps going"].steps[-1]["message"] == "ok ok"
    assert calls["n"] == 3


async def test_own_messages_are_ignored(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: r
            on: {mtype: test.go}
            do: [{log: hi}]
    """)
    await eng.handle_message("notification", eng.client.public_id, None, msg())
    await eng.wait_idle()
    assert setup.records == []


REBROADCAST = """
rules:
  - name: rebroadcast selections
    on: {{mtype: table.select.rowList{frm}}}
    do:
      - broadcast: table.select.rowList
        params: "{{{{ params }}}}"
        except: sender
"""


async def test_rebroadcast_reaches_each_other_client_once(setup) -> None:
    await setup.engine(REBROADCAST.format(frm=", from: topcat"), name="engine-a")
    await setup.engine(REBROADCAST.format(frm=", from: topcat"), name="engine-b")
    topcat = setup.hub.client("topcat", {"table.select.rowList": {}})
    aladin = setup.hub.client("Aladin", {"table.select.rowList": {}})
    await setup.hub.settle()
    params = {"table-id": "t1", "url": "file:///t.vot", "row-list": ["1", "5"]}
    # topcat sends to the engines only (as if Aladin had not been subscribed yet)
    for e in setup.engines:
        await topcat.notify(e.client.public_id, msg("table.select.rowList", **params))
    await setup.hub.settle()
    for e in setup.engines:
        await e.wait_idle()
    assert aladin.got("table.select.rowList") == [params, params]  # one per engine, no loop
    assert topcat.got("table.select.rowList") == []  # never back to the sender


async def test_two_engines_without_sender_filter_do_not_loop(setup) -> None:
    for name in ("engine-a", "engine-b"):
        await setup.engine(REBROADCAST.format(frm=""), name=name)
    topcat = setup.hub.client("topcat", {"table.select.rowList": {}})
    other = setup.hub.client("other", {"table.select.rowList": {}})
    await setup.hub.settle()
    params = {"row-list": ["3"], "table-id": "t"}
    await topcat.notify_all(msg("table.select.rowList", **params))
    await setup.hub.settle()
    for e in setup.engines:
        await e.wait_idle()
    await setup.hub.settle()
    total = sum(1 for s, r, k, m in setup.hub.log if m["samp.mtype"] == "table.select.rowList")
    assert total < 12  # finite, few deliveries
    assert 1 <= len(other.got("table.select.rowList")) <= 3
    # nothing was added to the message
    assert all(p == params for p in other.got("table.select.rowList"))


async def test_echo_from_a_mirroring_tool_is_dropped(setup) -> None:
    eng = await setup.engine(REBROADCAST.format(frm=""))
    mirror = setup.hub.client("mirror", {"table.select.rowList": {}})

    async def bounce(kind, sender, msg_id, m):  # a tool that re-broadcasts what it gets
        await mirror.notify_all(m)
    mirror.on_message = bounce
    tool = setup.hub.client("tool")
    await tool.notify(eng.client.public_id, msg("table.select.rowList", **{"row-list": ["1"]}))
    await setup.hub.settle()
    await eng.wait_idle()
    await setup.hub.settle()
    assert len(mirror.received) == 1
    assert len(setup.records) == 1


async def test_names_resolve_and_hub_event_triggers(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: greet ds9
            on: {registered: "saoimage*"}
            if: "subscribed(client.name, 'image.load.fits') or true"
            do:
              - notify: {to: "{{ client.name }}", mtype: test.hello,
                         params: {who: "{{ client.name }}"}}
          - name: bye
            on: {unregistered: "*"}
            do: [{log: "bye {{ client.name }}"}]
    """)
    ds9 = setup.hub.client("SAOImageDS9", {"test.hello": {}})
    await setup.hub.settle()
    await eng.wait_idle()
    assert ds9.got("test.hello") == [{"who": "SAOImageDS9"}]
    assert eng.directory.is_registered("ds9") is False
    assert eng.directory.is_registered("SAOImage*") is True
    assert eng.directory.is_subscribed("saoimageds9", "test.hello")
    setup.hub.unregister(ds9)
    await setup.hub.settle()
    await eng.wait_idle()
    assert setup.records[-1].steps[0]["message"] == "bye SAOImageDS9"


async def test_subscriptions_are_exactly_what_rules_need(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: a
            on: [{mtype: "table.*"}, {mtype: coord.pointAt.sky}, {every: 1h}]
            do: [{point_at: Aladin}]
    """)
    assert set(eng.subscriptions()) == {
        "table.*", "coord.pointAt.sky", "samp.app.ping", "table.load.votable",
        "table.load.fits", "samp.hub.event.register", "samp.hub.event.unregister",
        "samp.hub.event.metadata", "samp.hub.event.subscriptions", "samp.hub.event.shutdown",
        "samp.hub.disconnect"}
    assert set(eng.client.subscriptions) == set(eng.subscriptions())


async def test_trace_and_dry_run(setup, tmp_path) -> None:
    trace = tmp_path / "trace.jsonl"
    setup.hub.client("DS9", {"test.x": {}})
    eng = await setup.engine("""
        rules:
          - name: r
            on: {mtype: test.go}
            do: [{notify: {to: ds9, mtype: test.x, params: {n: "{{ params.n }}"}}}]
    """, dry_run=True, trace=str(trace))
    ds9 = next(c for c in setup.hub.clients.values() if c.name == "DS9")
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg(n="7")])
    await setup.hub.settle()
    await eng.wait_idle()
    assert ds9.got("test.x") == []  # nothing sent
    line = json.loads(trace.read_text().splitlines()[0])
    assert line["rule"] == "r" and line["status"] == "ok" and line["dry_run"]
    assert line["sent"][0]["to_name"] == "DS9" and line["sent"][0]["params"] == {"n": "7"}
    assert line["event"]["sender"] == "tool"
    assert "test.x -> DS9" in setup.records[0].one_line()


async def test_exec_is_opt_in(setup, tmp_path) -> None:
    text = f"""
        rules:
          - name: run
            on: {{mtype: test.go}}
            do:
              - exec: [python3, -c, "open('{tmp_path}/out', 'w').write('{{{{ params.n }}}}')"]
    """
    with pytest.raises(RulesError):
        Engine(load(text.replace("\n        ", "\n")))
    eng = await setup.engine(text, allow_exec=True)
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg(n="5")])
    await setup.hub.settle()
    await eng.wait_idle()
    assert setup.statuses() == ["ok"]
    assert (tmp_path / "out").read_text() == "5"


@pytest.mark.parametrize("profile,tells", [("web", True), ("standard", False)])
async def test_exec_never_runs_for_web_or_unknown_senders(setup, tmp_path, profile: str,
                                                          tells: bool) -> None:
    """A web page's message never runs a program; nor does one whose sender's profile the
    hub cannot tell. The subscription says the MType is not harmless, so a hub that
    restricts web clients refuses it even earlier."""
    setup.hub.tells_profiles = tells
    text = f"""
        rules:
          - name: run
            on: {{mtype: test.go}}
            if: "sender.profile != 'web'"
            do:
              - exec: [python3, -c, "open('{tmp_path}/out', 'w').write('x')"]
          - name: note
            on: {{mtype: test.go}}
            do: [{{log: "from a {{{{ sender.profile }}}} client"}}]
    """
    eng = await setup.engine(text, allow_exec=True)
    assert eng.subscriptions()["test.go"] == {"x-samp.mostly-harmless": "0"}
    page = setup.hub.client("page", profile=profile)
    await burst(page, eng, [msg(n="1")])
    await setup.hub.settle()
    await eng.wait_idle()
    assert not (tmp_path / "out").exists()
    notes = [s["message"] for r in setup.records for s in r.steps if s.get("action") == "log"]
    assert notes == [f"from a {profile if tells else None} client"]


async def test_timer_trigger(setup) -> None:
    await setup.engine("""
        rules:
          - name: tick
            on: {every: 100ms}
            mode: parallel
            do: [{log: "tick {{ timer.count }}"}]
    """)
    await until(lambda: len(setup.records) >= 2, what="two ticks")
    assert setup.records[0].steps[0]["message"] == "tick 1"


async def test_condition_gates_and_errors_are_contained(setup) -> None:
    eng = await setup.engine("""
        rules:
          - name: big rows only
            on: {mtype: table.highlight.row}
            mode: queued
            if:
              or:
                - "params.row|int > 100"
                - not: "params.row|int >= 0"
            do: [{log: "{{ params.row }}"}]
          - name: bad condition
            on: {mtype: table.highlight.row}
            if: "params.nothing.deeper > 1"
            do: [{log: never}]
    """)
    tool = setup.hub.client("tool")
    await burst(tool, eng, [msg("table.highlight.row", row="5"),
                            msg("table.highlight.row", row="500"),
                            msg("table.highlight.row", row="-1")])
    await setup.hub.settle()
    await eng.wait_idle()
    assert [r.steps[0]["message"] for r in setup.records] == ["500", "-1"]


async def test_a_file_fires_the_rule_that_watches_its_folder(setup, tmp_path) -> None:
    """File events reach only the rules whose trigger watches the folder they happened in."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    await setup.engine(f"""
        rules:
          - name: one
            on: {{files: "{one}", settle: 0s}}
            do: [{{log: "{{{{ file.name }}}} {{{{ file.event }}}}"}}]
          - name: two
            on: {{files: "{two}", settle: 0s}}
            do: [{{log: "{{{{ file.name }}}} {{{{ file.event }}}}"}}]
    """)

    def logged(rule: str) -> list[str]:
        return [r.steps[0]["message"] for r in setup.records if r.rule == rule]
    (one / "a.fits").write_bytes(b"1")
    await until(lambda: logged("one"), what="rule one to fire")
    (two / "b.fits").write_bytes(b"1")  # also a barrier: whatever a.fits did has been done
    await until(lambda: logged("two"), what="rule two to fire")
    await setup.hub.settle()
    assert logged("one") == ["a.fits created"]
    assert logged("two") == ["b.fits created"]
    assert all(r.status == "ok" for r in setup.records)
