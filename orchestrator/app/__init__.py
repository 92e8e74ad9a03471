"""The use cases: what happens when a campaign ticks, a visitor subscribes or an author looks.

- `service`: the `Context` (configuration, database, delivery) every use case takes,
  campaign loading with versions, imports and events in;
- `ticking`: one tick of a campaign (enrol, claim due journeys, advance them with the
  engine, commit the send ledger, deliver, record outcomes), built from `enrolment`,
  `journeys`, `ledger` (the send ledger and rendering) and `outcomes`;
- `tick_report`: what a tick did, and its log lines;
- `throttle` and `pacing`: rate limits (`settings.rate_limit`, the installation's
  `CAMPAIGN_MAX_SENDS_PER_MINUTE`) over the sends ledger, and the tick's batches paced
  by them;
- `sendtimes`: what the send-time optimiser knows of a batch's subscribers, read from
  the sends ledger;
- `bandits`: what a batch's bandit splits learn from, each arm's measured journeys and
  conversions;
- `versions`: which version of a campaign file a journey follows;
- `visitors`: subscriptions, click links, the subscriber's own profile page (a package);
- `control`: pause, resume and stop a whole campaign;
- `promote`: a split's winner written into its campaign file, the journeys moved to that
  version and the promotion recorded (`campaign experiment promote`); `promotions`:
  those records, as the experiment panel reads them;
- `broadcasts`: a campaign sent once (`schedule: once …`): each member's moment, the
  claim a tick enrols under, its status;
- `experiments`: each split node as an A/B test, the journey as the unit, judged at its
  planned size; `verdicts`: its figures' statuses and sentences;
- `insights`: the figures the dashboard and `campaign status` show, with
  `experiment_stats` (intervals, lifts, corrections and sample sizes, from statsmodels);
- `tokens`: signed, expiring links.

It reaches the database only through `orchestrator.store` and push services only
through `orchestrator.push`.
"""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = [
    "bandits",
    "broadcasts",
    "control",
    "enrolment",
    "experiment_stats",
    "experiments",
    "insights",
    "journeys",
    "outcomes",
    "pacing",
    "promote",
    "promotions",
    "sendtimes",
    "service",
    "throttle",
    "tick_report",
    "ticking",
    "tokens",
    "versions",
    "visitors",
]
