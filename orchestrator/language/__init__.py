"""The campaign language: YAML files in, a validated `Campaign` (or diagnostics) out.

- `spec`: the model (pydantic) of a campaign file; `scalars`: durations, ids, times;
- `loader`: reading files and includes, with every problem as a `Diagnostic`
  (`diagnostics`, worded by `wording`, positioned by `yamlpos`);
- `checks` and `graph`: what the model alone cannot see (reachability, cycles,
  template variables); `graph` is the only user of networkx;
- `templates` (the sandboxed notification templates) and `payload` (a rendered
  notification as the Web Push JSON body); `urls`: the URL rules shared by all.

It imports nothing else of the project but `orchestrator.errors`.
"""
