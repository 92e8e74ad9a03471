"""The benchmark commands; each prints figures (and JSON with `--json`), never asserts speed.

- `throughput`: `campaign bench` (the tick's sends per second against a local push
  service, the Prefect leg, a naive one-request-at-a-time baseline from `naive`);
- `scale`: `campaign bench-scale` (import, enrolment and ticks over up to millions of
  subscribers); `faults`: `campaign bench-faults` (retries under 429/5xx/410 answers);
- `throttle`: `campaign bench-throttle` (a launch under a rate limit on virtual time);
- `experiments`: `campaign bench-experiments` (a known lift found, A/A false positives kept
  at the stated rate; with `bandit`, a bandit split's shares and gain);
- `web`: `campaign bench-web` (the HTTP service under concurrent requests);
- `studio`: `campaign bench-studio` (the studio's check-and-redraw round trip).
"""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = [
    "bandit",
    "experiments",
    "faults",
    "naive",
    "scale",
    "studio",
    "throttle",
    "throughput",
    "web",
]
