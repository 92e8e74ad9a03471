"""A bandit split's Thompson sampling (`split: {arms: …, mode: bandit}`).

Each arm's conversion rate is uncertain: after `converted` of `measured` journeys it is
taken as Beta(1 + converted, 1 + measured − converted) (a uniform prior updated by the
arm's measured journeys). A journey draws one rate from every arm's distribution and
takes the arm with the largest draw, so an arm is chosen as often as it is likely to be
the best: a clearly better arm gets nearly every journey, arms the data cannot yet tell
apart keep sharing them.

Pure: the tallies come from the caller (the tick reads them once per tick), and the
draws come from a generator seeded by the journey's arrival (`generator`), so the same
arrival with the same tallies takes the same arm. `state.pick_split` decides when a
journey is sampled at all (the explore share and a split without data go by the
weights).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from typing import TypeAlias

SplitTallies: TypeAlias = Mapping[tuple[str, str], tuple[int, int]]
"""(split node, arm) -> (measured journeys, of those the converted)."""


def measured(
    tallies: SplitTallies | None, split: str, arms: Iterable[str]
) -> dict[str, tuple[int, int]] | None:
    """Each arm's (measured, converted) at `split`, an arm without entries at (0, 0); None
    when no arm has a measured journey (nothing to learn from yet)."""
    if not tallies:
        return None
    out = {arm: tallies.get((split, arm), (0, 0)) for arm in arms}
    if not any(n > 0 for n, _ in out.values()):
        return None
    return out


def generator(*parts: str) -> random.Random:
    """A random generator seeded by `parts` alone: the same parts, the same draws."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def sample(counts: Mapping[str, tuple[int, int]], rng: random.Random) -> str:
    """Thompson sampling: one draw from each arm's Beta(1 + converted, 1 + measured −
    converted), in the order of `counts` (the file's); the arm with the largest draw,
    the earlier of equal draws."""
    best, top = "", -1.0
    for arm, (n, k) in counts.items():
        k = min(max(k, 0), max(n, 0))
        draw = rng.betavariate(1 + k, 1 + max(n, 0) - k)
        if draw > top:
            best, top = arm, draw
    return best
