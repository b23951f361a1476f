"""The agent report as a table, CSV or JSON, and the charts of the agent and
reasons reports (matplotlib's object API on the Agg canvas, as charts.py)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ari_app.reports.agents import AgentReport
from ari_app.reports.reasons import KINDS, NO_REASON, UNTAGGED, ReasonsReport

AGENT_FIGURES = ("signed_in_seconds", "available_seconds", "ringing_seconds", "talk_seconds",
                 "wrapup_seconds", "pause_seconds", "unreachable_seconds", "offers",
                 "calls_answered", "missed_offers", "aht_seconds", "occupancy")
AGENTS_CHART = "agent_time_per_site.png"
REASONS_CHART = "reasons_per_entity.png"


def agents_json(rep: AgentReport) -> str:
    return json.dumps(rep.to_dict(), ensure_ascii=False, indent=2) + "\n"


def _pause_reasons(d: dict[str, Any]) -> list[str]:
    return sorted({r for row in [d["totals"], *d["by_site"], *d["by_agent"]]
                   for r in row["pause_by_reason"]})


def agents_csv(rep: AgentReport) -> str:
    """One table: `section` is total, site or agent; a pause:<reason> column per reason."""
    d = rep.to_dict()
    reasons = _pause_reasons(d)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "site", *AGENT_FIGURES, *(f"pause:{r}" for r in reasons)])

    def row(section: str, key: str, site: str, f: dict[str, Any]) -> None:
        w.writerow([section, key, site, *("" if f[k] is None else f[k] for k in AGENT_FIGURES),
                    *(f["pause_by_reason"].get(r, 0) for r in reasons)])

    row("total", "total", "", d["totals"])
    for s in d["by_site"]:
        row("site", s["key"], s["key"], s)
    for a in d["by_agent"]:
        row("agent", a["key"], a["site"], a)
    return buf.getvalue()


def _hms(s: float) -> str:
    n = round(s)
    return f"{n // 3600}:{n % 3600 // 60:02d}:{n % 60:02d}"


def agents_table(rep: AgentReport) -> str:
    d = rep.to_dict()
    reasons = _pause_reasons(d)
    head = ["", "signed in", "talk", "wrap-up", "pause", *reasons, "answered", "missed",
            "AHT s", "occupancy"]

    def line(key: str, f: dict[str, Any]) -> list[str]:
        occ = "-" if f["occupancy"] is None else f"{f['occupancy'] * 100:.1f} %"
        aht = "-" if f["aht_seconds"] is None else f"{f['aht_seconds']:.1f}"
        return [key, _hms(f["signed_in_seconds"]), _hms(f["talk_seconds"]),
                _hms(f["wrapup_seconds"]), _hms(f["pause_seconds"]),
                *(_hms(f["pause_by_reason"].get(r, 0)) for r in reasons),
                str(f["calls_answered"]), str(f["missed_offers"]), aht, occ]

    body = [line("total", d["totals"])]
    body += [line(f"site {s['key']}", s) for s in d["by_site"]]
    body += [line(a["key"], a) for a in d["by_agent"]]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    title = (f"Agents, {rep.period.first} to {rep.period.last} ({rep.period.tz}), "
             f"counted until {rep.until}; times h:mm:ss")
    return "\n".join([title, "", fmt.format(*head), *(fmt.format(*x) for x in body)]) + "\n"


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    return path


def agents_chart(rep: AgentReport, outdir: str | os.PathLike[str]) -> Path:
    """Hours per state, stacked, one bar per site."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    sites = sorted(rep.by_site)
    parts = (("on_call", "talk", "#2b6cb0"), ("wrapup", "wrap-up", "#805ad5"),
             ("available", "available", "#38a169"), ("offered", "ringing", "#d69e2e"),
             ("paused", "paused", "#c05621"))
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    bottom = [0.0] * len(sites)
    for state, label, colour in parts:
        hours = [rep.by_site[s].seconds.get(state, 0.0) / 3600 for s in sites]
        ax.bar(sites, hours, bottom=bottom, label=label, color=colour)
        bottom = [b + h for b, h in zip(bottom, hours, strict=True)]
    ax.set_ylabel("hours")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(f"Agent time per site, {rep.period.first} to {rep.period.last}")
    return _save(fig, out / AGENTS_CHART)


def reasons_chart(rep: ReasonsReport, outdir: str | os.PathLike[str],
                  names: Mapping[str, str] | None = None) -> Path:
    """Calls per entity (the whole period), stacked by reason kind, largest at the top."""
    names = names or {}
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    per: dict[str, dict[str, int]] = {}
    for r in rep.rows:
        acc = per.setdefault(r.entity, dict.fromkeys((*KINDS, NO_REASON, UNTAGGED), 0))
        for k in acc:
            acc[k] += r.counts[k]
    ents = sorted(per, key=lambda e: (sum(per[e].values()), e))
    fig = Figure(figsize=(8, max(2.5, 0.35 * len(ents) + 1.5)))
    ax = fig.add_subplot()
    left = [0] * len(ents)
    colours = ("#2b6cb0", "#c53030", "#805ad5", "#718096", "#d69e2e", "#cbd5e0")
    for k, colour in zip((*KINDS, NO_REASON, UNTAGGED), colours, strict=True):
        vals = [per[e][k] for e in ents]
        ax.barh([names.get(e, e) for e in ents], vals, left=left, label=k.replace("_", " "),
                color=colour)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("calls")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(f"Call reasons per entity, {rep.period.first} to {rep.period.last}")
    return _save(fig, out / REASONS_CHART)
