"""Rule files as hostile input, through ``sampflow validate`` (issue 9, item 12).

A rule file is user input that may come from anywhere (a shared repository, a download): a
YAML billion-laughs, absurd nesting, a huge file or a malformed expression must each give one
clear ``file:line:col: reason`` line and exit 1, quickly, never a traceback or a hang. The
per-run ``timeout`` of ``subprocess.run`` is the failure criterion for "hangs" (generous).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from samphub import sampflow_argv

pytestmark = pytest.mark.timeout(180)

RULE = """\
rules:
  - name: x
    on: {mtype: test.a}
    do: [{log: hi}]
"""


def validate(path: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*sampflow_argv(), "validate", str(path)], capture_output=True,
                          text=True, timeout=timeout, check=False)


def one_error(done: subprocess.CompletedProcess[str], path: Path) -> tuple[int, int, str]:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    found = re.findall(rf"^{re.escape(str(path))}:(\d+):(\d+): (.*)$", done.stderr,
                       re.MULTILINE)
    assert len(found) == 1, done.stderr[-2000:]
    line, col, reason = found[0]
    return int(line), int(col), reason


def test_billion_laughs_is_refused_at_the_alias(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    text = "\n".join(lines) + "\n" + RULE.replace("do: [{log: hi}]",
                                                 "do: [{notify: {to: x, mtype: test.b, "
                                                 "params: {p: *l9}}}]")
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    line, _, reason = one_error(validate(path), path)
    assert "alias" in reason and "expand" in reason, reason
    assert 2 <= line <= 10, (line, reason)  # at an alias, not somewhere arbitrary


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("vars: &v {self: *v}\n" + RULE)
    done = validate(path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.search(rf"{re.escape(str(path))}:1:\d+: .*alias", done.stderr), done.stderr


def test_small_aliases_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("rules:\n  - name: a\n    on: &t {mtype: test.a}\n    do: [{log: hi}]\n"
                    "  - name: b\n    on: *t\n    do: [{log: ho}]\n")
    done = validate(path)
    assert done.returncode == 0, done.stderr
    assert "2 rules OK" in done.stdout


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}")])
def test_ten_thousand_levels_of_nesting_are_refused(tmp_path: Path, opener: str,
                                                    closer: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("rules: " + opener * 10_000 + "x" + closer * 10_000 + "\n")
    line, _, reason = one_error(validate(path), path)
    assert line == 1 and "nest" in reason and "levels" in reason, reason
    assert "RecursionError" not in reason


def test_block_style_nesting_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "deep-block.yaml"
    path.write_text(RULE + "".join(f"{' ' * i}k{i}:\n" for i in range(500)))
    *_, reason = one_error(validate(path), path)
    assert "nest" in reason, reason


def test_a_fifty_megabyte_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as f:
        f.write(RULE)
        chunk = "# " + "x" * 1000 + "\n"
        for _ in range(50 * 1024):
            f.write(chunk)
    line, col, reason = one_error(validate(path), path)
    assert (line, col) == (1, 1) and "MiB" in reason and "limit" in reason, reason


def test_and_and_is_a_syntax_error_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "andand.yaml"
    path.write_text('rules:\n  - name: x\n    on: {mtype: test.a}\n'
                    '    if: "registered(\'DS9\') and and"\n    do: [{log: hi}]\n')
    line, col, reason = one_error(validate(path), path)
    assert "syntax error" in reason and "unknown name" not in reason, reason
    # the second 'and': line 4, after `    if: "registered('DS9') and ` (31 characters)
    assert (line, col) == (4, 32), (line, col, reason)
    assert "'and'" in reason


@pytest.mark.parametrize("expr", ["params.x or or", "not", "params.x == in"])
def test_other_misplaced_keywords_are_syntax_errors(tmp_path: Path, expr: str) -> None:
    path = tmp_path / "kw.yaml"
    path.write_text(f'rules:\n  - name: x\n    on: {{mtype: test.a}}\n    if: "{expr}"\n'
                    '    do: [{log: hi}]\n')
    *_, reason = one_error(validate(path), path)
    assert "syntax error" in reason and "unknown name" not in reason, reason
