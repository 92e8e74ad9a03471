"""Notification templates: Jinja2 in a sandbox, checked at validation, rendered at send time.

Templates see `subscriber` (id, attributes, tags, timezone), `campaign` (id,
title), `node` (id) and, in triggered sub-campaigns, `trigger` (event,
properties, at). The sandbox refuses attribute access to internals
(`''.__class__.__mro__` and friends) and anything unsafe to call.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from orchestrator.errors import TemplateRenderError

TOP_LEVEL_NAMES = ("subscriber", "campaign", "node", "trigger")

# Longest text or list a template may build with `*` or `%`: far beyond any payload
# (3,993 bytes), far below what would exhaust memory (`{{ 'x' * 10**12 }}`).
MAX_BUILT = 100_000

# Longest values the engine allows (enforced at import / event intake).
MAX_SUBSCRIBER_ID = 128
MAX_TIMEZONE = 40
MAX_EVENT_NAME = 64


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line_offset: int  # 0-based line inside the template text


def _finalize(value: Any) -> Any:
    return "" if value is None else value


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing `*` and `%` that would build huge text or lists."""

    intercepted_binops = frozenset({"*", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > MAX_BUILT:
                    raise SecurityError(f"'*' would build more than {MAX_BUILT:,} items")
        if operator == "%" and isinstance(left, str):
            widths = [int(n) for spec in _PRINTF_WIDTH.findall(left) for n in spec if n]
            if max(widths, default=0) > MAX_BUILT:
                raise SecurityError(f"'%' would build more than {MAX_BUILT:,} characters")
        return super().call_binop(context, operator, left, right)


_PRINTF_WIDTH = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d+))?")  # `%0999999999d`: width, precision


@lru_cache(maxsize=2)
def environment(*, strict: bool = True) -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        autoescape=False,
        undefined=StrictUndefined if strict else ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=False,
    )
    # Jinja's default globals minus the ones a notification has no use for and that
    # only widen what a template can reach (lipsum, cycler, joiner, namespace).
    env.globals = {name: env.globals[name] for name in ("range", "dict") if name in env.globals}
    return env


@lru_cache(maxsize=4096)
def _parse(source: str) -> nodes.Template:
    return environment().parse(source)


def is_template(source: str) -> bool:
    return "{{" in source or "{%" in source or "{#" in source


def check(source: str, *, allowed: tuple[str, ...]) -> list[TemplateProblem]:
    """Syntax errors and unknown top-level names of one template string."""
    try:
        ast = _parse(source)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"template syntax error: {exc.message}", max(exc.lineno - 1, 0))]
    problems = _internals(ast)
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
    if not is_template(source):
        return frozenset()
    try:
        return frozenset(meta.find_undeclared_variables(_parse(source)))
    except TemplateSyntaxError:
        return frozenset()


@lru_cache(maxsize=4096)
def _compiled(source: str, strict: bool) -> Template:
    return environment(strict=strict).from_string(source)


def render(source: str, context: dict[str, Any], *, strict: bool = True) -> str:
    """Render one template. Raises TemplateRenderError with a reason an author understands."""
    if not is_template(source):
        return source
    try:
        return _compiled(source, strict).render(context)
    except UndefinedError as exc:
        raise TemplateRenderError(f"undefined value: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateRenderError(f"refused by the template sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateRenderError(f"template error: {exc}") from None
    except MemoryError:
        raise TemplateRenderError("template error: rendering it needs too much memory") from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise TemplateRenderError(f"template error: {type(exc).__name__}: {exc}") from None
