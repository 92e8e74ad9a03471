"""The bounded sandbox every template is compiled and rendered in.

Jinja's immutable sandboxed environment, with bounded filters and tests (`filters`),
operators, calls, `str`/`bytes` methods and `str.format` that check the size of what
they would build, and the hooks the generated code (`codegen`) calls. `environment()`
is the one strict and the one lenient instance.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Callable
from functools import lru_cache, update_wrapper
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from markupsafe import EscapeFormatter, Markup

from orchestrator.language.templates.budget import BUDGET, take_step
from orchestrator.language.templates.codegen import BoundedCodeGenerator
from orchestrator.language.templates.filters import WALKING_TESTS, bounded_filter, ticking
from orchestrator.language.templates.limits import MAX_BUILT, MAX_DEPTH, LimitReached
from orchestrator.language.templates.sizes import (
    NESTED,
    TEXTS,
    as_int,
    built,
    digits,
    printf_size,
    refuse_bits,
    refuse_list,
    refuse_text,
    replace_size,
    size_of,
    text_size,
)

# str/bytes methods whose arguments predict the size of the result


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _method_pad(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    width = _arg(args, kwargs, 0, "width")
    refuse_text(max(len(text), as_int(width)), f"'.{name}()'")
    return args


def _method_expandtabs(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    tabsize = _arg(args, kwargs, 0, "tabsize")
    tabsize = 8 if tabsize is None else as_int(tabsize)
    tabs = text.count("\t" if isinstance(text, str) else b"\t")
    refuse_text(len(text) + tabs * max(tabsize, 0), f"'.{name}()'")
    return args


def _method_replace(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    old, new, count = (_arg(args, kwargs, i, n) for i, n in enumerate(("old", "new", "count")))
    refuse_text(replace_size(text, old, new, count), f"'.{name}()'")
    return args


def _method_join(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) != 1:
        return args
    budget = BUDGET.get()
    items = list(budget.counted(args[0]) if budget is not None else args[0])
    refuse_text(max(len(items) - 1, 0) * len(text) + sum(map(text_size, items)), f"'.{name}()'")
    return (items,)


def _method_translate(text: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if isinstance(text, str) and args:
        refuse_text(len(text) * max(size_of(args[0]), 1), f"'.{name}()'")
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
        width = max((digits(n) for n in re.findall(r"\d+", format_spec)), default=0)
        refuse_text(self._built + width + text_size(value), "'.format()'")
        text = super().format_field(value, format_spec)
        self._built += len(text)
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    """`Markup.format` in the sandbox, bounded like `_BoundedFormatter`."""


def _finalize(value: Any) -> Any:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, NESTED):
        refuse_text(size_of(value), "printing a list")
    return value


def _check_binop(operator: str, left: Any, right: Any) -> None:
    what = f"operator {operator!r}"
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (*TEXTS, list, tuple)) and isinstance(count, int):
                if seq and count > 0:
                    size = size_of(seq, MAX_BUILT // count + 1) * count
                    (refuse_text if isinstance(seq, TEXTS) else refuse_list)(size, what)
                return
        if isinstance(left, int) and isinstance(right, int):
            refuse_bits(left.bit_length() + right.bit_length(), what)
    elif operator == "+":
        sequences = (*TEXTS, list, tuple)
        if isinstance(left, sequences) and isinstance(right, sequences):
            size = size_of(left) + size_of(right, MAX_BUILT)
            (refuse_text if isinstance(left, TEXTS) else refuse_list)(size, what)
    elif operator == "%":
        if isinstance(left, (str, bytes)):
            refuse_text(printf_size(left, right), what)
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if right.bit_length() > 32 and abs(left) > 1:
            refuse_bits(right, what)  # at least one bit per unit of the exponent
        if abs(left) > 1:
            refuse_bits(math.ceil(right * math.log2(abs(left))), what)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded: filters, str methods and operators check the size
    of what they would build (before building it where the arguments tell), and every
    loop iteration, call, filter and operator is a step of the render's budget."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: bounded_filter(name, f) for name, f in self.filters.items()}
        for name in WALKING_TESTS & set(self.tests):
            self.tests[name] = ticking(self.tests[name])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        take_step()
        _check_binop(operator, left, right)
        return built(self.binop_table[operator](left, right), f"operator {operator!r}")

    def call(
        __self,  # Jinja's own signature: these names never clash with keyword arguments
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget = BUDGET.get()
        if budget is not None:
            budget.step()
        receiver = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", None)
        what = f"'{name}()'" if receiver is None else f"'.{name}()'"
        if isinstance(receiver, (str, bytes)) and name in _TEXT_METHODS:
            args = _TEXT_METHODS[name](receiver, name, args, kwargs)
        elif isinstance(receiver, int) and name == "to_bytes":
            refuse_text(as_int(_arg(args, kwargs, 0, "length")), "'.to_bytes()'")
        if not isinstance(__obj, (Macro, LoopContext)) or budget is None:
            rv = super().call(__context, __obj, *args, **kwargs)
            return built(rv, what)
        if isinstance(__obj, Macro):
            what = f"macro {__obj.name!r}"
            _check_macro_arguments(__obj, args, kwargs)
        elif args:
            what = "recursive loop"
            args = (budget.items(args[0]), *args[1:])
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                raise LimitReached(
                    f"macro calls or recursive loops nest more than {MAX_DEPTH} deep"
                )
            rv = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return built(rv, what)

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

    # Hooks called by the code BoundedCodeGenerator emits.

    def bounded_loop(self, iterable: Any) -> Any:
        budget = BUDGET.get()
        return iterable if budget is None else budget.items(iterable)

    def bounded_step(self) -> bool:
        take_step()
        return True

    def bounded_output(self, text: str) -> str:
        budget = BUDGET.get()
        if budget is not None:
            budget.build(len(text))
        return text

    def bounded_concat(self, parts: tuple[Any, ...], join: Callable[[Any], str]) -> str:
        take_step()
        refuse_text(sum(map(text_size, parts)), "operator '~'")
        return built(join(parts), "operator '~'")  # type: ignore[no-any-return]

    def bounded_slice(self, value: Any, start: Any, stop: Any, step: Any) -> Any:
        take_step()
        return built(value[start:stop:step], "a slice")

    def bounded_literal(self, value: Any) -> Any:
        take_step()
        size = size_of(value)
        refuse_list(size, "a list or dict literal")
        budget = BUDGET.get()
        if budget is not None:
            budget.literal(value, size)
        return value


def _check_macro_arguments(macro: Macro, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Arguments a macro collects in `varargs`/`kwargs` make a new list: checked like one."""
    extra: list[Any] = list(args[len(macro.arguments) :]) if macro.catch_varargs else []
    if macro.catch_kwargs:
        extra += [v for k, v in kwargs.items() if k not in macro.arguments and k[:1] != "_"]
    if extra:
        refuse_list(size_of(extra), f"macro {macro.name!r}")


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
