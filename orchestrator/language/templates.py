"""Notification templates: Jinja2 in a sandbox, checked at validation, rendered at send time.

Templates see `subscriber` (id, attributes, tags, timezone), `campaign` (id,
title), `node` (id) and, in triggered sub-campaigns, `trigger` (event,
properties, at). The sandbox refuses attribute access to internals
(`''.__class__.__mro__` and friends) and anything unsafe to call.

Rendering is bounded (docs/language.md, "Template limits"): no text or list an operation
builds may exceed MAX_BUILT, whole numbers stay within MAX_INT_BITS, and one render takes
at most MAX_STEPS steps and MAX_RENDER_SECONDS, builds at most MAX_BUILT_TOTAL in all,
nests macro calls at most MAX_DEPTH deep and outputs at most MAX_OUTPUT characters.
Growth an operation's arguments predict (`'x'|center(10**9)`, `'x' * 10**9`,
`7 ** 300000000`) is refused before anything is allocated. The limits hold both when a
campaign is validated (every notification is rendered with a worst-case context) and
at send time; going past one raises TemplateLimitError.
"""

from __future__ import annotations

import contextvars
import difflib
import math
import re
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, update_wrapper, wraps
from typing import Any

from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    meta,
    nodes,
    pass_context,
)
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import _PassArg
from markupsafe import EscapeFormatter, Markup, soft_str

from orchestrator.errors import TemplateRenderError

TOP_LEVEL_NAMES = ("subscriber", "campaign", "node", "trigger")

# Longest text or list one operation of a template may build (a list counts its items and
# the characters of texts in it): far beyond any payload (3,993 bytes), far below what
# would exhaust memory (`{{ 'x' * 10**12 }}`).
MAX_BUILT = 100_000
# Everything one render may build in all (texts, lists, captured output of macros and
# `{% set %}` blocks): bounds the memory of a render.
MAX_BUILT_TOTAL = 1_000_000
# Largest whole number (in bits, about 1,233 decimal digits) a template may compute.
MAX_INT_BITS = 4_096
# Longest output of one template; a whole notification payload is at most 3,993 bytes.
MAX_OUTPUT = 16_384
# Steps of one render: loop iterations, calls, operators, comparisons of two variables,
# and one per item a filter goes through.
MAX_STEPS = 50_000
# Time one render may take (checked every few steps).
MAX_RENDER_SECONDS = 0.2
# Nesting of macro calls and recursive loops.
MAX_DEPTH = 30
# Longest template source: compiling a template costs time and memory in its length.
MAX_TEMPLATE_LENGTH = 10_000

# Longest values the engine allows (enforced at import / event intake).
MAX_SUBSCRIBER_ID = 128
MAX_TIMEZONE = 40
MAX_EVENT_NAME = 64


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line_offset: int  # 0-based line inside the template text


class TemplateLimitError(TemplateRenderError):
    """A template went past one of the render limits; `line_offset` is the (0-based) line
    inside the template text where it did."""

    def __init__(self, message: str, line_offset: int = 0) -> None:
        super().__init__(message)
        self.line_offset = line_offset


class _LimitReached(Exception):
    """Raised inside the sandbox; `render` turns it into TemplateLimitError. (Jinja's
    compile-time constant folding swallows it: the expression is then left to run time.)"""


# ------------------------------------------------------------------ the render's budget


_CLOCK_EVERY = 32  # steps between two looks at the clock
_CHARGE_FROM = 1_024  # shorter texts are not counted against MAX_BUILT_TOTAL
_LITERALS_KEPT = 256  # literal sizes a render remembers


class _Budget:
    """Steps, time, everything built and the nesting depth of one render."""

    __slots__ = ("built", "deadline", "depth", "literals", "next_clock", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.next_clock = _CLOCK_EVERY
        self.built = 0
        self.depth = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        # Sizes of the latest list, tuple and dict literals this render made (by id, with
        # the value, which keeps the id valid): a literal holding earlier ones is measured
        # without walking them again. (The sandbox lets no template change a list.)
        self.literals: dict[int, tuple[Any, int]] = {}

    def literal(self, value: Any, size: int) -> None:
        if len(self.literals) >= _LITERALS_KEPT:
            del self.literals[next(iter(self.literals))]
        self.literals[id(value)] = (value, size)

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps >= self.next_clock:
            self._clock()

    def _clock(self) -> None:
        if self.steps > MAX_STEPS:
            raise _LimitReached(
                f"it takes more than {MAX_STEPS:,} steps (loop iterations, calls, operators, "
                "comparisons and the items filters go through)"
            )
        if time.monotonic() > self.deadline:
            raise _LimitReached(
                f"rendering it takes longer than {MAX_RENDER_SECONDS * 1000:.0f} ms"
            )
        self.next_clock = min(self.steps + _CLOCK_EVERY, MAX_STEPS + 1)

    def build(self, size: int) -> None:
        self.built += size
        if self.built > MAX_BUILT_TOTAL:
            raise _LimitReached(
                f"it builds more than {MAX_BUILT_TOTAL:,} characters and list items in all"
            )

    def items(self, value: Any) -> Any:
        """`value`, about to be gone through (by a loop or a filter): one step per item,
        taken at once when its length is known (a loop always runs to its end)."""
        if isinstance(value, Undefined):
            return value
        try:
            count = len(value)
        except TypeError:
            return self.counted(value)
        self.step(count + 1)
        return value

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.steps += 1
            if self.steps >= self.next_clock:
                self._clock()
            yield item


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def _step(count: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step(count)


# ------------------------------------------------------------------ sizes


_TEXTS = (str, bytes, bytearray)
_NESTED: tuple[type[Any], ...] = (
    list,
    tuple,
    set,
    frozenset,
    dict,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)


def _size(value: Any, limit: int = MAX_BUILT, *, per_level: int = 0) -> int:
    """Characters and items `value` holds: a list counts its items and the characters of
    the texts in it, an item held twice counts twice (as in its text form). Stops as soon
    as the count passes `limit`. `per_level` adds that much per item and nesting level
    (the indentation of `tojson`/`pprint` output)."""
    if isinstance(value, _TEXTS):
        return len(value)
    if per_level:
        return _indented_size(value, limit, per_level)
    budget = _BUDGET.get()
    literals = budget.literals if budget is not None else {}
    total = 0
    walked = 0
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack and total <= limit:
        item = pop()
        walked += 1
        kind = type(item)
        if kind is str:
            total += len(item) or 1
        elif kind is list or kind is tuple:
            known = literals.get(id(item))
            if known is not None and known[0] is item:
                total += known[1]
            elif len(item) > limit:
                total += len(item)
            elif item:
                extend(item)
            else:
                total += 1
        elif kind is int or kind is bool or kind is float or item is None:
            total += 1 if kind is not int or item.bit_length() <= 64 else item.bit_length() // 3
        elif kind is dict and (known := literals.get(id(item))) is not None and known[0] is item:
            total += known[1]
        else:
            total += _other_size(item, limit, extend)
    if walked > 1_000:
        _step(walked // 1_000)
    return total


def _other_size(item: Any, limit: int, extend: Callable[[Iterable[Any]], None]) -> int:
    """`_size` of a value that is not a plain str, list, tuple or number: its own count,
    having pushed what it holds onto the walk."""
    if isinstance(item, _TEXTS):
        return len(item) or 1
    if isinstance(item, int):
        return 1 if item.bit_length() <= 64 else item.bit_length() // 3
    if not isinstance(item, _NESTED):
        return 1
    if len(item) > limit:
        return len(item)
    if not item:
        return 1
    if isinstance(item, dict):
        extend(part for pair in item.items() for part in pair)
    else:
        extend(item)
    return 0


def _indented_size(value: Any, limit: int, per_level: int) -> int:
    total = 0
    walked = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and total <= limit:
        item, level = stack.pop()
        walked += 1
        parts: list[Any] = []
        total += level * per_level + _other_size(item, limit, parts.extend)
        stack.extend((part, level + 1) for part in parts)
    _step(walked // 1_000)
    return total


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, str) else _size(value)


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _digits(text: str) -> int:
    return int(text) if len(text) < 10 else 10**10


def _refuse_text(size: int, what: str) -> None:
    if size > MAX_BUILT:
        raise _LimitReached(
            f"{what} would build a text of {size:,} characters (at most {MAX_BUILT:,})"
        )


def _refuse_list(size: int, what: str) -> None:
    if size > MAX_BUILT:
        raise _LimitReached(
            f"{what} would build a list of more than {MAX_BUILT:,} items and characters"
        )


def _refuse_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        size = f"{bits:,} bits" if bits < 10**12 else "more than 10^12 bits"
        raise _LimitReached(
            f"{what} would compute a number of {size} (at most {MAX_INT_BITS:,} bits)"
        )


def _built(value: Any, what: str) -> Any:
    """Check (and count against the render's budget) a value an operation built."""
    if isinstance(value, _TEXTS):
        size = len(value)
        if size >= _CHARGE_FROM:
            _refuse_text(size, what)
            _charge(size)
    elif isinstance(value, int):
        _refuse_bits(value.bit_length(), what)
    elif isinstance(value, _NESTED):
        size = _size(value)
        _refuse_list(size, what)
        if size >= _CHARGE_FROM:
            _charge(size)
    return value


def _charge(size: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.build(size)


def _collected(items: Iterable[Any], what: str) -> list[Any]:
    """A lazy filter result (`map`, `select`, `batch`, …) as a list, refused as soon as it
    grows past MAX_BUILT."""
    out: list[Any] = []
    total = 0
    for item in items:
        total += _size(item, MAX_BUILT - total)
        _refuse_list(total, what)
        out.append(item)
    if total >= _CHARGE_FROM:
        _charge(total)
    return out


# ------------------------------------------------------------------ predicted sizes


# printf conversions: `%(name)-08.3f`, `%*d`, `%%`
_PRINTF = re.compile(r"%(\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?.?", re.DOTALL)


def _printf_size(fmt: str | bytes, args: Any) -> int:
    """Upper bound (up to escaping in `%r`/`%a`) of the length of `fmt % args`."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    stars = [abs(a) for a in args if isinstance(a, int)] if isinstance(args, tuple) else []
    star = max(stars, default=0)
    total = len(text) + _size(args)
    for match in _PRINTF.finditer(text):
        key, width, precision = match.groups()
        for part in (width, precision):
            if part == "*":
                total += star
            elif part:
                total += _digits(part)
        if key is not None and isinstance(args, dict):
            total += _size(args.get(key[1:-1]))  # `%(a)s%(a)s…` repeats one value
    return total


def _replace_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return len(text)
    if isinstance(old, str) != isinstance(text, str):
        return len(text)  # a TypeError
    found = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _as_text(value: Any, what: str) -> str:
    """The text a filter makes of its input (as `soft_str`), its size checked first."""
    if isinstance(value, str):
        return value
    _refuse_text(_size(value), what)
    return soft_str(value)


def _check_center(value: Any, width: Any = 80) -> None:
    text = _as_text(value, "filter 'center'")
    _refuse_text(max(len(text), _as_int(width)), "filter 'center'")


def _check_indent(value: Any, width: Any = 4, first: Any = False, blank: Any = False) -> None:
    text = _as_text(value, "filter 'indent'")
    unit = len(width) if isinstance(width, str) else _as_int(width)
    _refuse_text(len(text) + (text.count("\n") + 1) * unit, "filter 'indent'")


def _check_wordwrap(
    value: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    break_on_hyphens: Any = True,
) -> None:
    text = _as_text(value, "filter 'wordwrap'")
    # Greedy wrapping: two lines in a row hold more than `width` characters.
    lines = 2 * len(text) // max(_as_int(width), 1) + text.count("\n") + 2
    unit = len(wrapstring) if isinstance(wrapstring, str) else 2
    _refuse_text(len(text) + lines * unit, "filter 'wordwrap'")


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    text = _as_text(value, "filter 'format'")
    _refuse_text(_printf_size(text, kwargs or args), "filter 'format'")


def _check_replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
    text = _as_text(value, "filter 'replace'")
    _refuse_text(_replace_size(text, str(old), str(new), count), "filter 'replace'")


def _check_batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    if _as_int(linecount) > MAX_BUILT:
        raise _LimitReached(
            f"filter 'batch' would make groups of {linecount:,} items (at most {MAX_BUILT:,})"
        )


def _check_slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    if _as_int(slices) > MAX_BUILT:
        raise _LimitReached(f"filter 'slice' would make {slices:,} slices (at most {MAX_BUILT:,})")
    _step(max(_as_int(slices), 0))


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
    extra = _text_size(target or "") + _text_size(rel or "") + 64
    _refuse_text(2 * len(text) + links * extra, "filter 'urlize'")


def _check_tojson(value: Any, indent: Any = None) -> None:
    unit = len(indent) if isinstance(indent, str) else _as_int(indent)
    _refuse_text(_size(value, per_level=unit + 1), "filter 'tojson'")


def _check_pprint(value: Any) -> None:
    _refuse_text(_size(value, per_level=2), "filter 'pprint'")


def _check_int(value: Any, default: Any = 0, base: Any = 10) -> None:
    if isinstance(value, str) and len(value) > sys.get_int_max_str_digits():
        raise _LimitReached(
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
_PLAIN_FILTERS = frozenset(
    {"default", "d", "length", "count", "first", "last", "random", "abs", "round", "attr"}
    | {"filesizeformat"}
)
# Filters whose work and result are at most a few times their input, whatever the
# arguments (they are checked all the same).
_TEXT_FILTERS = frozenset(
    {"truncate", "trim", "upper", "lower", "title", "capitalize", "striptags", "e", "escape"}
    | {"string", "safe", "urlencode", "float", "wordcount"}
)
# Filters that go through their input: one step per item.
_ITERATING_FILTERS = frozenset(
    {"list", "unique", "sort", "dictsort", "groupby", "items", "min", "max", "reverse"}
    | {"map", "select", "reject", "selectattr", "rejectattr", "batch", "slice"}
)
# Tests that may go through a whole value (comparisons, `in`, the text of `lower`/`upper`).
_WALKING_TESTS = frozenset(
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
        return value if len(value) < _CHARGE_FROM else _built(value, what)
    if isinstance(value, Iterator):
        return _collected(value, what)
    return _built(value, what)


def _bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, checked: arguments that predict too large a result are refused first,
    the result is checked after, and each call (and item gone through) is a step.

    The wrapper takes the context, which also keeps Jinja from calling it at compile
    time (constant folding) where no budget applies."""
    if name in _PLAIN_FILTERS:
        return f
    if name in _TEXT_FILTERS:
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
        budget = _BUDGET.get()
        if budget is not None:
            budget.step()
            if iterates:
                value = budget.items(value)
        if check is not None:
            check(value, *args, **kwargs)
        elif not isinstance(value, str) and not iterates:
            _refuse_text(_size(value), what)  # its text form, e.g. `x|string`
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
            _refuse_text(_size(args[at]), what)
        return _filter_result(f(*args, **kwargs), what)

    return bounded


def _items_of(context: Context, value: Any, attribute: Any) -> Any:
    budget = _BUDGET.get()
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
            size = max(len(items) - 1, 0) * _text_size(d) + sum(map(_text_size, items))
            _refuse_text(size, "filter 'join'")
        return _built(f(context.eval_ctx, items, d), "filter 'join'")

    return update_wrapper(join, f, updated=())


def _bounded_sum(f: Callable[..., Any]) -> Callable[..., Any]:
    @pass_context
    def sum_(context: Context, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        items = _items_of(context, iterable, attribute)
        if isinstance(items, Undefined) or not isinstance(start, (list, tuple)):
            return _built(f(context.environment, items, None, start), "filter 'sum'")
        # Joining lists: checked before, and added one by one (each addition is a step).
        size = _size(start)
        for item in items:
            size += _size(item)
            _refuse_list(size, "filter 'sum'")
        total = start
        for item in items:
            _step()
            total = total + item
        return _built(total, "filter 'sum'")

    return update_wrapper(sum_, f, updated=())


def _ticking(f: Any) -> Any:
    @wraps(f)  # keeps Jinja's pass_* marker
    def ticking(*args: Any, **kwargs: Any) -> Any:
        _step()
        return f(*args, **kwargs)

    return ticking


# str/bytes methods whose arguments predict the size of the result


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _method_pad(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    width = _arg(args, kwargs, 0, "width")
    _refuse_text(max(len(text), _as_int(width)), f"'.{name}()'")
    return args


def _method_expandtabs(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    tabsize = _arg(args, kwargs, 0, "tabsize")
    tabsize = 8 if tabsize is None else _as_int(tabsize)
    tabs = text.count("\t" if isinstance(text, str) else b"\t")
    _refuse_text(len(text) + tabs * max(tabsize, 0), f"'.{name}()'")
    return args


def _method_replace(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    old, new, count = (_arg(args, kwargs, i, n) for i, n in enumerate(("old", "new", "count")))
    _refuse_text(_replace_size(text, old, new, count), f"'.{name}()'")
    return args


def _method_join(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) != 1:
        return args
    budget = _BUDGET.get()
    items = list(budget.counted(args[0]) if budget is not None else args[0])
    _refuse_text(max(len(items) - 1, 0) * len(text) + sum(map(_text_size, items)), f"'.{name}()'")
    return (items,)


def _method_translate(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if isinstance(text, str) and args:
        _refuse_text(len(text) * max(_size(args[0]), 1), f"'.{name}()'")
    return args


_TEXT_METHODS: dict[str, Callable[..., Any]] = {
    "center": _method_pad,
    "ljust": _method_pad,
    "rjust": _method_pad,
    "zfill": _method_pad,
    "expandtabs": _method_expandtabs,
    "replace": _method_replace,
    "join": _method_join,
    "translate": _method_translate,
}


class _BoundedFormatter(SandboxedFormatter):
    """`str.format` in the sandbox, refusing (before formatting a field) to build more
    than MAX_BUILT characters: `'{:>999999999}'.format(x)`, `'{0}{0}{0}…'.format(big)`."""

    def __init__(self, env: Any, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._built = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        width = max((_digits(n) for n in re.findall(r"\d+", format_spec)), default=0)
        _refuse_text(self._built + width + _text_size(value), "'.format()'")
        text = super().format_field(value, format_spec)
        self._built += len(text)
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    """`Markup.format` in the sandbox, bounded like `_BoundedFormatter`."""


# ------------------------------------------------------------------ code generation


_REFUSED_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Block: "block",
}


def _refusal(statement: nodes.Node) -> str:
    keyword = _REFUSED_STATEMENTS[type(statement)]
    return (
        f"templates cannot use '{{% {keyword} %}}': each notification field is a template "
        "of its own (include, import, extends and block are not available)"
    )


def _constant(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Const):
        return True
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return all(isinstance(item, nodes.Const) for item in node.items)
    return False


def _cheap_comparison(node: nodes.Compare) -> bool:
    """A comparison with a constant (`x == 'pro'`, `x in ['a', 'b']`) costs little; others
    (`a == b`, `'x' in some_list`) may walk a whole list, and are a step each."""
    left: nodes.Node = node.expr
    for operand in node.ops:
        right = operand.expr
        if operand.op in ("in", "notin"):
            if not _constant(right):
                return False
        elif not (_constant(left) or _constant(right)):
            return False
        left = right
    return True


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator with the hooks of the render limits: `for` loops count
    their items, output captured by macros and `{% set %}`/`{% filter %}`/`{% call %}`
    blocks counts against MAX_BUILT_TOTAL, `~` and slices check their size, list and
    dict literals their contents, comparisons of two variables are steps; include,
    import, extends and block are refused."""

    _buffered = False

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for statement in node.find_all(tuple(_REFUSED_STATEMENTS)):
            self.fail(_refusal(statement), statement.lineno)
        for loop in list(node.find_all(nodes.For)):
            # `for x in environment.bounded_loop(ITER)`: each item is a step.
            counted = nodes.EnvironmentAttribute("bounded_loop", lineno=loop.iter.lineno)
            loop.iter = nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        hook = node.node
        if isinstance(hook, nodes.EnvironmentAttribute) and hook.name == "bounded_loop":
            # A call the parser never makes: the loop hook above, called directly.
            self.write("environment.bounded_loop(")
            self.visit(node.args[0], frame)
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        self._buffered = frame.buffer is not None
        try:
            super().visit_Output(node, frame)
        finally:
            self._buffered = False

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        text = super()._output_const_repr(group)
        return f"environment.bounded_output({text})" if self._buffered else text

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.buffer is not None:
            self.write("environment.bounded_output(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        if frame.buffer is not None:
            self.write(")")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(f"), {join})")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.bounded_slice(")
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        if _cheap_comparison(node):
            super().visit_Compare(node, frame)
            return
        self.write("(environment.bounded_step() and ")
        super().visit_Compare(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load" or _constant(node):
            super().visit_Tuple(node, frame)
            return
        self.write("environment.bounded_literal(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        if _constant(node):
            super().visit_List(node, frame)
            return
        self.write("environment.bounded_literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.bounded_literal(")
        super().visit_Dict(node, frame)
        self.write(")")


# ------------------------------------------------------------------ the sandbox


def _finalize(value: Any) -> Any:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, _NESTED):
        _refuse_text(_size(value), "printing a list")
    return value


def _check_binop(operator: str, left: Any, right: Any) -> None:
    what = f"operator {operator!r}"
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (*_TEXTS, list, tuple)) and isinstance(count, int):
                if seq and count > 0:
                    size = _size(seq, MAX_BUILT // count + 1) * count
                    (_refuse_text if isinstance(seq, _TEXTS) else _refuse_list)(size, what)
                return
        if isinstance(left, int) and isinstance(right, int):
            _refuse_bits(left.bit_length() + right.bit_length(), what)
    elif operator == "+":
        sequences = (*_TEXTS, list, tuple)
        if isinstance(left, sequences) and isinstance(right, sequences):
            size = _size(left) + _size(right, MAX_BUILT)
            (_refuse_text if isinstance(left, _TEXTS) else _refuse_list)(size, what)
    elif operator == "%":
        if isinstance(left, (str, bytes)):
            _refuse_text(_printf_size(left, right), what)
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if right.bit_length() > 32 and abs(left) > 1:
            _refuse_bits(right, what)  # at least one bit per unit of the exponent
        if abs(left) > 1:
            _refuse_bits(math.ceil(right * math.log2(abs(left))), what)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded: filters, str methods and operators check the size
    of what they would build (before building it where the arguments tell), and every
    loop iteration, call, filter and operator is a step of the render's budget."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        for name in _WALKING_TESTS & set(self.tests):
            self.tests[name] = _ticking(self.tests[name])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        return _built(self.binop_table[operator](left, right), f"operator {operator!r}")

    def call(
        __self,  # Jinja's own signature: these names never clash with keyword arguments
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.step()
        receiver = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", None)
        what = f"'{name}()'" if receiver is None else f"'.{name}()'"
        if isinstance(receiver, (str, bytes)) and name in _TEXT_METHODS:
            args = _TEXT_METHODS[name](receiver, name, args, kwargs)
        elif isinstance(receiver, int) and name == "to_bytes":
            _refuse_text(_as_int(_arg(args, kwargs, 0, "length")), "'.to_bytes()'")
        if not isinstance(__obj, (Macro, LoopContext)) or budget is None:
            rv = super().call(__context, __obj, *args, **kwargs)
            return _built(rv, what)
        if isinstance(__obj, Macro):
            what = f"macro {__obj.name!r}"
            _check_macro_arguments(__obj, args, kwargs)
        elif args:
            what = "recursive loop"
            args = (budget.items(args[0]), *args[1:])
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                raise _LimitReached(
                    f"macro calls or recursive loops nest more than {MAX_DEPTH} deep"
                )
            rv = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return _built(rv, what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed `str.format`/`format_map`, with a bounded formatter."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            formatter: _BoundedFormatter
            if isinstance(text, Markup):
                formatter = _BoundedEscapeFormatter(self, escape=text.escape)
            else:
                formatter = _BoundedFormatter(self)
            return type(text)(formatter.vformat(text, args, kwargs))

        return update_wrapper(wrapper, value)

    # Hooks called by the code _CodeGenerator emits.

    def bounded_loop(self, iterable: Any) -> Any:
        budget = _BUDGET.get()
        return iterable if budget is None else budget.items(iterable)

    def bounded_step(self) -> bool:
        _step()
        return True

    def bounded_output(self, text: str) -> str:
        budget = _BUDGET.get()
        if budget is not None:
            budget.build(len(text))
        return text

    def bounded_concat(self, parts: tuple[Any, ...], join: Callable[[Any], str]) -> str:
        _step()
        _refuse_text(sum(map(_text_size, parts)), "operator '~'")
        return _built(join(parts), "operator '~'")  # type: ignore[no-any-return]

    def bounded_slice(self, value: Any, start: Any, stop: Any, step: Any) -> Any:
        _step()
        return _built(value[start:stop:step], "a slice")

    def bounded_literal(self, value: Any) -> Any:
        _step()
        size = _size(value)
        _refuse_list(size, "a list or dict literal")
        budget = _BUDGET.get()
        if budget is not None:
            budget.literal(value, size)
        return value


def _check_macro_arguments(macro: Macro, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Arguments a macro collects in `varargs`/`kwargs` make a new list: checked like one."""
    extra: list[Any] = list(args[len(macro.arguments) :]) if macro.catch_varargs else []
    if macro.catch_kwargs:
        extra += [v for k, v in kwargs.items() if k not in macro.arguments and k[:1] != "_"]
    if extra:
        _refuse_list(_size(extra), f"macro {macro.name!r}")


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
    """Syntax errors, statements that need other templates (include, import, extends,
    block) and unknown top-level names of one template string. (Render limits are found
    by rendering: see `render`.)"""
    if len(source) > MAX_TEMPLATE_LENGTH:
        return [TemplateProblem(f"template exceeds a limit: {_TOO_LONG.format(len(source))}", 0)]
    try:
        return _problems(_parse(source), allowed)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"template syntax error: {exc.message}", max(exc.lineno - 1, 0))]
    except RecursionError:
        return [TemplateProblem(f"template exceeds a limit: {_TOO_DEEP}", 0)]


def _problems(ast: nodes.Template, allowed: tuple[str, ...]) -> list[TemplateProblem]:
    problems = [
        TemplateProblem(_refusal(found), max(found.lineno - 1, 0))
        for found in ast.find_all(tuple(_REFUSED_STATEMENTS))
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
        return frozenset(meta.find_undeclared_variables(_parse(source)))
    except (TemplateSyntaxError, RecursionError):
        return frozenset()


@lru_cache(maxsize=4096)
def _compiled(source: str, strict: bool) -> tuple[Template, bool]:
    """The compiled template, and whether it is plain (see `_is_plain`)."""
    return environment(strict=strict).from_string(source), _is_plain(_parse(source))


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
        if isinstance(node, nodes.Filter) and node.name in _PLAIN_FILTERS | _TEXT_FILTERS:
            continue
        if isinstance(node, nodes.Test) and node.name not in _WALKING_TESTS:
            continue
        if isinstance(node, nodes.Compare) and _cheap_comparison(node):
            continue
        return False
    return True


_TOO_LONG = f"it is {{:,}} characters long (at most {MAX_TEMPLATE_LENGTH:,})"
_TOO_DEEP = "it nests too deeply (recursive macros or loops, or deeply nested brackets)"


def render(source: str, context: dict[str, Any], *, strict: bool = True) -> str:
    """Render one template within the render limits. Raises TemplateRenderError with a
    reason an author understands (TemplateLimitError when a limit is reached)."""
    if not is_template(source):
        return source
    try:
        return _render(source, context, strict)
    except _LimitReached as exc:
        raise TemplateLimitError(f"template exceeds a limit: {exc}", _line_of(exc)) from None
    except (RecursionError, SyntaxError) as exc:
        # SyntaxError: Python's own nesting limit, compiling a deeply nested expression.
        raise TemplateLimitError(f"template exceeds a limit: {_TOO_DEEP}", _line_of(exc)) from None
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
        raise _LimitReached(_TOO_LONG.format(len(source)))
    template, plain = _compiled(source, strict)
    if plain:
        text = "".join(template.root_render_func(template.new_context(context)))
        if len(text) > MAX_OUTPUT:
            raise _LimitReached(f"its output is longer than {MAX_OUTPUT:,} characters")
        return text
    token = _BUDGET.set(_Budget())
    try:
        chunks = template.root_render_func(template.new_context(context))
        out = []
        length = 0
        for chunk in chunks:
            length += len(chunk)
            if length > MAX_OUTPUT:
                chunks.close()  # type: ignore[attr-defined]
                raise _LimitReached(f"its output is longer than {MAX_OUTPUT:,} characters")
            out.append(chunk)
        return "".join(out)
    finally:
        _BUDGET.reset(token)


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
