"""Sizes of template values, and the checks that refuse what would be too large.

`size_of` counts the characters and items a value holds, stopping once past a limit;
`printf_size` and `replace_size` predict the length of `%`-formatting and `replace`
before they run. The `refuse_*` checks raise `LimitReached` for a text or list past
MAX_BUILT or a number past MAX_INT_BITS, and `built`/`collected` check a value an
operation made and charge it to the render's budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.language.templates.budget import BUDGET, take_step
from orchestrator.language.templates.limits import MAX_BUILT, MAX_INT_BITS, LimitReached

CHARGE_FROM = 1_024  # shorter texts are not counted against MAX_BUILT_TOTAL

TEXTS = (str, bytes, bytearray)
NESTED: tuple[type[Any], ...] = (
    list,
    tuple,
    set,
    frozenset,
    dict,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)


def size_of(value: Any, limit: int = MAX_BUILT, *, per_level: int = 0) -> int:
    """Characters and items `value` holds: a list counts its items and the characters of
    the texts in it, an item held twice counts twice (as in its text form). Stops as soon
    as the count passes `limit`. `per_level` adds that much per item and nesting level
    (the indentation of `tojson`/`pprint` output)."""
    if isinstance(value, TEXTS):
        return len(value)
    if per_level:
        return _indented_size(value, limit, per_level)
    budget = BUDGET.get()
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
        take_step(walked // 1_000)
    return total


def _other_size(item: Any, limit: int, extend: Callable[[Iterable[Any]], None]) -> int:
    """`size_of` of a value that is not a plain str, list, tuple or number: its own count,
    having pushed what it holds onto the walk."""
    if isinstance(item, TEXTS):
        return len(item) or 1
    if isinstance(item, int):
        return 1 if item.bit_length() <= 64 else item.bit_length() // 3
    if not isinstance(item, NESTED):
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
    take_step(walked // 1_000)
    return total


def text_size(value: Any) -> int:
    return len(value) if isinstance(value, str) else size_of(value)


def as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def digits(text: str) -> int:
    return int(text) if len(text) < 10 else 10**10


def refuse_text(size: int, what: str) -> None:
    if size > MAX_BUILT:
        raise LimitReached(
            f"{what} would build a text of {size:,} characters (at most {MAX_BUILT:,})"
        )


def refuse_list(size: int, what: str) -> None:
    if size > MAX_BUILT:
        raise LimitReached(
            f"{what} would build a list of more than {MAX_BUILT:,} items and characters"
        )


def refuse_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        size = f"{bits:,} bits" if bits < 10**12 else "more than 10^12 bits"
        raise LimitReached(
            f"{what} would compute a number of {size} (at most {MAX_INT_BITS:,} bits)"
        )


def built(value: Any, what: str) -> Any:
    """Check (and count against the render's budget) a value an operation built."""
    if isinstance(value, TEXTS):
        size = len(value)
        if size >= CHARGE_FROM:
            refuse_text(size, what)
            _charge(size)
    elif isinstance(value, int):
        refuse_bits(value.bit_length(), what)
    elif isinstance(value, NESTED):
        size = size_of(value)
        refuse_list(size, what)
        if size >= CHARGE_FROM:
            _charge(size)
    return value


def _charge(size: int) -> None:
    budget = BUDGET.get()
    if budget is not None:
        budget.build(size)


def collected(items: Iterable[Any], what: str) -> list[Any]:
    """A lazy filter result (`map`, `select`, `batch`, …) as a list, refused as soon as it
    grows past MAX_BUILT."""
    out: list[Any] = []
    total = 0
    for item in items:
        total += size_of(item, MAX_BUILT - total)
        refuse_list(total, what)
        out.append(item)
    if total >= CHARGE_FROM:
        _charge(total)
    return out


# printf conversions: `%(name)-08.3f`, `%*d`, `%%`
_PRINTF = re.compile(r"%(\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?.?", re.DOTALL)


def printf_size(fmt: str | bytes, args: Any) -> int:
    """Upper bound (up to escaping in `%r`/`%a`) of the length of `fmt % args`."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    stars = [abs(a) for a in args if isinstance(a, int)] if isinstance(args, tuple) else []
    star = max(stars, default=0)
    total = len(text) + size_of(args)
    for match in _PRINTF.finditer(text):
        key, width, precision = match.groups()
        for part in (width, precision):
            if part == "*":
                total += star
            elif part:
                total += digits(part)
        if key is not None and isinstance(args, dict):
            total += size_of(args.get(key[1:-1]))  # `%(a)s%(a)s…` repeats one value
    return total


def replace_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return len(text)
    if isinstance(old, str) != isinstance(text, str):
        return len(text)  # a TypeError
    found = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)
