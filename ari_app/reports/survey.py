"""Post-call survey scores (docs/supervision.md): per entity, per agent and per
language, over the calls that arrived in the period. A call counts as surveyed
when the survey ran (`survey_result` set); its scores count where the caller
pressed a key (1-5). The same SQL runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ari_app.records.backend import Connection

DIMENSIONS = ("entity", "agent", "language")
NONE_KEY = "(none)"


@dataclass(frozen=True)
class Scores:
    key: str
    surveyed: int
    answered: int  # pressed at least one key
    q1_average: float | None
    q2_average: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "surveyed": self.surveyed, "answered": self.answered,
                "q1_average": self.q1_average, "q2_average": self.q2_average}


def survey_scores(db: Connection, start_utc: str, end_utc: str,
                  filters: dict[str, tuple[str, ...]] | None = None,
                  ) -> dict[str, list[Scores]]:
    """{"entity": [...], "agent": [...], "language": [...]}, most surveyed first.
    `filters`: column -> allowed values (the report's --entity, --site, --language)."""
    out: dict[str, list[Scores]] = {}
    bound: dict[str, Any] = {"start": start_utc, "end": end_utc}
    extra = ""
    for col, values in (filters or {}).items():
        if col not in ("entity", "site", "language") or not values:
            continue
        names = [f"{col}{i}" for i in range(len(values))]
        extra += f" AND {col} IN ({', '.join(':' + n for n in names)})"
        bound.update(zip(names, values, strict=True))
    for dim in DIMENSIONS:  # fixed column names, never input
        sql = (f"SELECT {dim}, COUNT(*), "  # noqa: S608
               "SUM(CASE WHEN survey_q1 IS NOT NULL OR survey_q2 IS NOT NULL THEN 1 ELSE 0 END), "
               "AVG(survey_q1 * 1.0), AVG(survey_q2 * 1.0) FROM calls "
               "WHERE survey_result IS NOT NULL AND arrived_at >= :start AND arrived_at < :end"
               f"{extra} GROUP BY {dim}")
        rows = [Scores(r[0] or NONE_KEY, int(r[1]), int(r[2] or 0), _avg(r[3]), _avg(r[4]))
                for r in db.execute(sql, bound)]
        out[dim] = sorted(rows, key=lambda s: (-s.surveyed, s.key))
    return out


def _avg(v: Any) -> float | None:
    return None if v is None else round(float(v), 2)


def survey_table(scores: dict[str, list[Scores]]) -> str:
    if not any(scores.values()):
        return ""
    out = ["", "Post-call survey (1-5; average of the keys pressed)"]
    for dim, rows in scores.items():
        out.append(f"  by {dim}:")
        out.append(f"    {'':24} {'surveyed':>9} {'answered':>9} {'q1':>6} {'q2':>6}")
        for s in rows:
            q1 = "-" if s.q1_average is None else f"{s.q1_average:.2f}"
            q2 = "-" if s.q2_average is None else f"{s.q2_average:.2f}"
            out.append(f"    {s.key[:24]:24} {s.surveyed:>9} {s.answered:>9} {q1:>6} {q2:>6}")
    return "\n".join(out) + "\n"
