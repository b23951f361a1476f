"""Call counters, gauges and the speed-of-answer histogram, exposed with prometheus_client.

The call flow updates one `CallCounters` as calls move (see docs/wallboard.md
for which method is called at which moment). Everything runs on the event
loop, so plain ints and floats need no locks.

Exposition is the official Prometheus client's: each `CallCounters` owns a
`CollectorRegistry` (never the client's global default registry, so two app
objects in one process, as in tests, never share or clash), holding the
speed-of-answer `Histogram` and a collector that reads the other figures at
scrape time. The metric names are those of the hand-written exposition this
replaced (docs/wallboard.md).

Besides the monotonic Prometheus counters (this instance's, as Prometheus
expects: it sums instances), the same calls feed "today's" totals for the
wallboard (offered, answered, abandoned, ASA, service level), which are
shared in Redis by every instance and start again at local midnight in the
configured time zone (`live.today`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ari_app.live.today import DayTotals
from ari_app.logs import get_logger

log = get_logger("live.counters")
# the *_created series were never part of this exposition; the switch is the
# client's own and process-wide
disable_created_metrics()  # type: ignore[no-untyped-call]

SOA_BUCKETS: tuple[float, ...] = (5, 10, 20, 30, 60, 120, 300)
OUTCOMES: tuple[str, ...] = ("answered", "abandoned_in_queue", "abandoned_in_menu")
DEFAULT_TZ = "Asia/Qatar"


def exposition(registry: CollectorRegistry) -> str:
    """The registry in the Prometheus text format (0.0.4)."""
    return generate_latest(registry).decode()


class CallCounters:
    """Every call-flow metric of one app instance. Implements `web.deps.Metrics`."""

    def __init__(
        self,
        *,
        tz: str = DEFAULT_TZ,
        sla_seconds: float = 20.0,
        clock: Callable[[], float] = time.time,
        today: DayTotals | None = None,
    ) -> None:
        self.sla_seconds = sla_seconds
        self._clock = clock
        self.day_totals = today or DayTotals(tz=tz, clock=clock)
        self.in_menus = 0
        self.waiting: dict[str, int] = {}
        self.longest_wait: dict[str, float] = {}
        self.agents: dict[tuple[str, str], int] = {}
        self.unreachable: dict[str, int] = {}
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.queued = 0
        self.registry = CollectorRegistry(auto_describe=True)
        # not registered itself: `_Figures` re-labels its buckets (see `_soa`)
        self.soa = Histogram("hotline_speed_of_answer_seconds",
                             "Time from joining a queue to an agent answering, seconds.",
                             buckets=SOA_BUCKETS, registry=None)
        self.ari_reconnects = 0
        self.ami_reconnects = 0
        self.loop_lag_p99 = 0.0
        self.started = clock()
        self.registry.register(_Figures(self))

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
        self.day_totals.add(offered=1)

    def set_waiting(self, entity: str, count: int, longest_seconds: float | None = None) -> None:
        self.waiting[entity] = max(0, count)
        if longest_seconds is not None:
            self.longest_wait[entity] = max(0.0, longest_seconds)

    def answered(self, wait_seconds: float) -> None:
        """An agent answered a queued caller, `wait_seconds` after they joined the queue."""
        self.outcomes["answered"] += 1
        self.soa.observe(max(0.0, wait_seconds))
        self.day_totals.add(answered=1, answer_wait_ms=round(max(0.0, wait_seconds) * 1000),
                            answered_in_sla=int(wait_seconds <= self.sla_seconds))

    def abandoned_in_queue(self, wait_seconds: float) -> None:
        """The caller hung up while queued (before any agent answered)."""
        del wait_seconds
        self.outcomes["abandoned_in_queue"] += 1
        self.day_totals.add(abandoned_in_queue=1)

    def abandoned_in_menu(self) -> None:
        """The caller hung up in the menus, before reaching a queue."""
        self.outcomes["abandoned_in_menu"] += 1
        self.day_totals.add(abandoned_in_menu=1)

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
        """Today's figures as last synced from Redis, plus this instance's unsent counts."""
        day = self.day_totals.day()
        d = self.day_totals.figures(day)
        judged = d["answered"] + d["abandoned_in_queue"]
        answered = d["answered"]
        return {
            "date": day.isoformat(),
            "offered": d["offered"],
            "answered": answered,
            "abandoned_in_queue": d["abandoned_in_queue"],
            "abandoned_in_menu": d["abandoned_in_menu"],
            "asa_seconds": round(d["answer_wait_ms"] / 1000 / answered, 1) if answered else None,
            "service_level": round(d["answered_in_sla"] / judged, 3) if judged else None,
            "abandon_rate": round(d["abandoned_in_queue"] / judged, 3) if judged else None,
            "sla_seconds": self.sla_seconds,
        }

    async def sync(self) -> None:
        """Share today's counts through Redis and read everyone's back (never raises)."""
        await self.day_totals.sync_quietly()

    async def run_sync(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Sync today's totals every `interval` seconds until `stop`, and once more then."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            await self.sync()

    def prometheus(self) -> str:
        return exposition(self.registry)


def _le(bound: str) -> str:
    """A bucket bound as the hand-written exposition wrote it: whole numbers bare."""
    if bound == "+Inf":
        return bound
    v = float(bound)
    return str(int(v)) if v == int(v) else repr(v)


def _gauge(name: str, doc: str, labels: tuple[str, ...] = (),
           samples: Iterator[tuple[tuple[str, ...], float]] | None = None,
           value: float | None = None) -> GaugeMetricFamily:
    if not labels:
        return GaugeMetricFamily(name, doc, value=value)
    g = GaugeMetricFamily(name, doc, labels=list(labels))
    for lbl, v in samples or iter(()):
        g.add_metric(list(lbl), v)
    return g


def _counter(name: str, doc: str, labels: tuple[str, ...] = (),
             samples: Iterator[tuple[tuple[str, ...], float]] | None = None,
             value: float | None = None) -> CounterMetricFamily:
    if not labels:
        return CounterMetricFamily(name, doc, value=value)
    c = CounterMetricFamily(name, doc, labels=list(labels))
    for lbl, v in samples or iter(()):
        c.add_metric(list(lbl), v)
    return c


class _Figures(Collector):
    """Everything but the histogram, read from the `CallCounters` at scrape time."""

    def __init__(self, c: CallCounters) -> None:
        self.c = c

    def _soa(self) -> Iterator[Metric]:
        """The client's histogram with its bucket bounds written as before ("20", not
        "20.0"), so the series dashboards select (le="20" for the service level,
        docs/wallboard.md) stay the same series."""
        for fam in self.c.soa.collect():
            buckets = [(_le(s.labels["le"]), s.value) for s in fam.samples
                       if s.name.endswith("_bucket")]
            total = next(s.value for s in fam.samples if s.name.endswith("_sum"))
            yield HistogramMetricFamily(fam.name, fam.documentation, buckets=buckets,
                                        sum_value=total)

    def collect(self) -> Iterator[Metric]:
        yield from self._soa()
        c, t = self.c, self.c.today()
        yield _gauge("hotline_calls_in_menus", "Calls in the menus right now (this instance).",
                     value=c.in_menus)
        yield _gauge("hotline_queue_waiting", "Callers waiting per entity.", ("entity",),
                     (((e,), n) for e, n in sorted(c.waiting.items())))
        yield _gauge("hotline_queue_longest_wait_seconds",
                     "Longest current wait per entity, seconds.", ("entity",),
                     (((e,), v) for e, v in sorted(c.longest_wait.items())))
        yield _gauge("hotline_agents", "Agents per site and state.", ("site", "state"),
                     (((s, st), n) for (s, st), n in sorted(c.agents.items())))
        yield _gauge("hotline_agents_unreachable",
                     "Logged-in agents whose phone is unregistered, per site.", ("site",),
                     (((s,), n) for s, n in sorted(c.unreachable.items())))
        yield _counter("hotline_calls_queued", "Callers who joined a queue (offered).",
                       value=c.queued)
        yield _counter("hotline_calls", "Calls ended, by outcome.", ("outcome",),
                       (((o,), n) for o, n in sorted(c.outcomes.items())))
        yield _counter("hotline_ari_reconnects", "ARI websocket reconnections.",
                       value=c.ari_reconnects)
        yield _counter("hotline_ami_reconnects", "AMI reconnections.", value=c.ami_reconnects)
        yield _gauge("hotline_event_loop_lag_seconds",
                     "Event-loop lag, p99 over the last minute, seconds.", value=c.loop_lag_p99)
        yield _gauge("hotline_today_calls",
                     "Today's totals since local midnight, as on the wallboard.", ("figure",),
                     (((k,), t[k]) for k in ("offered", "answered", "abandoned_in_queue",
                                             "abandoned_in_menu")))
        # no sample while there is nothing to average (as before: an empty family)
        yield _gauge("hotline_today_asa_seconds", "Today's average speed of answer, seconds.",
                     value=t["asa_seconds"])
        yield _gauge("hotline_today_service_level_ratio",
                     "Today's answered within the SLA / (answered + abandoned in queue).",
                     value=t["service_level"])
        yield _gauge("hotline_process_start_time_seconds",
                     "Start time of this instance, Unix seconds.", value=c.started)


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
