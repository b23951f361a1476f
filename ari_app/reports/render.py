"""Turn a Report into a readable table, a CSV, or the JSON documented in docs/records.md.

The table opens with the ministry's monthly statement (total, entities largest
first, other departments, ASA) so it can be read off or pasted as is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ari_app.reports.compute import Report

FIGURES: tuple[str, ...] = (
    "calls",
    "queued",
    "answered",
    "answered_within_sla",
    "abandoned_in_menu",
    "abandoned_in_queue",
    "abandoned_in_queue_within_sla",
    "missed_after_sla",
    "asa_seconds",
    "service_level",
    "abandon_rate_menu",
    "abandon_rate_queue",
    "aht_seconds",
    "talk_seconds_avg",
    "wrapup_calls",
)
CSV_HEADER: tuple[str, ...] = ("section", "key", *FIGURES)
SECTIONS: tuple[tuple[str, str], ...] = (
    ("by_entity", "By entity"),
    ("by_site", "By site (answering agent's)"),
    ("by_language", "By language"),
    ("by_hour", "By hour of day"),
    ("by_day", "By day"),
)


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"


def to_csv(report: Report) -> str:
    """One long table: a `section` column tells statement, totals and breakdown rows apart."""
    d = report.to_dict()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_HEADER, lineterminator="\n", restval="")
    w.writeheader()
    st = d["statement"]
    w.writerow({"section": "statement", "key": "total", "calls": st["total"]})
    for e in st["entities"]:
        w.writerow({"section": "statement", "key": e["entity"], "calls": e["calls"]})
    for key in ("other_departments", "of_which_no_department"):
        w.writerow({"section": "statement", "key": key, "calls": st[key]})
    w.writerow({"section": "statement", "key": "asa", "asa_seconds": _csv(st["asa_seconds"])})
    w.writerow({"section": "totals", "key": "all", **_csv_row(d["totals"])})
    for outcome, n in d["outcomes"].items():
        w.writerow({"section": "outcome", "key": outcome, "calls": n})
    for sec, _title in SECTIONS:
        for row in d[sec]:
            w.writerow({"section": sec, "key": row["key"], **_csv_row(row)})
    return buf.getvalue()


def _csv(v: Any) -> Any:
    return "" if v is None else v


def _csv_row(figs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _csv(figs[k]) for k in FIGURES}


# -- table --------------------------------------------------------------------


def _n(v: int) -> str:
    return f"{v:,}"


def _half_up(v: float) -> Decimal:
    # Float formatting rounds half to even (16.25 -> "16.2"); a statement should say 16.3.
    return Decimal(repr(v)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _s(v: float | None) -> str:
    return "-" if v is None else f"{_half_up(v)} s"


def _p(v: float | None) -> str:
    return "-" if v is None else f"{_half_up(v * 100)}%"


def to_table(report: Report, names: Mapping[str, str] | None = None) -> str:
    names = names or {}
    d = report.to_dict()
    per, st, tot = d["period"], d["statement"], d["totals"]
    out: list[str] = []
    out.append(f"Hotline 109 - calls {per['from']} to {per['to']} ({per['timezone']})")
    filt = ", ".join(f"{k}={'|'.join(v)}" for k, v in d["filters"].items() if v)
    if filt:
        out.append(f"Filters: {filt}")
    out.append("")

    rows = [("Total calls", _n(st["total"]))]
    rows += [(names.get(e["entity"], e["entity"]), _n(e["calls"])) for e in st["entities"]]
    rows.append(("Other departments", _n(st["other_departments"])))
    rows.append(("Average speed of answer (ASA)", _s(st["asa_seconds"])))
    width = max(len(a) for a, _ in rows) + 4
    out += [f"  {a:<{width}}{b:>12}" for a, b in rows]
    if st["of_which_no_department"]:
        out.append(
            f"  (other departments include {_n(st['of_which_no_department'])} calls "
            "that ended before a department was chosen)"
        )
    out.append("")

    if d.get("callbacks"):
        out.append("Callbacks (requested / answered / failed, mean time to callback)")
        out += [f"  {names.get(c['entity'], c['entity']):<40}{c['requested']:>8}"
                f"{c['answered']:>8}{c['failed']:>8}  {_s(c['mean_seconds_to_callback'])}"
                for c in d.get("callbacks", [])]
        out.append("")
    sla = d["sla_seconds"]
    ab_menu, ab_queue = tot["abandoned_in_menu"], tot["abandoned_in_queue"]
    summary = [
        ("Queued for an agent", _n(tot["queued"])),
        ("Answered by an agent", _n(tot["answered"])),
        (f"Service level ({sla:g} s)", _p(tot["service_level"])),
        ("Abandoned in menus", f"{_n(ab_menu)}  ({_p(tot['abandon_rate_menu'])} of calls)"),
        ("Abandoned in queue", f"{_n(ab_queue)}  ({_p(tot['abandon_rate_queue'])} of queued)"),
        ("Average handle time (talk + wrap-up)", _s(tot["aht_seconds"])),
        ("Average talk time", _s(tot["talk_seconds_avg"])),
    ]
    width = max(len(a) for a, _ in summary) + 4
    out += [f"  {a:<{width}}{b}" for a, b in summary]

    for sec, title in SECTIONS:
        out.append("")
        out.append(title)
        out += _grid(d[sec], names if sec == "by_entity" else {})
    return "\n".join(out) + "\n"


def _grid(rows: list[dict[str, Any]], names: Mapping[str, str]) -> list[str]:
    head = ("", "calls", "answered", "ASA", "SL", "ab.menu", "ab.queue", "AHT")
    body = [
        (
            names.get(r["key"], r["key"]),
            _n(r["calls"]),
            _n(r["answered"]),
            _s(r["asa_seconds"]),
            _p(r["service_level"]),
            _n(r["abandoned_in_menu"]),
            _n(r["abandoned_in_queue"]),
            _s(r["aht_seconds"]),
        )
        for r in rows
    ]
    if not body:
        return ["  (no calls)"]
    w0 = max(len(head[0]), *(len(b[0]) for b in body))
    ws = [max(len(head[i]), *(len(b[i]) for b in body)) for i in range(1, len(head))]

    def fmt(r: tuple[str, ...]) -> str:
        cells = "".join("  " + c.rjust(w) for c, w in zip(r[1:], ws, strict=True))
        return "  " + r[0].ljust(w0) + cells

    return [fmt(head), *(fmt(b) for b in body)]
