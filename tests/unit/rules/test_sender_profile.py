"""``from:`` name globs never match web pages unless the trigger says ``profile: web``
(issue 9 item 6): the key is validated through the spec table and drives the matching."""

from __future__ import annotations

import textwrap

import jsonschema
import pytest

from sampflow.rules.errors import RuleFileError
from sampflow.rules.loader import load
from sampflow.rules.schema import json_schema

from .test_engine import burst, msg

RULES = """
    rules:
      - name: desktop topcat
        on: {mtype: test.go, from: topcat}
        do: [{log: desk}]
      - name: web topcat
        on: {mtype: test.go, from: topcat, profile: web}
        do: [{log: web}]
      - name: any topcat
        on: {mtype: test.go, from: "top*", profile: any}
        do: [{log: any}]
      - name: both
        on: {mtype: test.go, from: "*", profile: [standard, web]}
        do: [{log: both}]
      - name: anyone
        on: {mtype: test.go}
        do: [{log: anyone}]
      - name: desktop only, explicitly
        on: {mtype: test.go, profile: standard}
        do: [{log: standard}]
"""


def test_profile_key_is_loaded_and_validated() -> None:
    rs = load(textwrap.dedent(RULES), "rules.yaml")
    assert [r.triggers[0].profiles for r in rs.rules] == [
        frozenset(), {"web"}, {"any"}, {"standard", "web"}, frozenset(), {"standard"}]
    bad = "rules:\n  - name: x\n    on: {mtype: test.go, from: topcat, profile: browser}\n" \
          "    do: [{log: x}]\n"
    with pytest.raises(RuleFileError) as info:
        load(bad, "rules.yaml")
    assert [str(p) for p in info.value.problems] == [
        "rules.yaml:3:49: rules[0].on.profile: expected one of standard, web, any"]
    schema = json_schema()  # the JSON Schema made from the same table agrees
    good = {"rules": [{"name": "x", "on": {"mtype": "a.b", "profile": ["web"]}, "do": []}]}
    jsonschema.validate(good, schema)
    good["rules"][0]["on"]["profile"] = "browser"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good, schema)


@pytest.mark.parametrize("profile,tells,fired", [
    ("web", True, ["web", "any", "both", "anyone"]),
    ("standard", True, ["desk", "any", "both", "anyone", "standard"]),
    # A hub that cannot tell profiles (not sampflow's): the default and `any` still match.
    ("web", False, ["desk", "any", "anyone"]),
])
async def test_from_globs_match_web_pages_only_when_asked(setup, profile: str, tells: bool,
                                                          fired: list[str]) -> None:
    setup.hub.tells_profiles = tells
    eng = await setup.engine(RULES)
    sender = setup.hub.client("topcat", profile=profile)
    await burst(sender, eng, [msg()])
    await setup.hub.settle()
    await eng.wait_idle()
    said = [s["message"] for r in setup.records for s in r.steps if s.get("action") == "log"]
    assert sorted(said) == sorted(fired)
