"""A tick that kills itself with SIGKILL at a chosen point (used by test_reliability).

    python -m tests.crashing_tick POINT NOW BATCH_SIZE CRASH_BATCH

POINT is where batch number CRASH_BATCH dies:
- in_claim: journeys claimed and ledger rows written, the transaction not yet committed;
- after_claim: the batch committed, nothing of it sent yet;
- during_sends: half of the batch sent to the push service, the rest not;
- before_outcome: everything of it sent, its outcome not written.
(The tick overlaps batches: the previous batch's pushes may be on the wire, unrecorded,
when the next one is claimed; the kill catches that too.)
Nothing of our own code is replaced: the real functions run, and the process is killed
the way the kernel's OOM killer or a `kill -9` would do it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from orchestrator.app import outcomes, ticking
from orchestrator.app.service import open_context
from orchestrator.delivery import SendOutcome, SendRequest


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
    batches = records = 0
    advance, start, record = ticking.advance_rows, ctx.delivery.submit, outcomes.record

    def counting_advance(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        result = advance(*args, **kwargs)
        if point == "in_claim" and batches == crash_batch:
            _die()
        return result

    def crashing_submit(requests: Sequence[SendRequest]) -> Future[list[SendOutcome]]:
        if batches == crash_batch:
            if point == "after_claim":
                _die()
            if point == "during_sends":
                start(requests[: len(requests) // 2]).result()
                _die()
        return start(requests)

    def crashing_record(*args: Any, **kwargs: Any) -> Any:
        nonlocal records
        records += 1
        if point == "before_outcome" and records == crash_batch:
            _die()
        return record(*args, **kwargs)

    ticking.advance_rows = counting_advance  # type: ignore[assignment]
    ctx.delivery.submit = crashing_submit  # type: ignore[attr-defined]
    ticking.outcomes.record = crashing_record  # type: ignore[assignment]
    ticking.tick(ctx, now=now, batch_size=batch_size)
    print("finished without crashing", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main()
