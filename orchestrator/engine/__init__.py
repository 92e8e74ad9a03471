"""The engine: the pure state machine that walks one journey through a campaign's graph.

`machine` decides, from a journey's state, the subscriber's view, the events seen and
the clock, what happens next (send, wait, branch, split, exit) and when, over the types
of `state`; it touches no database, network or clock of its own, so the tick, the
simulator and the property tests run the same decisions. `sendtime` chooses a
`send_time: best` send's hour from the tallies the tick passes in, and `bandit` samples
a `mode: bandit` split's arm from the arms' tallies. `enrolment` starts journeys (who
may enter, the holdout) and `timing` says when quiet hours and the frequency cap let a
send go. `invariants` checks a journey's sends against the rules the language promises
(spacing, caps, quiet hours, max sends).

It imports only the language.
"""

from orchestrator.engine import bandit, sendtime
from orchestrator.engine.enrolment import Past, enroll, in_holdout, may_enter, wake_names
from orchestrator.engine.machine import (
    MAX_SKIPS,
    MAX_STEPS_PER_ADVANCE,
    Action,
    EventView,
    JourneyState,
    MembershipsNeeded,
    Phase,
    Result,
    SubscriberView,
    abandon_send,
    advance,
    edge_targets,
    pick_split,
    skip_send,
    stable_fraction,
)
from orchestrator.engine.timing import frequency_until, quiet_until

__all__ = [
    "MAX_SKIPS",
    "MAX_STEPS_PER_ADVANCE",
    "Action",
    "EventView",
    "JourneyState",
    "MembershipsNeeded",
    "Past",
    "Phase",
    "Result",
    "SubscriberView",
    "abandon_send",
    "advance",
    "bandit",
    "edge_targets",
    "enroll",
    "frequency_until",
    "in_holdout",
    "invariants",
    "may_enter",
    "pick_split",
    "quiet_until",
    "sendtime",
    "skip_send",
    "stable_fraction",
    "wake_names",
]
