"""A tick that kills itself with SIGKILL at a chosen point (used by test_reliability).

    python -m tests.crashing_tick POINT NOW BATCH_SIZE CRASH_BATCH

POINT is where batch number CRASH_BATCH dies:
- in_claim: journeys claimed and ledger rows written, the transaction not yet committed;
- after_claim: the batch committed, nothing sent yet;
- during_sends: half of the batch sent to the push service, the rest not;
- before_outcome: everything sent, no outcome written.
Nothing of our own code is replaced: the real functions run, and the process is killed
the way the kernel's OOM killer or a `kill -9` would do it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator import outcomes, ticking
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.service import open_context


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    point, now, batch_size, crash_batch = (
        sys.argv[1],
        datetime.fromisoformat(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    ctx = open_context()
    batches = 0
    advance, deliver, record = ticking._advance_rows, ctx.delivery.deliver, outcomes.record

    def counting_advance(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        result = advance(*args, **kwargs)
        if point == "in_claim" and batches == crash_batch:
            _die()
        return result

    def crashing_deliver(requests: Sequence[SendRequest]) -> list[SendOutcome]:
        if batches == crash_batch:
            if point == "after_claim":
                _die()
            if point == "during_sends":
                deliver(requests[: len(requests) // 2])
                _die()
        return deliver(requests)

    def crashing_record(*args: Any, **kwargs: Any) -> Any:
        if point == "before_outcome" and batches == crash_batch:
            _die()
        return record(*args, **kwargs)

    ticking._advance_rows = counting_advance  # type: ignore[assignment]
    ctx.delivery.deliver = crashing_deliver  # type: ignore[method-assign]
    ticking.outcomes.record = crashing_record  # type: ignore[assignment]
    ticking.tick(ctx, now=now, batch_size=batch_size)
    print("finished without crashing", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main()
