"""One render's budget: the steps it takes, its deadline, everything it builds and how
deep its macro calls nest.

The budget of the render under way is in the context variable `BUDGET` (None outside a
bounded render), so the sandbox's hooks, the filters and the size checks charge it
without passing it around; `take_step` counts steps against it.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import Undefined

from orchestrator.language.templates.limits import (
    MAX_BUILT_TOTAL,
    MAX_RENDER_SECONDS,
    MAX_STEPS,
    LimitReached,
)

_CLOCK_EVERY = 32  # steps between two looks at the clock
_LITERALS_KEPT = 256  # literal sizes a render remembers


class Budget:
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
            raise LimitReached(
                f"it takes more than {MAX_STEPS:,} steps (loop iterations, calls, operators, "
                "comparisons and the items filters go through)"
            )
        if time.monotonic() > self.deadline:
            raise LimitReached(f"rendering it takes longer than {MAX_RENDER_SECONDS * 1000:.0f} ms")
        self.next_clock = min(self.steps + _CLOCK_EVERY, MAX_STEPS + 1)

    def build(self, size: int) -> None:
        self.built += size
        if self.built > MAX_BUILT_TOTAL:
            raise LimitReached(
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


BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def take_step(count: int = 1) -> None:
    budget = BUDGET.get()
    if budget is not None:
        budget.step(count)
