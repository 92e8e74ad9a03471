"""What the project reads, validated: campaign files (YAML in, a `Campaign` or
diagnostics out) and the subscriber and event records its doors accept.

- `spec`: the model (pydantic) of a campaign file, with its segment rules in `rules`
  and `send_time` in `sendtime`; `scalars`: durations, ids, times, rates, schedules,
  and the base every model shares;
- `loader`: reading files and includes, with every problem as a `Diagnostic`
  (`diagnostics`, worded by `wording`, positioned by `yamlpos`);
- `checks` and `graph`: what the model alone cannot see (reachability, cycles,
  template variables; `nodechecks`: each node's own; `timechecks`: `at` and
  `send_time`); `graph` is the only user of networkx;
- `templates` (a package: the sandboxed notification templates) and `payload` (a
  rendered notification as the Web Push JSON body); `urls`: the URL rules shared by all;
- `records`: subscriber, subscription and event records from API bodies and import
  files (bounded JSON, ids, times, attributes), as the store takes them;
- `starter`: a first campaign to start from.

It imports nothing else of the project but `orchestrator.errors`.
"""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = ["document", "graph", "loader", "payload", "records", "spec", "starter", "urls"]
