"""Templates run with bounded memory, time, output, recursion and numbers
(docs/language.md, "Template limits"): a template that goes past a limit is an error
at its line when the campaign is validated, and a TemplateLimitError when rendered;
never a traceback, a MemoryError or a hang."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import TemplateRenderError
from orchestrator.language import loader, templates
from tests.helpers import ROOT

HEADER = """\
campaign: bombs
title: Bombs
goal: signup
segments:
  everyone: {match: {attr: plan, exists: true}}
subcampaigns:
  all:
    segment: everyone
    start: n0
    nodes:
"""
FIRST_NODE_LINE = HEADER.count("\n") + 1

CONTEXT = {
    "subscriber": {"id": "s1", "attributes": {"name": "Ann"}, "tags": ["a", "b"]},
    "campaign": {"id": "bombs", "title": "Bombs"},
    "node": {"id": "n0"},
}

# (template, what the error names). Each one would take gigabytes, minutes or a traceback
# without the limits.
BOMBS = [
    ("{{ 'x'|center(999999999) }}", "filter 'center' would build a text of 999,999,999"),
    ("{{ '{:>999999999}'.format('x') }}", "'.format()' would build a text"),
    ("{{ 'x'" + ".replace('x', 'xxxxxxxxxx')" * 10 + " }}", "'.replace()' would build a text"),
    ("{{ 'x'|indent(10**9) }}", "filter 'indent'"),
    ("{{ [1]|batch(10**9) }}", "filter 'batch' would make groups of 1,000,000,000"),
    ("{{ [1]|slice(10**9) }}", "filter 'slice'"),
    ("{{ '%999999999d'|format(1) }}", "filter 'format'"),
    ("{{ 'x'|wordwrap(1, wrapstring='y' * 99999) }}", "filter 'wordwrap'"),
    ("{{ ('x' * 100000).zfill(10**9) }}", "'.zfill()'"),
    ("{{ 'a\\tb'.expandtabs(10**9) }}", "'.expandtabs()'"),
    ("{{ ('x' * 50).join('y' * 5000) }}", "'.join()' would build a text of 254,950 characters"),
    ("{{ (1).to_bytes(10**9, 'big') }}", "'.to_bytes()'"),
    ("{{ 'x' * 10**12 }}", "operator '*' would build a text of 1,000,000,000,000"),
    ("{{ '%0999999999d' % 1 }}", "operator '%'"),
    ("{% set s = 'x' * 50000 %}{{ '%(a)s%(a)s%(a)s' % {'a': s} }}", "operator '%'"),
    ("{{ ['x' * 60000] + ['y' * 60000] }}", "operator '+' would build a list"),
    ("{{ ([('x' * 100000)] * 100000)|join }}", "operator '*' would build a list"),
    ("{{ 7 ** 300000000 }}", "operator '**' would compute a number of 842,206,477 bits"),
    ("{{ 10 ** (10 ** 10) }}", "operator '**' would compute a number"),
    ("{{ 9999999 ** 99999 }}", "operator '**'"),
    ("{{ (2 ** 4000) * (2 ** 4000) }}", "operator '*' would compute a number of 8,002 bits"),
    ("{{ ('9' * 5000)|int }}", "filter 'int' would read a number of 5,000 digits"),
    (
        "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}{{ d('x', 60) }}",
        "operator '~' would build a text of 131,072",
    ),
    (
        "{% set t = (1, 1) %}" + "{% set t = (t, t) %}" * 40 + "{{ t == t }}",
        "a list or dict literal would build a list",
    ),
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "more than 50,000 steps",
    ),
    (
        "{% for x in range(100000) %}{% for y in range(100000) %}{{ x }}{% endfor %}{% endfor %}",
        "more than 50,000 steps",
    ),
    ("{% for i in range(10000) %}{{ i }}{% endfor %}", "output is longer than 16,384 characters"),
    ("{{ 'x' * 20000 }}", "output is longer than 16,384 characters"),
    ("{{ range(100000)|map('center', 99999)|list }}", "more than 50,000 steps"),
    ("{{ range(60000)|sum }}", "more than 50,000 steps"),
    (
        "{% set x %}{% for i in range(2000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ x }}",
        "more than 1,000,000 characters and list items in all",
    ),
    ("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", "nest more than 30 deep"),
    (
        "{% for k in [1] recursive %}{{ loop([1]) }}{% endfor %}",
        "nest more than 30 deep",
    ),
    ("{{ " + "[" * 300 + "]" * 300 + " }}", "nests too deeply"),
    ("{{ subscriber.id }}" * 600, "it is 11,400 characters long (at most 10,000)"),
]
BOMB_IDS = [f"bomb{i}" for i in range(len(BOMBS))]

REFUSED = [
    ("{% include 'x' %}", "'{% include %}'"),
    ("{% import 'x' as y %}", "'{% import %}'"),
    ("{% from 'x' import y %}", "'{% from … import %}'"),
    ("{% extends 'x' %}", "'{% extends %}'"),
    ("{% block b %}x{% endblock %}", "'{% block %}'"),
]


def _node(index: int, title: str, *, last: bool = True) -> str:
    after = "" if last else f", on_no_convert: n{index + 1}"
    return f"      n{index}: {{notification: {{title: {json.dumps(title)}}}{after}}}\n"


def _campaign(tmp_path: Path, *titles: str) -> Path:
    path = tmp_path / "c.yaml"
    body = "".join(_node(i, t, last=i == len(titles) - 1) for i, t in enumerate(titles))
    path.write_text(HEADER + body, encoding="utf-8")
    return path


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(("source", "expected"), BOMBS, ids=BOMB_IDS)
def test_a_bomb_is_an_error_at_its_line_when_the_campaign_is_loaded(
    tmp_path: Path, source: str, expected: str
) -> None:
    loaded = loader.load(_campaign(tmp_path, source))
    assert not loaded.ok
    messages = [d.format() for d in loaded.errors]
    assert [d.line for d in loaded.errors] == [FIRST_NODE_LINE], messages
    assert loaded.errors[0].code == "template", messages
    assert expected in loaded.errors[0].message, messages
    assert "limit" in loaded.errors[0].message, messages


@pytest.mark.parametrize(("source", "expected"), REFUSED)
def test_statements_that_need_other_templates_are_refused(
    tmp_path: Path, source: str, expected: str
) -> None:
    loaded = loader.load(_campaign(tmp_path, source))
    assert [(d.line, d.code) for d in loaded.errors] == [(FIRST_NODE_LINE, "template")]
    assert expected in loaded.errors[0].message
    assert "templates cannot use" in loaded.errors[0].message
    with pytest.raises(TemplateRenderError, match="templates cannot use"):
        templates.render(source, CONTEXT)


def test_the_error_points_at_the_line_inside_a_multiline_template(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        HEADER
        + "      n0:\n"
        + "        notification:\n"
        + "          title: Hi\n"
        + "          body: |\n"
        + "            Hello {{ subscriber.id }},\n"
        + "            {% for i in range(3) %}{{ i }}{% endfor %}\n"
        + "            {{ 'x'|center(10**9) }}\n",
        encoding="utf-8",
    )
    loaded = loader.load(path)
    assert [d.line for d in loaded.errors] == [FIRST_NODE_LINE + 6], [
        d.format() for d in loaded.errors
    ]


def test_unknown_values_of_the_worst_case_are_still_left_to_send_time(tmp_path: Path) -> None:
    """Attributes are unknown at validation: what they would make of a template is not
    an error (only going past a limit is)."""
    loaded = loader.load(
        _campaign(
            tmp_path,
            "{{ subscriber.attributes.count + 1 }}",
            "{% for i in range(subscriber.attributes.n) %}{{ i }}{% endfor %}",
            "{{ subscriber.attributes.name|center(subscriber.attributes.width) }}",
        )
    )
    assert loaded.errors == [], [d.format() for d in loaded.errors]


# ------------------------------------------------------------------ rendering


@pytest.mark.parametrize(("source", "expected"), BOMBS, ids=BOMB_IDS)
@pytest.mark.parametrize("strict", [True, False])
def test_a_bomb_raises_a_template_limit_error(source: str, expected: str, strict: bool) -> None:
    with pytest.raises(templates.TemplateLimitError) as raised:
        templates.render(source, CONTEXT, strict=strict)
    assert isinstance(raised.value, TemplateRenderError)
    assert str(raised.value).startswith("template exceeds a limit: ")
    assert expected in str(raised.value)


def test_a_slow_template_stops_at_the_time_limit() -> None:
    """Each comparison walks 100,000 items: few steps, much time."""
    source = (
        "{% set a = [10 ** 18] * 100000 %}{% set b = [10 ** 18] * 100000 %}"
        "{% for i in range(10000) %}{% if a == b %}{% endif %}{% endfor %}"
    )
    started = time.monotonic()
    with pytest.raises(templates.TemplateLimitError, match="takes longer than 200 ms"):
        templates.render(source, CONTEXT)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% for t in subscriber.tags %}{{ loop.cycle('<', '>') }}{{ t }}{% endfor %}", "<a>b"),
        ("{% for t in subscriber.tags if t != 'a' %}{{ t }}{% else %}none{% endfor %}", "b"),
        (
            "{% for k in [{'n': 1, 'c': [{'n': 2, 'c': []}]}] recursive %}"
            "{{ k.n }}{{ loop(k.c) }}{% endfor %}",
            "12",
        ),
        (
            "{% macro m(x) %}[{{ x }}{{ caller() }}]{% endmacro %}{% call m(1) %}!{% endcall %}",
            "[1!]",
        ),
        ("{% macro v() %}{{ varargs|join(',') }}{% endmacro %}{{ v(1, 2) }}", "1,2"),
        ("{% set x %}{{ subscriber.id }}!{% endset %}{{ x }}", "s1!"),
        ("{% filter upper %}{{ subscriber.attributes.name }}{% endfilter %}", "ANN"),
        ("{{ subscriber.tags|map('upper')|join('-') }}", "A-B"),
        ("{{ range(5)|select('odd')|list }} {{ range(4)|sum }}", "[1, 3] 6"),
        ("{{ [[1], [2]]|sum(start=[]) }}", "[1, 2]"),
        ("{{ '%s=%05.1f' % ('x', 3.14159) }} {{ '{}-{:>4}'.format('a', 'b') }}", "x=003.1 a-   b"),
        (
            "{{ 'ab'.center(6, '*') }} {{ ','.join(['a', 'b']) }} {{ 'x'.zfill(3) }}",
            "**ab** a,b 00x",
        ),
        (
            "{{ 2 ** 10 }} {{ 2 ** 4095 > 0 }} {{ 1 ** 10 ** 30 }} {{ [1] * 3 }}",
            "1024 True 1 [1, 1, 1]",
        ),
        ("{{ subscriber.attributes.name ~ '!' }} {{ subscriber.attributes.name[1:] }}", "Ann! nn"),
        ("{{ {'a': subscriber.id}|tojson }} {{ dict(a=1) }}", '{"a": "s1"} {\'a\': 1}'),
        ("{{ subscriber.attributes.name|center(7)|replace(' ', '.') }}", "..Ann.."),
        ("{{ 'x' * 16384 }}", "x" * 16384),
    ],
)
def test_ordinary_templates_render_as_before(source: str, expected: str) -> None:
    assert templates.render(source, CONTEXT) == expected


# ------------------------------------------------------------------ for real: memory and time


def _limit_memory() -> None:
    limit = 1_500_000_000
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _all_bombs(tmp_path: Path) -> tuple[Path, list[tuple[int, str]]]:
    path = _campaign(tmp_path, *(source for source, _ in BOMBS))
    return path, [(FIRST_NODE_LINE + i, expected) for i, (_, expected) in enumerate(BOMBS)]


def _assert_every_bomb_reported(
    result: subprocess.CompletedProcess[str], path: Path, expected: list[tuple[int, str]]
) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert "MemoryError" not in output, output[-3000:]
    assert result.returncode == 1, output[-3000:]
    lines = output.splitlines()
    for line, message in expected:
        at = f"{path}:{line}:"
        assert any(at in x and "error" in x and message in x for x in lines), (at, message)


def test_loading_every_bomb_stays_within_memory_and_time(tmp_path: Path) -> None:
    path, expected = _all_bombs(tmp_path)
    code = (
        "import sys; from orchestrator.language import loader; "
        "from pathlib import Path; loaded = loader.load(Path(sys.argv[1])); "
        "print('\\n'.join(d.format() for d in loaded.diagnostics)); "
        "sys.exit(0 if loaded.ok else 1)"
    )
    result = subprocess.run(  # the timeout is the hang guard
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        preexec_fn=_limit_memory,
        check=False,
    )
    _assert_every_bomb_reported(result, path, expected)


@pytest.mark.slow
def test_campaign_validate_reports_every_bomb_within_memory_and_time(tmp_path: Path) -> None:
    path, expected = _all_bombs(tmp_path)
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "campaign"), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        preexec_fn=_limit_memory,
        check=False,
    )
    _assert_every_bomb_reported(result, path, expected)
