"""Jinja's filters and tests, bounded.

A filter's arguments are checked first for the size of the result they predict
(`'x'|center(10**9)` is refused before anything is built), its result after, and each
call and each item it goes through is a step of the render's budget. The groups of
filters and tests named here also tell `rendering` which templates are plain.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from functools import update_wrapper, wraps
from typing import Any

from jinja2 import Undefined, pass_context
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context
from jinja2.utils import _PassArg
from markupsafe import soft_str

from orchestrator.language.templates.budget import BUDGET, take_step
from orchestrator.language.templates.limits import MAX_BUILT, LimitReached
from orchestrator.language.templates.sizes import (
    CHARGE_FROM,
    as_int,
    built,
    collected,
    printf_size,
    refuse_list,
    refuse_text,
    replace_size,
    size_of,
    text_size,
)


def _as_text(value: Any, what: str) -> str:
    """The text a filter makes of its input (as `soft_str`), its size checked first."""
    if isinstance(value, str):
        return value
    refuse_text(size_of(value), what)
    return soft_str(value)


def _check_center(value: Any, width: Any = 80) -> None:
    text = _as_text(value, "filter 'center'")
    refuse_text(max(len(text), as_int(width)), "filter 'center'")


def _check_indent(value: Any, width: Any = 4, first: Any = False, blank: Any = False) -> None:
    text = _as_text(value, "filter 'indent'")
    unit = len(width) if isinstance(width, str) else as_int(width)
    refuse_text(len(text) + (text.count("\n") + 1) * unit, "filter 'indent'")


def _check_wordwrap(
    value: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    break_on_hyphens: Any = True,
) -> None:
    text = _as_text(value, "filter 'wordwrap'")
    # Greedy wrapping: two lines in a row hold more than `width` characters.
    lines = 2 * len(text) // max(as_int(width), 1) + text.count("\n") + 2
    unit = len(wrapstring) if isinstance(wrapstring, str) else 2
    refuse_text(len(text) + lines * unit, "filter 'wordwrap'")


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    text = _as_text(value, "filter 'format'")
    refuse_text(printf_size(text, kwargs or args), "filter 'format'")


def _check_replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
    text = _as_text(value, "filter 'replace'")
    refuse_text(replace_size(text, str(old), str(new), count), "filter 'replace'")


def _check_batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    if as_int(linecount) > MAX_BUILT:
        raise LimitReached(
            f"filter 'batch' would make groups of {linecount:,} items (at most {MAX_BUILT:,})"
        )


def _check_slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    if as_int(slices) > MAX_BUILT:
        raise LimitReached(f"filter 'slice' would make {slices:,} slices (at most {MAX_BUILT:,})")
    take_step(max(as_int(slices), 0))


def _check_urlize(
    value: Any,
    trim_url_limit: Any = None,
    nofollow: Any = False,
    target: Any = None,
    rel: Any = None,
    extra_schemes: Any = None,
) -> None:
    text = _as_text(value, "filter 'urlize'")
    links = sum(text.count(c) for c in ".@:") + 1
    extra = text_size(target or "") + text_size(rel or "") + 64
    refuse_text(2 * len(text) + links * extra, "filter 'urlize'")


def _check_tojson(value: Any, indent: Any = None) -> None:
    unit = len(indent) if isinstance(indent, str) else as_int(indent)
    refuse_text(size_of(value, per_level=unit + 1), "filter 'tojson'")


def _check_pprint(value: Any) -> None:
    refuse_text(size_of(value, per_level=2), "filter 'pprint'")


def _check_int(value: Any, default: Any = 0, base: Any = 10) -> None:
    if isinstance(value, str) and len(value) > sys.get_int_max_str_digits():
        raise LimitReached(
            f"filter 'int' would read a number of {len(value):,} digits "
            f"(at most {sys.get_int_max_str_digits():,})"
        )


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "replace": _check_replace,
    "batch": _check_batch,
    "slice": _check_slice,
    "urlize": _check_urlize,
    "tojson": _check_tojson,
    "pprint": _check_pprint,
    "int": _check_int,
}
# Filters that return one of their arguments or a small value in constant time.
PLAIN_FILTERS = frozenset(
    {"default", "d", "length", "count", "first", "last", "random", "abs", "round", "attr"}
    | {"filesizeformat"}
)
# Filters whose work and result are at most a few times their input, whatever the
# arguments (they are checked all the same).
TEXT_FILTERS = frozenset(
    {"truncate", "trim", "upper", "lower", "title", "capitalize", "striptags", "e", "escape"}
    | {"string", "safe", "urlencode", "float", "wordcount"}
)
# Filters that go through their input: one step per item.
_ITERATING_FILTERS = frozenset(
    {"list", "unique", "sort", "dictsort", "groupby", "items", "min", "max", "reverse"}
    | {"map", "select", "reject", "selectattr", "rejectattr", "batch", "slice"}
)
# Tests that may go through a whole value (comparisons, `in`, the text of `lower`/`upper`).
WALKING_TESTS = frozenset(
    {"in", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt"}
    | {"greaterthan", ">", "ge", ">=", "divisibleby", "lower", "upper"}
)


def _invoker(f: Callable[..., Any]) -> Callable[..., Any]:
    """Call a Jinja filter from a `pass_context` wrapper, passing what it asks for."""
    pass_arg = _PassArg.from_obj(f)
    if pass_arg is _PassArg.context:
        return f
    if pass_arg is _PassArg.eval_context:
        return lambda context, *args, **kwargs: f(context.eval_ctx, *args, **kwargs)
    if pass_arg is _PassArg.environment:
        return lambda context, *args, **kwargs: f(context.environment, *args, **kwargs)
    return lambda context, *args, **kwargs: f(*args, **kwargs)


def _filter_result(value: Any, what: str) -> Any:
    if type(value) is str:
        return value if len(value) < CHARGE_FROM else built(value, what)
    if isinstance(value, Iterator):
        return collected(value, what)
    return built(value, what)


def bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, checked: arguments that predict too large a result are refused first,
    the result is checked after, and each call (and item gone through) is a step.

    The wrapper takes the context, which also keeps Jinja from calling it at compile
    time (constant folding) where no budget applies."""
    if name in PLAIN_FILTERS:
        return f
    if name in TEXT_FILTERS:
        return _text_filter(name, f)
    if name == "join":
        return _bounded_join(f)
    if name == "sum":
        return _bounded_sum(f)
    invoke = _invoker(f)
    check = _FILTER_CHECKS.get(name)
    iterates = name in _ITERATING_FILTERS
    what = f"filter {name!r}"

    @pass_context
    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = BUDGET.get()
        if budget is not None:
            budget.step()
            if iterates:
                value = budget.items(value)
        if check is not None:
            check(value, *args, **kwargs)
        elif not isinstance(value, str) and not iterates:
            refuse_text(size_of(value), what)  # its text form, e.g. `x|string`
        return _filter_result(invoke(context, value, *args, **kwargs), what)

    return update_wrapper(bounded, f, updated=())


def _text_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose work and result are a few times its input: the size of the text it
    makes of its input is checked first, the result after. No step: in a loop, the
    iteration is one; outside, their number is bounded by the length of the template."""
    at = 0 if _PassArg.from_obj(f) is None else 1  # where the input is among the arguments
    what = f"filter {name!r}"

    @wraps(f)  # keeps Jinja's pass_* marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > at and type(args[at]) is not str:
            refuse_text(size_of(args[at]), what)
        return _filter_result(f(*args, **kwargs), what)

    return bounded


def _items_of(context: Context, value: Any, attribute: Any) -> Any:
    budget = BUDGET.get()
    if budget is not None:
        budget.step()
        value = budget.items(value)
    if isinstance(value, Undefined):
        return value
    items = list(value)
    if attribute is not None:
        items = list(map(make_attrgetter(context.environment, attribute), items))
    return items


def _bounded_join(f: Callable[..., Any]) -> Callable[..., Any]:
    @pass_context
    def join(context: Context, value: Any, d: Any = "", attribute: Any = None) -> Any:
        items = _items_of(context, value, attribute)
        if not isinstance(items, Undefined):
            size = max(len(items) - 1, 0) * text_size(d) + sum(map(text_size, items))
            refuse_text(size, "filter 'join'")
        return built(f(context.eval_ctx, items, d), "filter 'join'")

    return update_wrapper(join, f, updated=())


def _bounded_sum(f: Callable[..., Any]) -> Callable[..., Any]:
    @pass_context
    def sum_(context: Context, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        items = _items_of(context, iterable, attribute)
        if isinstance(items, Undefined) or not isinstance(start, (list, tuple)):
            return built(f(context.environment, items, None, start), "filter 'sum'")
        # Joining lists: checked before, and added one by one (each addition is a step).
        size = size_of(start)
        for item in items:
            size += size_of(item)
            refuse_list(size, "filter 'sum'")
        total = start
        for item in items:
            take_step()
            total = total + item
        return built(total, "filter 'sum'")

    return update_wrapper(sum_, f, updated=())


def ticking(f: Any) -> Any:
    """The test `f`, each call of it a step."""

    @wraps(f)  # keeps Jinja's pass_* marker
    def tick(*args: Any, **kwargs: Any) -> Any:
        take_step()
        return f(*args, **kwargs)

    return tick
