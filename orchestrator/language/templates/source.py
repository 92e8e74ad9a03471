"""What a template's source says, checked when a campaign is validated.

`check` finds syntax errors, statements that need other templates, reaching into
Python internals and top-level names outside those a notification has
(TOP_LEVEL_NAMES); `names_used` tells which of them a template reads, so a payload
renders once per node what reads no subscriber. Render limits are found by rendering
(`rendering`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from orchestrator.language.templates.codegen import REFUSED_STATEMENTS, refusal
from orchestrator.language.templates.limits import MAX_TEMPLATE_LENGTH, TOO_DEEP, TOO_LONG
from orchestrator.language.templates.sandbox import environment

TOP_LEVEL_NAMES = ("subscriber", "campaign", "node", "trigger")


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line_offset: int  # 0-based line inside the template text


@lru_cache(maxsize=4096)
def parse(source: str) -> nodes.Template:
    return environment().parse(source)


def is_template(source: str) -> bool:
    return "{{" in source or "{%" in source or "{#" in source


def check(source: str, *, allowed: tuple[str, ...]) -> list[TemplateProblem]:
    """Syntax errors, statements that need other templates (include, import, extends,
    block) and unknown top-level names of one template string. (Render limits are found
    by rendering: see `render`.)"""
    if len(source) > MAX_TEMPLATE_LENGTH:
        return [TemplateProblem(f"template exceeds a limit: {TOO_LONG.format(len(source))}", 0)]
    try:
        return _problems(parse(source), allowed)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"template syntax error: {exc.message}", max(exc.lineno - 1, 0))]
    except RecursionError:
        return [TemplateProblem(f"template exceeds a limit: {TOO_DEEP}", 0)]


def _problems(ast: nodes.Template, allowed: tuple[str, ...]) -> list[TemplateProblem]:
    problems = [
        TemplateProblem(refusal(found), max(found.lineno - 1, 0))
        for found in ast.find_all(tuple(REFUSED_STATEMENTS))
    ]
    problems += _internals(ast)
    for name in sorted(meta.find_undeclared_variables(ast)):
        if name in allowed:
            continue
        if name == "trigger":
            message = (
                "template uses 'trigger', which exists only in sub-campaigns entered by a "
                "trigger event"
            )
        else:
            message = f"template uses unknown variable {name!r}"
            close = difflib.get_close_matches(name, allowed, n=1)
            known = ", ".join(allowed)
            message += f"; did you mean {close[0]!r}?" if close else f" (known: {known})"
        problems.append(TemplateProblem(message, _first_line_of(ast, name)))
    return problems


def _internals(ast: nodes.Template) -> list[TemplateProblem]:
    """`x.__class__`, `x['_private']`, `x|attr('__globals__')`: refused when the file is
    checked (the sandbox would also refuse them when rendering)."""
    problems = []
    for found in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: Any = None
        if isinstance(found, nodes.Getattr):
            name = found.attr
        elif isinstance(found, nodes.Getitem) and isinstance(found.arg, nodes.Const):
            name = found.arg.value
        elif isinstance(found, nodes.Filter) and found.name == "attr" and found.args:
            first = found.args[0]
            name = first.value if isinstance(first, nodes.Const) else "(computed)"
        if isinstance(name, str) and (name.startswith("_") or name == "(computed)"):
            problems.append(
                TemplateProblem(
                    f"template reaches into Python internals ({name!r}): templates may "
                    "only read data fields",
                    max(found.lineno - 1, 0),
                )
            )
    return problems


def _first_line_of(ast: nodes.Template, name: str) -> int:
    for found in ast.find_all(nodes.Name):
        if found.name == name:
            return max(found.lineno - 1, 0)
    return 0


@lru_cache(maxsize=4096)
def names_used(source: str) -> frozenset[str]:
    """The top-level names a template reads (`subscriber`, `campaign`, …); none for plain text
    or a template that does not parse (rendering it says why)."""
    if not is_template(source) or len(source) > MAX_TEMPLATE_LENGTH:
        return frozenset()
    try:
        return frozenset(meta.find_undeclared_variables(parse(source)))
    except (TemplateSyntaxError, RecursionError):
        return frozenset()
