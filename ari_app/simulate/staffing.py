"""Staffing plans: hourly load and square-root staffing per language."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ari_app.simulate.inputs import Demand

# ------------------------------------------------------------- staffing plans --

def hourly_load(demand: Demand, language: str, handle: float) -> list[float]:
    """Offered Erlangs of one language in each hour slot of the span."""
    w = demand.slot_weights()
    total = sum(w)
    share = demand.language_mix[language] / sum(demand.language_mix.values())
    return [demand.calls * share * x / total * handle / 3600.0 for x in w]


def sqrt_staffing(load: Sequence[float], beta: float, minimum: int = 2) -> list[int]:
    """Square-root staffing per hour: a + beta * sqrt(a), at least `minimum` agents
    (two: one long call at night must not leave a language with nobody)."""
    return [max(minimum, math.ceil(a + beta * math.sqrt(a))) for a in load]


def schedule_from_counts(ids: Sequence[str], counts: Sequence[int]) -> Callable[[int], list[str]]:
    """Hour slot -> the first counts[h] agent ids on duty."""
    def at(h: int) -> list[str]:
        return list(ids[:counts[h]])
    return at
