"""Erlang C: the textbook M/M/c queue, the check on the simulator.

`a` is the offered load in Erlangs (arrival rate x mean handle time), `c` the
number of agents. Valid only for a < c (otherwise the queue grows forever).
"""

from __future__ import annotations

import math


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c, by the stable recurrence."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that an arriving caller waits (all c agents busy)."""
    if c <= 0 or a >= c:
        return 1.0
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def asa(c: int, a: float, aht: float) -> float:
    """Mean wait of all callers (answered immediately count as 0)."""
    if a >= c:
        return math.inf
    return erlang_c(c, a) * aht / (c - a)


def service_level(c: int, a: float, aht: float, target: float) -> float:
    """Share of callers answered within `target` seconds."""
    if a >= c:
        return 0.0
    return 1.0 - erlang_c(c, a) * math.exp(-(c - a) * target / aht)


def agents_for_asa(a: float, aht: float, target_asa: float) -> int:
    """The fewest agents whose Erlang C ASA is at or under `target_asa`."""
    c = max(1, math.floor(a) + 1)
    while asa(c, a, aht) > target_asa:
        c += 1
    return c
