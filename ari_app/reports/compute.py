"""Report figures, computed as SQL aggregates so a year (4M calls) stays feasible,
on either archive (SQLite or PostgreSQL: the same passes, each in its own SQL).

Every figure is built from additive sums (`Sums`) so that SQLite only has to
group by the UTC hour (and, in a second pass, by entity x site x language x
outcome); re-bucketing hours into local days and hours of the day happens in
Python over at most 24 x 366 rows. That keeps day boundaries right
in any time zone whose offset is whole hours (docs/records.md says more).

Definitions (service level, abandonment, handle time) live in docs/records.md;
change them there and here together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ari_app.records.backend import POSTGRESQL, Connection, dialect_of
from ari_app.records.model import Outcome, iso, parse_iso
from ari_app.records.period import Period as Period
from ari_app.reports.callbacks import callback_figures

REPORT_SCHEMA = "hotline.report/1"
NONE_KEY = "(none)"


@dataclass(frozen=True)
class Query:
    period: Period
    entities: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    sla_seconds: float = 20.0
    top: int = 4  # entities named in the statement; the rest are "other departments"
    other_ids: tuple[str, ...] = ("other",)


@dataclass
class Sums:
    """Additive counters; every figure is a ratio of these."""

    calls: int = 0
    queued: int = 0
    answered: int = 0
    answered_timed: int = 0  # answered with a known speed of answer
    answer_wait_total: float = 0.0
    answered_within_sla: int = 0
    abandoned_in_menu: int = 0
    abandoned_in_queue: int = 0
    abandoned_in_queue_within_sla: int = 0
    missed_after_sla: int = 0
    talk_calls: int = 0
    talk_total: float = 0.0
    wrapup_calls: int = 0
    wrapup_total: float = 0.0

    def add(self, other: Sums) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def figures(self) -> dict[str, Any]:
        sl_base = self.answered_timed + self.missed_after_sla
        return {
            "calls": self.calls,
            "queued": self.queued,
            "answered": self.answered,
            "answered_within_sla": self.answered_within_sla,
            "abandoned_in_menu": self.abandoned_in_menu,
            "abandoned_in_queue": self.abandoned_in_queue,
            "abandoned_in_queue_within_sla": self.abandoned_in_queue_within_sla,
            "missed_after_sla": self.missed_after_sla,
            "asa_seconds": _secs(self.answer_wait_total, self.answered_timed),
            "service_level": _ratio(self.answered_within_sla, sl_base),
            "abandon_rate_menu": _ratio(self.abandoned_in_menu, self.calls),
            "abandon_rate_queue": _ratio(self.abandoned_in_queue, self.queued),
            "aht_seconds": _secs(self.talk_total + self.wrapup_total, self.talk_calls),
            "talk_seconds_avg": _secs(self.talk_total, self.talk_calls),
            "wrapup_calls": self.wrapup_calls,
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _secs(total: float, n: int) -> float | None:
    return round(total / n, 2) if n else None


# Column order must match Sums' field order. `answered` and `queue_seconds`
# are derived at insert (archive.py).
_SUMS_SQL = """
    COUNT(*),
    SUM(queue_joined_at IS NOT NULL),
    SUM(answered),
    SUM(answered AND speed_of_answer IS NOT NULL),
    TOTAL(CASE WHEN answered THEN speed_of_answer END),
    SUM(answered AND speed_of_answer <= :sla),
    SUM(outcome = 'abandoned_in_menu'),
    SUM(outcome = 'abandoned_in_queue'),
    SUM(outcome = 'abandoned_in_queue' AND queue_seconds <= :sla),
    SUM(NOT answered AND queue_joined_at IS NOT NULL AND queue_seconds > :sla),
    SUM(answered AND talk_seconds IS NOT NULL),
    TOTAL(CASE WHEN answered THEN talk_seconds END),
    SUM(answered AND talk_seconds IS NOT NULL AND wrapup_seconds IS NOT NULL),
    TOTAL(CASE WHEN answered AND talk_seconds IS NOT NULL THEN wrapup_seconds END)
"""
# The same sums in PostgreSQL, which has no TOTAL() and no integer AND:
# COUNT(*) FILTER counts where SQLite's SUM(condition) adds 1 per true
# (a NULL condition counts in neither), COALESCE(SUM(x), 0) is TOTAL(x).
_PG_SUMS_SQL = """
    COUNT(*),
    COUNT(*) FILTER (WHERE queue_joined_at IS NOT NULL),
    COALESCE(SUM(answered), 0),
    COUNT(*) FILTER (WHERE answered <> 0 AND speed_of_answer IS NOT NULL),
    COALESCE(SUM(speed_of_answer) FILTER (WHERE answered <> 0), 0),
    COUNT(*) FILTER (WHERE answered <> 0 AND speed_of_answer <= :sla),
    COUNT(*) FILTER (WHERE outcome = 'abandoned_in_menu'),
    COUNT(*) FILTER (WHERE outcome = 'abandoned_in_queue'),
    COUNT(*) FILTER (WHERE outcome = 'abandoned_in_queue' AND queue_seconds <= :sla),
    COUNT(*) FILTER (WHERE answered = 0 AND queue_joined_at IS NOT NULL
                     AND queue_seconds > :sla),
    COUNT(*) FILTER (WHERE answered <> 0 AND talk_seconds IS NOT NULL),
    COALESCE(SUM(talk_seconds) FILTER (WHERE answered <> 0), 0),
    COUNT(*) FILTER (WHERE answered <> 0 AND talk_seconds IS NOT NULL
                     AND wrapup_seconds IS NOT NULL),
    COALESCE(SUM(wrapup_seconds) FILTER (WHERE answered <> 0 AND talk_seconds IS NOT NULL), 0)
"""
_NSUMS = len(fields(Sums))


def _sums(row: Sequence[Any]) -> Sums:
    return Sums(*(v or 0 for v in row))


@dataclass
class Keyed:
    key: str
    sums: Sums

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, **self.sums.figures()}


@dataclass
class Report:
    query: Query
    utc_start: str
    utc_end: str
    totals: Sums
    outcomes: dict[str, int]
    by_entity: list[Keyed]
    by_site: list[Keyed]
    by_language: list[Keyed]
    by_hour: list[Keyed]
    by_day: list[Keyed]
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # reports/callbacks.py
    generated_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))

    def statement(self) -> dict[str, Any]:
        """The ministry's monthly shape: total, top entities largest first, the rest, ASA."""
        q = self.query
        named = [k for k in self.by_entity if k.key != NONE_KEY and k.key not in q.other_ids][
            : q.top
        ]
        listed = sum(k.sums.calls for k in named)
        none = next((k.sums.calls for k in self.by_entity if k.key == NONE_KEY), 0)
        return {
            "total": self.totals.calls,
            "entities": [{"entity": k.key, "calls": k.sums.calls} for k in named],
            "other_departments": self.totals.calls - listed,
            "of_which_no_department": none,
            "asa_seconds": self.totals.figures()["asa_seconds"],
        }

    def to_dict(self) -> dict[str, Any]:
        q = self.query
        return {
            "schema": REPORT_SCHEMA,
            "generated_at": self.generated_at,
            "period": {
                "from": q.period.first.isoformat(),
                "to": q.period.last.isoformat(),
                "timezone": q.period.tz,
                "utc_start": self.utc_start,
                "utc_end": self.utc_end,
            },
            "filters": {
                "entity": list(q.entities),
                "site": list(q.sites),
                "language": list(q.languages),
            },
            "sla_seconds": q.sla_seconds,
            "statement": self.statement(),
            "totals": self.totals.figures(),
            "outcomes": self.outcomes,
            "by_entity": [k.as_dict() for k in self.by_entity],
            "by_site": [k.as_dict() for k in self.by_site],
            "by_language": [k.as_dict() for k in self.by_language],
            "by_hour": [k.as_dict() for k in self.by_hour],
            "by_day": [k.as_dict() for k in self.by_day],
            # only when there were callbacks: reports without them keep their shape
            **({"callbacks": self.callbacks} if self.callbacks else {}),
        }


def _where(q: Query, start: str, end: str) -> tuple[str, dict[str, Any]]:
    # a callback's attempts are the hotline calling out, not inbound calls
    clauses = ["arrived_at >= :start", "arrived_at < :end", "dialled <> 'callback'"]
    params: dict[str, Any] = {"start": start, "end": end, "sla": q.sla_seconds}
    for col, values in (("entity", q.entities), ("site", q.sites), ("language", q.languages)):
        if values:
            names = [f"{col}{i}" for i in range(len(values))]
            clauses.append(f"{col} IN ({', '.join(':' + n for n in names)})")
            params.update(zip(names, values, strict=True))
    return " AND ".join(clauses), params


_WINDOW = timedelta(days=31)
_HOUR_KEY = "substr(arrived_at, 1, 13)"
_DIM_KEYS = ("entity", "site", "language", "outcome")


def _windows(start: str, end: str) -> Iterable[tuple[str, str]]:
    """Split [start, end) into ~month windows.

    SQLite's GROUP BY sorts every input row; sorting a month at a time keeps
    the sorter's memory at a month's worth however long the period is.
    """
    t, stop = parse_iso(start), parse_iso(end)
    while t < stop:
        nxt = min(t + _WINDOW, stop)
        yield iso(t), iso(nxt)
        t = nxt


def _grouped(
    db: Connection, keys: Sequence[str], where: str, params: dict[str, Any]
) -> Iterable[tuple[tuple[Any, ...], Sums]]:
    # keys and where are built from fixed column names only; values are bound.
    n = len(keys)
    if dialect_of(db) == POSTGRESQL:
        source, sums = "calls", _PG_SUMS_SQL  # its planner picks the index itself
    else:
        source, sums = "calls INDEXED BY calls_arrived", _SUMS_SQL
    sql = (
        f"SELECT {', '.join(keys)}, {sums} FROM {source} "  # noqa: S608
        f"WHERE {where} GROUP BY {', '.join(str(i + 1) for i in range(n))}"
    )
    for row in db.execute(sql, params):
        yield tuple(row[:n]), _sums(row[n : n + _NSUMS])


def _ranked(acc: dict[str, Sums]) -> list[Keyed]:
    return sorted((Keyed(k, s) for k, s in acc.items()), key=lambda k: (-k.sums.calls, k.key))


def compute(db: Connection, q: Query) -> Report:
    """Two grouped passes per window: by UTC hour (time series) and by
    entity x site x language x outcome (a few hundred groups), rolled up here.
    """
    start, end = q.period.utc_bounds()
    tz = ZoneInfo(q.period.tz)

    totals = Sums()
    days = {d: Sums() for d in q.period.days()}
    hours = {h: Sums() for h in range(24)}
    dims: dict[str, dict[str, Sums]] = {k: {} for k in _DIM_KEYS}
    for w_start, w_end in _windows(start, end):
        where, params = _where(q, w_start, w_end)
        for (bucket,), s in _grouped(db, (_HOUR_KEY,), where, params):
            lt = datetime.fromisoformat(bucket + ":00:00+00:00").astimezone(tz)
            totals.add(s)
            days.setdefault(lt.date(), Sums()).add(s)
            hours[lt.hour].add(s)
        for key, s in _grouped(db, _DIM_KEYS, where, params):
            for col, value in zip(_DIM_KEYS, key, strict=True):
                dims[col].setdefault(value or NONE_KEY, Sums()).add(s)

    cb_where, cb_params = _where(q, start, end)
    callbacks = callback_figures(db, q, cb_where.replace(" AND dialled <> 'callback'", ""),
                                 cb_params)
    outcomes = {o.value: 0 for o in Outcome}
    for k, s in dims["outcome"].items():
        outcomes[k] = s.calls
    return Report(
        query=q,
        utc_start=start,
        utc_end=end,
        totals=totals,
        outcomes=outcomes,
        by_entity=_ranked(dims["entity"]),
        by_site=_ranked(dims["site"]),
        by_language=_ranked(dims["language"]),
        by_hour=[Keyed(f"{h:02d}", s) for h, s in sorted(hours.items())],
        by_day=[Keyed(d.isoformat(), s) for d, s in sorted(days.items())],
        callbacks=callbacks,
    )
