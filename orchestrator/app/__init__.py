"""The use cases: what happens when a campaign ticks, a visitor subscribes or an author looks.

- `service`: the `Context` (configuration, database, delivery) every use case takes,
  campaign loading with versions, imports and events in;
- `ticking`: one tick of a campaign (enrol, claim due journeys, advance them with the
  engine, commit the send ledger, deliver, record outcomes), built from `enrolment`,
  `journeys`, `ledger` (the send ledger and rendering) and `outcomes`;
- `tick_report`: what a tick did, and its log lines;
- `versions`: which version of a campaign file a journey follows;
- `visitors`: subscriptions, click links, the subscriber's own profile page (a package);
- `control`: pause, resume and stop a whole campaign;
- `insights`: the figures the dashboard and `campaign status` show;
- `tokens`: signed, expiring links.

It reaches the database only through `orchestrator.store` and push services only
through `orchestrator.push`.
"""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = [
    "control",
    "enrolment",
    "insights",
    "journeys",
    "outcomes",
    "service",
    "tick_report",
    "ticking",
    "tokens",
    "versions",
    "visitors",
]
