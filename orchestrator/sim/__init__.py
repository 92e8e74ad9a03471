"""Simulation: the production tick on a virtual clock, against synthetic subscribers.

- `population`: synthetic or imported subscribers with their events; `response`: how
  they respond by local hour (active hours, response curves);
- `simulate`: `campaign simulate` (every decision from the real engine and store,
  deliveries recorded, conversions drawn from given rates), with its JSONL trace, over
  `inputs` (files, rates, the stored population), `clock` and `results`; `programme`:
  several campaigns on one clock and its checks;
- `soak`: `campaign soak`, long randomised runs checked against the engine's invariants.
"""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = ["population", "simulate", "soak"]
