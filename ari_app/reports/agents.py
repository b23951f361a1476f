"""The agent report, per agent and per site (`hotline report --kind agents`).

Built from the archived state history (`agent_events`): each change opens a
span that lasts until the agent's next change (SQL window LEAD), and time is
summed per agent, site, state, pause reason and reachability in one grouped
SQL pass, the same statement on SQLite and PostgreSQL. The state an agent was
in when the period began is carried in from their last change before it; a
span still open is counted up to the period's end or now, whichever is
first. Figures are defined in docs/records.md ("Agent report").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ari_app.records.backend import Connection
from ari_app.records.model import iso, parse_iso
from ari_app.records.period import Period

AGENTS_SCHEMA = "hotline.agents/1"

# Every value below is a column or constant of this module; values are bound.
_SQL = """
WITH ev AS (
  SELECT event_id, agent, site, kind, state, reason, reachable, at_ms
    FROM agent_events WHERE at_ms >= :start AND at_ms < :stop {filters}
  UNION ALL
  SELECT e.event_id, e.agent, e.site, 'carried', e.state, e.reason, e.reachable,
         CAST(:start AS BIGINT)
    FROM agent_events e
    JOIN (SELECT agent, MAX(at_ms) AS m FROM agent_events
           WHERE at_ms < :start GROUP BY agent) last
      ON e.agent = last.agent AND e.at_ms = last.m
   WHERE 1 = 1 {efilters}
), spans AS (
  SELECT agent, site, kind, state, reason, reachable, at_ms,
         LEAD(at_ms, 1, CAST(:stop AS BIGINT))
           OVER (PARTITION BY agent ORDER BY at_ms, event_id) AS next_ms
    FROM ev
)
SELECT agent, site, state, COALESCE(reason, ''), reachable,
       SUM(next_ms - at_ms),
       SUM(CASE WHEN kind = 'on_call' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'missed' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'offered' THEN 1 ELSE 0 END)
  FROM spans
 GROUP BY agent, site, state, COALESCE(reason, ''), reachable
"""


@dataclass
class AgentSums:
    """Additive: seconds per state (and per pause reason), counts of changes."""

    seconds: dict[str, float] = field(default_factory=dict)
    pause: dict[str, float] = field(default_factory=dict)
    unreachable: float = 0.0
    answered: int = 0
    missed: int = 0
    offers: int = 0

    def add_span(self, state: str, reason: str, reachable: bool, secs: float) -> None:
        self.seconds[state] = self.seconds.get(state, 0.0) + secs
        if state == "paused":
            self.pause[reason or "(none)"] = self.pause.get(reason or "(none)", 0.0) + secs
        if not reachable and state != "logged_out":
            self.unreachable += secs

    def add(self, o: AgentSums) -> None:
        for st, s in o.seconds.items():
            self.seconds[st] = self.seconds.get(st, 0.0) + s
        for r, s in o.pause.items():
            self.pause[r] = self.pause.get(r, 0.0) + s
        self.unreachable += o.unreachable
        self.answered += o.answered
        self.missed += o.missed
        self.offers += o.offers

    def figures(self) -> dict[str, Any]:
        s = self.seconds
        talk, wrap = s.get("on_call", 0.0), s.get("wrapup", 0.0)
        idle = s.get("available", 0.0) + s.get("offered", 0.0)
        signed_in = sum(v for k, v in s.items() if k != "logged_out")
        return {
            "signed_in_seconds": round(signed_in, 2),
            "available_seconds": round(s.get("available", 0.0), 2),
            "ringing_seconds": round(s.get("offered", 0.0), 2),
            "talk_seconds": round(talk, 2),
            "wrapup_seconds": round(wrap, 2),
            "pause_seconds": round(s.get("paused", 0.0), 2),
            "pause_by_reason": {r: round(v, 2) for r, v in sorted(self.pause.items())},
            "unreachable_seconds": round(self.unreachable, 2),
            "offers": self.offers,
            "calls_answered": self.answered,
            "missed_offers": self.missed,
            "aht_seconds": round((talk + wrap) / self.answered, 2) if self.answered else None,
            "occupancy": (round((talk + wrap) / (talk + wrap + idle), 4)
                          if talk + wrap + idle > 0 else None),
        }


@dataclass
class AgentReport:
    period: Period
    sites: tuple[str, ...]
    agents: tuple[str, ...]
    until: str  # where open spans were cut (the period's end, or the time of the report)
    by_agent: dict[str, tuple[str, AgentSums]]  # agent -> (site, sums)
    by_site: dict[str, AgentSums]
    totals: AgentSums
    generated_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": AGENTS_SCHEMA, "generated_at": self.generated_at,
            "period": {"from": self.period.first.isoformat(), "to": self.period.last.isoformat(),
                       "timezone": self.period.tz, "counted_until": self.until},
            "filters": {"site": list(self.sites), "agent": list(self.agents)},
            "totals": self.totals.figures(),
            "by_site": [{"key": k, **v.figures()} for k, v in sorted(self.by_site.items())],
            "by_agent": [{"key": a, "site": site, **s.figures()}
                         for a, (site, s) in sorted(self.by_agent.items())],
        }


def _ms(ts: str) -> int:
    return int(parse_iso(ts).timestamp() * 1000)


def compute_agents(db: Connection, period: Period, sites: tuple[str, ...] = (),
                   agents: tuple[str, ...] = (), now: float | None = None) -> AgentReport:
    start_iso, end_iso = period.utc_bounds()
    start = _ms(start_iso)
    stop = min(_ms(end_iso), int((time.time() if now is None else now) * 1000))
    stop = max(stop, start)
    params: dict[str, Any] = {"start": start, "stop": stop}
    filters, efilters = [], []
    for col, values in (("site", sites), ("agent", agents)):
        if values:
            names = [f"{col}{i}" for i in range(len(values))]
            filters.append(f"AND {col} IN ({', '.join(':' + n for n in names)})")
            efilters.append(f"AND e.{col} IN ({', '.join(':' + n for n in names)})")
            params.update(zip(names, values, strict=True))
    sql = _SQL.format(filters=" ".join(filters), efilters=" ".join(efilters))
    by_agent: dict[str, tuple[str, AgentSums]] = {}
    by_site: dict[str, AgentSums] = {}
    totals = AgentSums()
    for agent, site, state, reason, reachable, ms, answered, missed, offers in db.execute(
            sql, params):
        one = AgentSums()
        one.add_span(state, reason, bool(reachable), int(ms or 0) / 1000.0)
        one.answered, one.missed, one.offers = int(answered or 0), int(missed or 0), int(
            offers or 0)
        _, sums = by_agent.setdefault(agent, (site, AgentSums()))
        sums.add(one)
        by_site.setdefault(site, AgentSums()).add(one)
        totals.add(one)
    # an agent logged out all period (their last change was a log-out before it) is not listed
    by_agent = {a: v for a, v in by_agent.items()
                if any(k != "logged_out" for k in v[1].seconds) or v[1].offers}
    until = iso(datetime.fromtimestamp(stop / 1000, UTC))
    return AgentReport(period, sites, agents, until, by_agent, by_site, totals)
