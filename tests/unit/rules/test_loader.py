"""Rule file loading: values, errors with positions, variables, every trigger and action."""

from __future__ import annotations

import textwrap

import jsonschema
import pytest

from sampflow.rules import model as m
from sampflow.rules.errors import RuleFileError
from sampflow.rules.loader import load, load_paths, parse_duration
from sampflow.rules.schema import json_schema
from sampflow.rules.spec import ACTIONS, TRIGGERS


def errors_of(text: str, **kw) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        load(textwrap.dedent(text).lstrip("\n"), "rules.yaml", **kw)
    return [str(p) for p in info.value.problems]


def test_several_errors_at_once_with_positions() -> None:
    errs = errors_of("""
        # rules.yaml: one good rule, two bad ones
        rules:
          - name: good
            on: {mtype: test.a}
            do: [{log: hi}]
          - name: bad mode
            on: {mtype: test.a}
            do: [{log: hi}]
            mode: sometimes
          - name: bad everything
            on: {mtype: "not..valid", frm: x}
            do:
              - notify: {mtype: test.b}
              - frobnicate: 1
              - delay: 2 parsecs
              - log: "{{ fiel.name }}"
            max: lots
            throttle: "{{ file.name }}"
    """)
    assert errs == [
        "rules.yaml:9:11: rules[1].mode: expected one of single, restart, queued, parallel",
        "rules.yaml:11:17: rules[2].on.mtype: not a valid MType pattern: 'not..valid'",
        "rules.yaml:11:31: rules[2].on.frm: unknown key 'frm' in mtype; expected one of "
        "mtype, from, profile, params",
        "rules.yaml:13:9: rules[2].do[0]: missing to: in notify",
        "rules.yaml:14:9: rules[2].do[1]: expected one action key: "
        + ", ".join(ACTIONS),
        "rules.yaml:15:16: rules[2].do[2].delay: expected a duration such as 1s, 500ms, 2m "
        "or 1m30s",
        "rules.yaml:16:14: rules[2].do[3].log: unknown name 'fiel' (did you mean 'file'?)",
        "rules.yaml:17:10: rules[2].max: expected an integer, not 'lots'",
        "rules.yaml:18:15: rules[2].throttle: this field is read when the file loads: only "
        "{{ vars.NAME }} can be used",
    ]


def test_mtype_error_is_reported_too() -> None:
    errs = errors_of("""
        rules:
          - name: r
            on: {mtype: "not..valid"}
            do: {log: x}
    """)
    assert errs == ["rules.yaml:3:17: rules[0].on.mtype: not a valid MType pattern: "
                    "'not..valid'"]


def test_yaml_syntax_error_has_position() -> None:
    errs = errors_of("""
        rules:
          - name: r
            on: {mtype: test.a
            do: []
    """)
    assert len(errs) == 1
    assert errs[0].startswith("rules.yaml:4:") and "YAML syntax error" in errs[0]


def test_duplicate_keys_are_errors() -> None:
    errs = errors_of("""
        rules:
          - name: r
            on: {mtype: test.a}
            do: {log: x}
            on: {mtype: test.b}
    """)
    assert errs == ["rules.yaml:5:5: rules[0].on: duplicate key 'on' (first on line 3)"]


def test_astronomer_values_stay_strings() -> None:
    rs = load(textwrap.dedent("""
        rules:
          - name: point
            on: {mtype: test.a}
            enabled: yes
            do:
              - point_at: Aladin
                ra: 12:30:45
                dec: -00:30:00
              - notify: {to: X, mtype: test.b, params: {flag: yes, n: 0012, on: off, e: 1e3}}
    """))
    rule = rs.rules[0]
    assert rule.enabled is True
    pa, notify = rule.actions
    assert pa.ra.render({}) == "12:30:45" and pa.dec.render({}) == "-00:30:00"
    params = {k: v.render({}) for k, v in notify.params.items()}
    assert params == {"flag": "yes", "n": "0012", "on": "off", "e": "1e3"}


def test_vars_defaults_and_set_overrides(tmp_path) -> None:
    text = textwrap.dedent("""
        vars:
          folder: ~/incoming
          viewer: SAOImageDS9
          period: 5s
        rules:
          - name: "watch {{ vars.folder }}"
            on: {files: "{{ vars.folder }}/fits", settle: "{{ vars.period }}"}
            do: [{send_file: "{{ vars.viewer }}"}]
    """)
    rs = load(text)
    trig = rs.rules[0].triggers[0]
    assert trig.path.endswith("/incoming/fits") and "~" not in trig.path
    assert trig.settle == 5.0
    assert rs.rules[0].name == "watch ~/incoming"
    rs = load(text, overrides={"folder": str(tmp_path), "period": "250ms"})
    assert rs.rules[0].triggers[0].path == f"{tmp_path}/fits"
    assert rs.rules[0].triggers[0].settle == 0.25
    assert rs.rules[0].actions[0].to[0].render({"vars": rs.vars}) == "SAOImageDS9"
    with pytest.raises(RuleFileError) as info:
        load(text, overrides={"fodler": "x"})
    assert str(info.value) == "--set: fodler: no such variable; declared: folder, period, viewer"
    errs = errors_of("""
        rules:
          - name: r
            on: {mtype: test.a}
            do: {log: "{{ vars.missing }}"}
    """)
    assert errs == ["rules.yaml:4:15: rules[0].do.log: undefined variable vars.missing "
                    "(declare it under vars:)"]


def test_every_trigger_and_action_parses(tmp_path) -> None:
    rs = load(textwrap.dedent(f"""
        client: {{name: lab, description: test rules, author: me}}
        rules:
          - name: all triggers
            on:
              - mtype: [table.load.votable, "image.*"]
                from: [topcat, "aladin*"]
                params: {{table-id: "t*"}}
              - registered: DS9
              - unregistered: "*"
              - metadata: topcat
              - subscriptions: [aladin]
              - files: {tmp_path}
                patterns: ["*.fits", "*.fits.gz"]
                ignore: [".*"]
                recursive: true
                events: [created, modified, moved, deleted]
                settle: 500ms
                poll: 2s
                catch_up: true
              - every: 1m30s
            if: ["true", {{not: "false"}}, {{or: ["false", "true"]}}]
            mode: parallel
            max: 3
            debounce: 100ms
            throttle: 1s
            key: "{{{{ file.path }}}}"
            do:
              - notify: {{to: [DS9, "{{{{ sender.id }}}}"], mtype: test.n, params: {{a: b}}}}
              - call: ds9
                mtype: ds9.get
                params: {{cmd: file}}
                timeout: 5s
                as: file
                retry: 2
              - broadcast: table.select.rowList
                params: "{{{{ params }}}}"
                except: [sender]
                continue_on_error: true
              - forward:
              - forward: {{to: aladin, except: topcat}}
              - reply: {{status: warning, result: {{n: "1"}}, error: hmm}}
              - reply: ok
              - send_file: TOPCAT
                path: "{{{{ file.path }}}}"
                name: "{{{{ file.stem }}}}"
              - point_at: {{to: Aladin, table: "{{{{ params['table-id'] }}}}", row: "3"}}
              - highlight_row: {{to: topcat, table: t1, row: "{{{{ params.row }}}}"}}
              - select_rows: {{to: topcat, url: "file:///t.vot", rows: [1, 2]}}
              - log: "hello {{{{ sender.name }}}}"
                level: warning
              - delay: 1s
              - exec: [ds9, -fits, "{{{{ file.path }}}}"]
                timeout: 1m
                cwd: /tmp
    """))
    rule = rs.rules[0]
    kinds = [type(t) for t in rule.triggers]
    assert kinds == [m.MTypeTrigger] + [m.HubTrigger] * 4 + [m.FilesTrigger, m.TimerTrigger]
    mt = rule.triggers[0]
    assert mt.mtypes == ("table.load.votable", "image.*") and mt.senders == ("topcat", "aladin*")
    assert mt.params == (("table-id", "t*"),)
    assert [t.kind for t in rule.triggers[1:5]] == ["registered", "unregistered", "metadata",
                                                    "subscriptions"]
    f = rule.triggers[5]
    assert (f.recursive, f.settle, f.poll, f.catch_up) == (True, 0.5, 2.0, "all")
    assert f.events == {"created", "modified", "moved", "deleted"}
    assert rule.triggers[6].every == 90.0
    assert (rule.mode, rule.max, rule.debounce, rule.throttle) == (m.Mode.PARALLEL, 3, 0.1, 1.0)
    assert rule.condition.check({})
    types = [type(a) for a in rule.actions]
    assert types == [m.Notify, m.Call, m.Broadcast, m.Forward, m.Forward, m.Reply, m.Reply,
                     m.SendFile, m.PointAt, m.HighlightRow, m.SelectRows, m.Log, m.Delay, m.Exec]
    call = rule.actions[1]
    assert (call.timeout, call.name, call.options.retry) == (5.0, "file", 2)
    assert rule.actions[2].options.continue_on_error
    assert rule.actions[2].mtype == "table.select.rowList"
    assert rule.actions[11].level == "warning"
    assert rs.samp_metadata() == {"samp.name": "lab", "samp.description.text": "test rules",
                                  "samp.author": "me"}
    assert set(type(a) for a in rule.actions) == {t.build for t in ACTIONS.values()}


def test_key_makes_mode_queued_by_default() -> None:
    rs = load(textwrap.dedent("""
        rules:
          - {name: a, on: {mtype: x.y}, do: {log: a}, key: "{{ params.k }}"}
          - {name: b, on: {mtype: x.y}, do: {log: a}}
    """))
    assert [r.mode for r in rs.rules] == [m.Mode.QUEUED, m.Mode.SINGLE]


def test_exec_refused_without_allow_exec_and_names_unique() -> None:
    text = """
        rules:
          - name: r
            on: {mtype: x.y}
            do:
              - exec: [ls]
          - name: r
            on: {mtype: x.y}
            do: {log: a}
    """
    errs = errors_of(text, allow_exec=False)
    assert errs == [
        "rules.yaml:5:9: r: exec is refused unless sampflow run is given --allow-exec",
        "rules.yaml:6:5: rule name 'r' is used twice; names must be unique"]


def test_shapes_and_missing_parts() -> None:
    errs = errors_of("""
        rules:
          - name: no trigger
            do: {log: a}
          - just a string
          - name: two actions in one item
            on: {every: 1s}
            do: [{log: a, delay: 1s}]
        other: 1
    """)
    assert errs == [
        "rules.yaml:2:5: rules[0]: missing on: in a rule",
        "rules.yaml:4:5: rules[1]: expected a mapping (key: value)",
        "rules.yaml:7:10: rules[2].do[0]: one action per item, found log, delay",
        "rules.yaml:8:1: other: unknown key; expected one of client, vars, rules",
    ]


def test_template_syntax_error_at_load() -> None:
    errs = errors_of("""
        rules:
          - name: r
            on: {mtype: x.y}
            do: {log: "{{ params[ }}"}
    """)
    assert len(errs) == 1 and errs[0].startswith("rules.yaml:4:15: rules[0].do.log: template "
                                                 "syntax error")


def test_load_paths_reads_several_files(tmp_path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("vars: {x: '1'}\nrules:\n  - {name: a, on: {every: 1s}, do: {log: a}}\n")
    b.write_text("rules:\n  - {name: b, on: {every: 1s}, do: {log: b}}\n  - {name: a}\n")
    with pytest.raises(RuleFileError) as info:
        load_paths([a, b], {"x": "2"})
    assert [p.file for p in info.value.problems] == [str(b), str(b)]
    b.write_text("rules:\n  - {name: b, on: {every: 1s}, do: {log: b}}\n")
    rs = load_paths([a, b], {"x": "2"})
    assert [r.name for r in rs.rules] == ["a", "b"] and rs.vars == {"x": "2"}


@pytest.mark.parametrize("text,seconds", [("1s", 1), ("500ms", 0.5), ("2m", 120), ("1h", 3600),
                                          ("1m30s", 90), ("2.5", 2.5), (" 3 s ", 3)])
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "1x", "1 2", "-1s", "1s foo"])
def test_bad_durations(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_json_schema_is_valid_and_matches_the_table() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    actions = schema["$defs"]["action"]["oneOf"]
    assert [a["required"][0] for a in actions] == list(ACTIONS)
    assert [t["required"][0] for t in schema["$defs"]["trigger"]["oneOf"]] == list(TRIGGERS)
    doc = {"vars": {"folder": "/data"}, "rules": [{
        "name": "r", "on": {"files": "{{ vars.folder }}", "settle": "1s"},
        "do": [{"send_file": "DS9"}, {"notify": {"to": "x", "mtype": "a.b"}}, {"delay": 2}]}]}
    jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"rules": [{"name": "r", "on": {"every": "1s"},
                                        "do": [{"frobnicate": 1}]}]}, schema)
