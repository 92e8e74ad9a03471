"""Login throttling: failed attempts counted per client and in total, in a sliding window.

A client with `per_client` failures inside `window_s` waits until the oldest of them
leaves the window; so does everyone once `in_total` failures happened inside it (a
guesser spread over many addresses). The answer is 429 with `Retry-After`. Counts
live in the serving process (each of `--workers N` keeps its own), in bounded memory:
at most `max_clients` clients are remembered, the least recently seen forgotten first.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass
class Throttle:
    per_client: int = 5
    in_total: int = 50
    window_s: float = 300.0
    max_clients: int = 10_000
    _clients: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _all: deque[float] = field(default_factory=deque)

    def wait(self, client: str, now: float) -> int | None:
        """Whole seconds this client must wait before trying again, or None."""
        waits = [self._wait(self._all, self.in_total, now)]
        mine = self._clients.get(client)
        if mine is not None:
            waits.append(self._wait(mine, self.per_client, now))
        longest = max((w for w in waits if w is not None), default=None)
        return None if longest is None else max(1, math.ceil(longest))

    def failed(self, client: str, now: float) -> None:
        mine = self._clients.pop(client, None) or deque(maxlen=self.per_client)
        mine.append(now)
        self._clients[client] = mine  # most recently seen last
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        self._all.append(now)
        while len(self._all) > self.in_total:
            self._all.popleft()

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def _wait(self, times: deque[float], limit: int, now: float) -> float | None:
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if len(times) < limit:
            return None
        return self.window_s - (now - times[0])
