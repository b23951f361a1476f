"""In-process call counters, gauges and histograms, rendered for Prometheus by hand.

The call flow updates one `CallCounters` as calls move (see docs/wallboard.md
for which method is called at which moment). Everything runs on the event
loop, so plain ints and floats need no locks. Prometheus' own client library
is not used: the text format is small, stable and fully specified, and one
fewer dependency is one fewer thing to audit on a government host.

Besides the monotonic Prometheus counters, the same calls feed "today's"
totals for the wallboard (offered, answered, abandoned, ASA, service level),
which start again at local midnight in the configured time zone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ari_app.logs import get_logger

log = get_logger("live.counters")

SOA_BUCKETS: tuple[float, ...] = (5, 10, 20, 30, 60, 120, 300)
OUTCOMES: tuple[str, ...] = ("answered", "abandoned_in_queue", "abandoned_in_menu")
DEFAULT_TZ = "Asia/Qatar"


# -- Prometheus text exposition helpers (shared with web/metrics.py) -----------------------------
def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fmt_value(v: float) -> str:
    if isinstance(v, int) or (math.isfinite(v) and v == int(v) and abs(v) < 1e15):
        return str(int(v))
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs.items()) + "}"


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> list[str]:
    """One metric family: HELP, TYPE and its samples (label set, value)."""
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    out += [f"{name}{labels(lbl)} {fmt_value(v)}" for lbl, v in samples]
    return out


@dataclass
class Histogram:
    """A cumulative-bucket histogram with fixed upper bounds (seconds)."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(self.bounds):
            raise ValueError("histogram bounds must be sorted")
        self.counts = [0] * len(self.bounds)

    def observe(self, v: float) -> None:
        v = max(0.0, v)
        for i, b in enumerate(self.bounds):
            if v <= b:
                self.counts[i] += 1
        self.total += v
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs including +Inf; counts are cumulative as Prometheus wants."""
        return [*((fmt_value(b), c) for b, c in zip(self.bounds, self.counts, strict=True)),
                ("+Inf", self.n)]

    def render(self, name: str, help_text: str) -> list[str]:
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{le}"}} {c}' for le, c in self.cumulative()]
        out += [f"{name}_sum {fmt_value(self.total)}", f"{name}_count {self.n}"]
        return out


@dataclass
class DayTotals:
    """Today's figures for the wallboard; start again at local midnight."""

    day: date
    offered: int = 0
    answered: int = 0
    answered_in_sla: int = 0
    abandoned_in_queue: int = 0
    abandoned_in_menu: int = 0
    answer_wait_sum: float = 0.0


class CallCounters:
    """Every call-flow metric of one app instance. Implements `web.deps.Metrics`."""

    def __init__(
        self,
        *,
        tz: str = DEFAULT_TZ,
        sla_seconds: float = 20.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tz = ZoneInfo(tz)
        self.sla_seconds = sla_seconds
        self._clock = clock
        self.in_menus = 0
        self.waiting: dict[str, int] = {}
        self.longest_wait: dict[str, float] = {}
        self.agents: dict[tuple[str, str], int] = {}
        self.unreachable: dict[str, int] = {}
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.queued = 0
        self.soa = Histogram(SOA_BUCKETS)
        self.ari_reconnects = 0
        self.ami_reconnects = 0
        self.loop_lag_p99 = 0.0
        self.started = clock()
        self._today = DayTotals(self._local_day())

    # -- time ----------------------------------------------------------------------------------
    def _local_day(self) -> date:
        return datetime.fromtimestamp(self._clock(), self.tz).date()

    def _day(self) -> DayTotals:
        d = self._local_day()
        if d != self._today.day:
            log.info("counters.new_day", day=d.isoformat(), previous=self._today.day.isoformat())
            self._today = DayTotals(d)
        return self._today

    # -- what the call flow calls --------------------------------------------------------------
    def menu_entered(self) -> None:
        """A call entered the journey (language/entity menus)."""
        self.in_menus += 1

    def menu_left(self) -> None:
        """A call left the menus (queued, abandoned in the menus, or ended otherwise)."""
        self.in_menus = max(0, self.in_menus - 1)

    def set_in_menus(self, n: int) -> None:
        self.in_menus = max(0, n)

    def queued_call(self, entity: str) -> None:
        """A caller joined an entity's queue (is offered to the contact center). Once per call:
        a transfer to another entity's queue does not count again."""
        del entity  # one figure today; per entity comes from Redis gauges
        self.queued += 1
        self._day().offered += 1

    def set_waiting(self, entity: str, count: int, longest_seconds: float | None = None) -> None:
        self.waiting[entity] = max(0, count)
        if longest_seconds is not None:
            self.longest_wait[entity] = max(0.0, longest_seconds)

    def answered(self, wait_seconds: float) -> None:
        """An agent answered a queued caller, `wait_seconds` after they joined the queue."""
        self.outcomes["answered"] += 1
        self.soa.observe(wait_seconds)
        d = self._day()
        d.answered += 1
        d.answer_wait_sum += max(0.0, wait_seconds)
        if wait_seconds <= self.sla_seconds:
            d.answered_in_sla += 1

    def abandoned_in_queue(self, wait_seconds: float) -> None:
        """The caller hung up while queued (before any agent answered)."""
        del wait_seconds
        self.outcomes["abandoned_in_queue"] += 1
        self._day().abandoned_in_queue += 1

    def abandoned_in_menu(self) -> None:
        """The caller hung up in the menus, before reaching a queue."""
        self.outcomes["abandoned_in_menu"] += 1
        self._day().abandoned_in_menu += 1

    def outcome(self, name: str) -> None:
        """Any other end of a call: e.g. 'rejected', 'blocked', 'fallback', 'error', 'closed'.
        Use a small fixed set of names: each becomes a Prometheus series."""
        if name == "answered" or name.startswith("abandoned_"):
            raise ValueError(f"use the dedicated method for outcome {name!r}")
        self.outcomes[name] = self.outcomes.get(name, 0) + 1

    def ari_reconnected(self) -> None:
        self.ari_reconnects += 1

    def ami_reconnected(self) -> None:
        self.ami_reconnects += 1

    def set_loop_lag(self, p99_seconds: float) -> None:
        self.loop_lag_p99 = max(0.0, p99_seconds)

    def set_agents(self, by_site: Mapping[str, Mapping[str, int]],
                   unreachable: Mapping[str, int]) -> None:
        """Agents per site and state (from Redis, through the live view's refresh)."""
        self.agents = {(s, st): n for s, states in by_site.items() for st, n in states.items()}
        self.unreachable = dict(unreachable)

    # -- reading -------------------------------------------------------------------------------
    def today(self) -> dict[str, Any]:
        d = self._day()
        judged = d.answered + d.abandoned_in_queue
        return {
            "date": d.day.isoformat(),
            "offered": d.offered,
            "answered": d.answered,
            "abandoned_in_queue": d.abandoned_in_queue,
            "abandoned_in_menu": d.abandoned_in_menu,
            "asa_seconds": round(d.answer_wait_sum / d.answered, 1) if d.answered else None,
            "service_level": round(d.answered_in_sla / judged, 3) if judged else None,
            "abandon_rate": round(d.abandoned_in_queue / judged, 3) if judged else None,
            "sla_seconds": self.sla_seconds,
        }

    def prometheus(self) -> str:
        t = self.today()
        lines: list[str] = []
        lines += family("hotline_calls_in_menus", "gauge",
                        "Calls in the menus right now (this instance).", [({}, self.in_menus)])
        lines += family("hotline_queue_waiting", "gauge", "Callers waiting per entity.",
                        [({"entity": e}, n) for e, n in sorted(self.waiting.items())])
        lines += family("hotline_queue_longest_wait_seconds", "gauge",
                        "Longest current wait per entity, seconds.",
                        [({"entity": e}, v) for e, v in sorted(self.longest_wait.items())])
        lines += family("hotline_agents", "gauge", "Agents per site and state.",
                        [({"site": s, "state": st}, n)
                         for (s, st), n in sorted(self.agents.items())])
        lines += family("hotline_agents_unreachable", "gauge",
                        "Logged-in agents whose phone is unregistered, per site.",
                        [({"site": s}, n) for s, n in sorted(self.unreachable.items())])
        lines += family("hotline_calls_queued_total", "counter",
                        "Callers who joined a queue (offered).", [({}, self.queued)])
        lines += family("hotline_calls_total", "counter", "Calls ended, by outcome.",
                        [({"outcome": o}, n) for o, n in sorted(self.outcomes.items())])
        lines += self.soa.render("hotline_speed_of_answer_seconds",
                                 "Time from joining a queue to an agent answering, seconds.")
        lines += family("hotline_ari_reconnects_total", "counter",
                        "ARI websocket reconnections.", [({}, self.ari_reconnects)])
        lines += family("hotline_ami_reconnects_total", "counter",
                        "AMI reconnections.", [({}, self.ami_reconnects)])
        lines += family("hotline_event_loop_lag_seconds", "gauge",
                        "Event-loop lag, p99 over the last minute, seconds.",
                        [({}, self.loop_lag_p99)])
        lines += family("hotline_today_calls", "gauge",
                        "Today's totals since local midnight, as on the wallboard.",
                        [({"figure": k}, t[k]) for k in
                         ("offered", "answered", "abandoned_in_queue", "abandoned_in_menu")])
        lines += family("hotline_today_asa_seconds", "gauge",
                        "Today's average speed of answer, seconds.",
                        [({}, t["asa_seconds"])] if t["asa_seconds"] is not None else [])
        lines += family("hotline_today_service_level_ratio", "gauge",
                        "Today's answered within the SLA / (answered + abandoned in queue).",
                        [({}, t["service_level"])] if t["service_level"] is not None else [])
        lines += family("hotline_process_start_time_seconds", "gauge",
                        "Start time of this instance, Unix seconds.", [({}, self.started)])
        return "\n".join(lines) + "\n"


class LoopLagMonitor:
    """Measures how late the event loop wakes a 0.5 s sleep; keeps the p99 of the last minute."""

    def __init__(self, counters: CallCounters, *, interval: float = 0.5,
                 window: float = 60.0) -> None:
        self.counters = counters
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=max(1, round(window / interval)))

    def p99(self) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]

    def record(self, lag: float) -> None:
        self.samples.append(max(0.0, lag))
        self.counters.set_loop_lag(self.p99())

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return
            self.record(loop.time() - t0 - self.interval)
