"""Hands one batch to a delivery process, prints the child's pid, then waits to be killed
(used by test_delivery_processes: the child must finish its batch and exit on its own).

    python -m tests.orphaned_delivery SUBSCRIPTIONS_JSON KEY_FILE ORIGIN
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from orchestrator.config import Config
from orchestrator.push.client import ClientSettings
from orchestrator.push.processes import DeliveryProcesses
from tests.conftest import push_request


def main() -> None:
    subs = json.loads(Path(sys.argv[1]).read_text())
    config = Config(
        vapid_private_key=sys.argv[2],
        vapid_subject="mailto:ops@example.com",
        push_allowed_origins=(sys.argv[3],),
    )
    pool = DeliveryProcesses(config, ClientSettings(), 1)
    pool.start(wait=True)
    pool.submit([push_request(i, s, payload=b'{"title":"orphaned"}') for i, s in enumerate(subs)])
    print(pool.pids()[0], flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main()
