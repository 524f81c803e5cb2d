"""Templates and conditions: native types, sandboxing, namespace functions, FITS headers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from sampflow.rules.errors import ExpressionError
from sampflow.rules.events import FileEvent, HubEvent, SampMessage, TimerEvent
from sampflow.rules.expr import (
    And,
    Not,
    Or,
    build_namespace,
    compile_condition,
    compile_template,
    render_value,
)
from sampflow.rules.filefacts import read_facts


def ns_for(event=None, hub=None, **vars_):
    return build_namespace(event, variables=vars_, hub=hub, rule="r")


MSG = SampMessage("notification", "c7", "topcat", "table.select.rowList",
                  {"row-list": ["1", "2"], "table-id": "t1", "text": "{{ 7 * 7 }}"})


def test_single_expression_keeps_native_type() -> None:
    ns = ns_for(MSG)
    assert compile_template("{{ params['row-list'] }}").render(ns) == ["1", "2"]
    assert compile_template("  {{ params }}  ").render(ns) == MSG.params
    assert compile_template("{{ params['row-list']|length }}").render(ns) == 2
    assert compile_template("rows: {{ params['row-list']|length }}").render(ns) == "rows: 2"
    assert compile_template("{{ sender.name }}/{{ sender.id }}").render(ns) == "topcat/c7"


def test_message_text_is_never_rendered() -> None:
    assert compile_template("{{ params.text }}").render(ns_for(MSG)) == "{{ 7 * 7 }}"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ params.__class__ }}",
    "{{ registered.__globals__ }}",
    "{{ sender.__init__.__globals__ }}",
    "x {{ ().__class__.__bases__ }}",
])
def test_sandbox_refuses_attribute_escapes(source) -> None:
    with pytest.raises(ExpressionError):
        compile_template(source).render(ns_for(MSG))


def test_sandbox_is_immutable() -> None:
    ns = ns_for(MSG)
    with pytest.raises(ExpressionError):
        compile_template("{{ params['row-list'].append('9') }}").render(ns)
    assert MSG.params["row-list"] == ["1", "2"]


def test_unknown_names_and_syntax_errors_at_compile_time() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'paramz'.*'params'"):
        compile_template("{{ paramz }}")
    with pytest.raises(ExpressionError, match="syntax"):
        compile_template("{{ 1 + }}")
    with pytest.raises(ExpressionError, match="undefined variable vars.nope"):
        compile_template("{{ vars.nope }}", known_vars={"folder": "x"})


def test_runtime_errors_carry_the_source_position() -> None:
    t = compile_template("{{ params.missing.deeper }}", "rules.yaml:3:9")
    with pytest.raises(ExpressionError, match=r"^rules.yaml:3:9: "):
        t.render(ns_for(MSG))


def test_conditions_combine() -> None:
    ns = ns_for(MSG)
    yes = compile_condition("params['table-id'] == 't1'")
    no = compile_condition("{{ sender.name is matching('aladin*') }}")
    assert yes.check(ns) and not no.check(ns)
    assert And((yes, Not(no))).check(ns)
    assert Or((no, yes)).check(ns) and not And((yes, no)).check(ns)
    assert compile_condition("match(sender.name, 'TOP*')").check(ns)


class Hub:
    def is_registered(self, name):
        return name.lower() == "ds9"

    def is_subscribed(self, name, mtype):
        return name.lower() == "ds9" and mtype == "image.load.fits"

    def names(self, pattern="*"):
        return [n for n in ("DS9", "topcat") if pattern in ("*", n)]


def test_registered_and_subscribed_come_from_the_engine() -> None:
    ns = ns_for(MSG, hub=Hub())
    assert compile_condition("registered('DS9') and subscribed('DS9', 'image.load.fits')"
                             ).check(ns)
    assert not compile_condition("registered('Aladin')").check(ns)
    assert not compile_condition("registered('DS9')").check(ns_for(MSG))  # no hub: false


def test_clients_and_newest_for_rules_that_load_the_latest_file(tmp_path) -> None:
    for i, name in enumerate(["old.fits", "new.fits", "newer.txt", "sub"]):
        p = tmp_path / name
        p.mkdir() if name == "sub" else p.write_bytes(b"x")
        os.utime(p, (i, i))
    ns = ns_for(HubEvent("registered", "c9", "DS9"), hub=Hub(), folder=str(tmp_path))
    assert compile_template("{{ clients() }}").render(ns) == ["DS9", "topcat"]
    assert compile_template("{{ newest(vars.folder, '*.FITS') }}").render(ns) == str(
        tmp_path / "new.fits")
    assert compile_template("{{ newest(vars.folder) }}").render(ns) == str(tmp_path / "newer.txt")
    assert compile_template("{{ newest(vars.folder ~ '/nope', '*') }}").render(ns) is None


def test_file_fields_and_fits_headers(tmp_path) -> None:
    path = tmp_path / "m31.fits.gz"
    hdu = fits.PrimaryHDU(np.zeros((4, 5), dtype=np.int16))
    hdu.header["OBJECT"] = "M31"
    hdu.header["EXPTIME"] = 30.0
    hdu.writeto(path)
    facts = read_facts(str(path))  # what the engine computes off the loop before the condition
    ns = build_namespace(FileEvent("created", str(path)), variables={}, rule="r", facts=facts)
    t = compile_template("{{ file.name }}|{{ file.stem }}|{{ file.suffix }}|{{ file.event }}")
    assert t.render(ns) == "m31.fits.gz|m31|.fits.gz|created"
    assert compile_template("{{ file.size }}").render(ns) == path.stat().st_size
    assert compile_template("{{ file.url }}").render(ns) == path.resolve().as_uri()
    assert compile_condition("header('OBJECT') == 'M31' and header('EXPTIME') > 10").check(ns)
    assert compile_template("{{ file.header.NAXIS1 }}").render(ns) == 5
    assert compile_template("{{ header('NOPE', 'none') }}").render(ns) == "none"
    assert compile_template("{{ file.kind }}").render(ns) == "image"


def test_without_facts_expressions_read_nothing(tmp_path) -> None:
    """An expression never opens the file: without precomputed facts it sees no content."""
    path = tmp_path / "x.fits"
    os.mkfifo(path)  # opening this for reading would block for ever
    ns = ns_for(FileEvent("created", str(path)))
    assert compile_template("{{ file.kind }}").render(ns) is None
    assert compile_template("{{ header('NAXIS', 0) }}").render(ns) == 0
    assert compile_template("{{ file.size }}").render(ns) == -1


def test_hub_and_timer_namespaces_and_vars() -> None:
    ns = ns_for(HubEvent("registered", "c9", "SAOImageDS9"), folder="/data")
    assert compile_template("{{ hub_event }} {{ client.name }} {{ vars.folder }}").render(
        ns) == "registered SAOImageDS9 /data"
    ns = ns_for(TimerEvent(10.0, 3))
    assert compile_template("{{ timer.count }}").render(ns) == 3


def test_render_value_tree() -> None:
    tree = {"a": compile_template("{{ params['row-list'] }}"),
            "b": [compile_template("x"), compile_template("{{ 1 + 1 }}")]}
    assert render_value(tree, ns_for(MSG)) == {"a": ["1", "2"], "b": ["x", 2]}
