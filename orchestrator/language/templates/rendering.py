"""Rendering one template within the render limits.

A plain template (fields, constants, light filters: most notification templates) runs
without a budget, only its output length checked; any other runs with a budget of its
own. Every failure becomes a TemplateRenderError worded for the campaign's author, a
TemplateLimitError with its template line when a limit is reached.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

from jinja2 import Template, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from orchestrator.errors import TemplateRenderError
from orchestrator.language.templates.budget import BUDGET, Budget
from orchestrator.language.templates.codegen import cheap_comparison
from orchestrator.language.templates.filters import PLAIN_FILTERS, TEXT_FILTERS, WALKING_TESTS
from orchestrator.language.templates.limits import (
    MAX_OUTPUT,
    MAX_TEMPLATE_LENGTH,
    TOO_DEEP,
    TOO_LONG,
    LimitReached,
    TemplateLimitError,
)
from orchestrator.language.templates.sandbox import environment
from orchestrator.language.templates.source import is_template, parse


@lru_cache(maxsize=4096)
def _compiled(source: str, strict: bool) -> tuple[Template, bool]:
    """The compiled template, and whether it is plain (see `_is_plain`)."""
    return environment(strict=strict).from_string(source), _is_plain(parse(source))


# Nodes of a plain template: it reads fields, prints them, tests them against constants,
# applies filters whose result is at most a few times their input (`default`, `upper`,
# `truncate`, …), and nothing else.
_PLAIN_NODES = (
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.CondExpr,
    nodes.If,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Keyword,
    nodes.Operand,
)


def _is_plain(ast: nodes.Template) -> bool:
    """A plain template cannot take steps or build anything, and each part of its output is
    a constant or a value of the context: it needs no budget, only the check of its output
    length. Most notification templates are plain."""
    for node in ast.find_all(nodes.Node):
        if isinstance(node, _PLAIN_NODES):
            continue
        if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice):
            continue
        if isinstance(node, nodes.Filter) and node.name in PLAIN_FILTERS | TEXT_FILTERS:
            continue
        if isinstance(node, nodes.Test) and node.name not in WALKING_TESTS:
            continue
        if isinstance(node, nodes.Compare) and cheap_comparison(node):
            continue
        return False
    return True


def render(source: str, context: dict[str, Any], *, strict: bool = True) -> str:
    """Render one template within the render limits. Raises TemplateRenderError with a
    reason an author understands (TemplateLimitError when a limit is reached)."""
    if not is_template(source):
        return source
    try:
        return _render(source, context, strict)
    except LimitReached as exc:
        raise TemplateLimitError(f"template exceeds a limit: {exc}", _line_of(exc)) from None
    except (RecursionError, SyntaxError) as exc:
        # SyntaxError: Python's own nesting limit, compiling a deeply nested expression.
        raise TemplateLimitError(f"template exceeds a limit: {TOO_DEEP}", _line_of(exc)) from None
    except MemoryError:
        raise TemplateLimitError("template exceeds a limit: it needs too much memory") from None
    except UndefinedError as exc:
        raise TemplateRenderError(f"undefined value: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateRenderError(f"refused by the template sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateRenderError(f"template error: {exc}") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's limit on digits
            raise TemplateLimitError(
                "template exceeds a limit: a number has more than "
                f"{sys.get_int_max_str_digits():,} digits",
                _line_of(exc),
            ) from None
        raise TemplateRenderError(f"template error: ValueError: {exc}") from None
    except (ArithmeticError, TypeError, LookupError, AttributeError) as exc:
        raise TemplateRenderError(f"template error: {type(exc).__name__}: {exc}") from None


def _render(source: str, context: dict[str, Any], strict: bool) -> str:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise LimitReached(TOO_LONG.format(len(source)))
    template, plain = _compiled(source, strict)
    if plain:
        text = "".join(template.root_render_func(template.new_context(context)))
        if len(text) > MAX_OUTPUT:
            raise LimitReached(f"its output is longer than {MAX_OUTPUT:,} characters")
        return text
    token = BUDGET.set(Budget())
    try:
        chunks = template.root_render_func(template.new_context(context))
        out = []
        length = 0
        for chunk in chunks:
            length += len(chunk)
            if length > MAX_OUTPUT:
                chunks.close()  # type: ignore[attr-defined]
                raise LimitReached(f"its output is longer than {MAX_OUTPUT:,} characters")
            out.append(chunk)
        return "".join(out)
    finally:
        BUDGET.reset(token)


def _line_of(exc: BaseException) -> int:
    """The (0-based) template line the innermost template frame of a traceback was at."""
    line = 0
    tb = exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, Template):
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return max(line - 1, 0)
