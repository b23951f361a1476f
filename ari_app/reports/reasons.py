"""Call reasons per entity per month: the ministry's inquiries, complaints,
e-service support and other, per entity (`hotline report --kind reasons`).

One grouped SQL pass per local month of the period (entity x reason x
sub-reason over the `calls` rows whose `arrived_at` falls in it), so a month
is exact in any time zone and a year is twelve small queries. Figures are
defined in docs/records.md ("Reasons report"); change both together.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ari_app.records.backend import Connection
from ari_app.records.model import iso
from ari_app.records.period import Period

REASONS_SCHEMA = "hotline.reasons/1"
KINDS = ("inquiry", "complaint", "e_service_support", "other")
NO_REASON = "no_reason_given"
UNTAGGED = "untagged"
COLUMNS = (*KINDS, NO_REASON, UNTAGGED, "total")
NONE_KEY = "(none)"

# A call counts when an agent answered it or someone gave it a reason; the
# reason as archived (the last late fact's), else untagged.
_SQL = (
    "SELECT entity, reason, reason_detail, COUNT(*) FROM calls "
    "WHERE arrived_at >= :start AND arrived_at < :end "
    "AND (answered <> 0 OR reason IS NOT NULL) {filters}"
    "GROUP BY entity, reason, reason_detail"
)


@dataclass
class EntityMonth:
    month: str
    entity: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    sub_reasons: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"month": self.month, "entity": self.entity, **self.counts,
                "sub_reasons": self.sub_reasons}


@dataclass
class ReasonsReport:
    period: Period
    entities: tuple[str, ...]
    rows: list[EntityMonth]
    generated_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(COLUMNS, 0)
        for r in self.rows:
            for k in COLUMNS:
                out[k] += r.counts[k]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"schema": REASONS_SCHEMA, "generated_at": self.generated_at,
                "period": {"from": self.period.first.isoformat(),
                           "to": self.period.last.isoformat(), "timezone": self.period.tz},
                "filters": {"entity": list(self.entities)},
                "totals": self.totals(), "rows": [r.as_dict() for r in self.rows]}


def _months(period: Period) -> list[tuple[str, Period]]:
    """The period cut at local month boundaries: ("YYYY-MM", that part)."""
    out = []
    d = period.first
    while d <= period.last:
        nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
        last = min(period.last, date.fromordinal(nxt.toordinal() - 1))
        out.append((f"{d.year:04d}-{d.month:02d}", Period(d, last, period.tz)))
        d = nxt
    return out


def compute_reasons(db: Connection, period: Period, entities: tuple[str, ...] = ()
                    ) -> ReasonsReport:
    params: dict[str, Any] = {}
    filters = ""
    if entities:
        names = [f"e{i}" for i in range(len(entities))]
        filters = f"AND entity IN ({', '.join(':' + n for n in names)}) "
        params.update(zip(names, entities, strict=True))
    sql = _SQL.format(filters=filters)
    rows: list[EntityMonth] = []
    for month, part in _months(period):
        start, end = part.utc_bounds()
        acc: dict[str, EntityMonth] = {}
        for entity, reason, detail, n in db.execute(sql, {**params, "start": start, "end": end}):
            key = entity or NONE_KEY
            row = acc.setdefault(key, EntityMonth(month, key))
            col = reason if reason in KINDS or reason == NO_REASON else (
                UNTAGGED if reason is None else "other")  # an unknown kind counts as other
            row.counts[col] += int(n)
            row.counts["total"] += int(n)
            if detail and col in KINDS:
                subs = row.sub_reasons.setdefault(col, {})
                subs[detail] = subs.get(detail, 0) + int(n)
        rows += sorted(acc.values(), key=lambda r: (-r.counts["total"], r.entity))
    return ReasonsReport(period, entities, rows)


def reasons_json(rep: ReasonsReport) -> str:
    return json.dumps(rep.to_dict(), ensure_ascii=False, indent=2) + "\n"


def reasons_csv(rep: ReasonsReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["month", "entity", *COLUMNS])
    for r in rep.rows:
        w.writerow([r.month, r.entity, *(r.counts[k] for k in COLUMNS)])
    w.writerow(["total", "", *(rep.totals()[k] for k in COLUMNS)])
    return buf.getvalue()


def reasons_table(rep: ReasonsReport, names: dict[str, str] | None = None) -> str:
    names = names or {}
    head = ["month", "entity", "inquiry", "complaint", "e-service", "other", "no reason",
            "untagged", "total"]
    body = [[r.month, names.get(r.entity, r.entity), *(str(r.counts[k]) for k in COLUMNS)]
            for r in rep.rows]
    body.append(["total", "", *(str(rep.totals()[k]) for k in COLUMNS)])
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    title = (f"Call reasons per entity, {rep.period.first} to {rep.period.last} "
             f"({rep.period.tz})")
    return "\n".join([title, "", fmt.format(*head), *(fmt.format(*x) for x in body)]) + "\n"
