"""PNG charts for a report.

Uses matplotlib's object API with the Agg canvas, not pyplot: no display is
needed and no global figure state leaks between reports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ari_app.reports.compute import Report

CHARTS = ("calls_per_entity.png", "calls_per_hour.png", "speed_of_answer_per_day.png")


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    return path


def write_charts(
    report: Report, outdir: str | os.PathLike[str], names: Mapping[str, str] | None = None
) -> list[Path]:
    names = names or {}
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    period = f"{report.query.period.first} to {report.query.period.last}"
    paths: list[Path] = []

    rows = list(reversed(report.by_entity))  # largest at the top of a barh
    fig = Figure(figsize=(8, max(2.5, 0.35 * len(rows) + 1.2)))
    ax = fig.add_subplot()
    ax.barh([names.get(k.key, k.key) for k in rows], [k.sums.calls for k in rows], color="#2b6cb0")
    ax.set_xlabel("calls")
    ax.set_title(f"Calls per entity, {period}")
    paths.append(_save(fig, out / CHARTS[0]))

    fig = Figure(figsize=(8, 3.5))
    ax = fig.add_subplot()
    ax.bar([k.key for k in report.by_hour], [k.sums.calls for k in report.by_hour], color="#2b6cb0")
    ax.set_xlabel(f"hour of day ({report.query.period.tz})")
    ax.set_ylabel("calls")
    ax.set_title(f"Calls per hour of day, {period}")
    paths.append(_save(fig, out / CHARTS[1]))

    fig = Figure(figsize=(9, 3.5))
    ax = fig.add_subplot()
    xs = [k.key[5:] for k in report.by_day]  # MM-DD
    ys = [k.sums.figures()["asa_seconds"] for k in report.by_day]
    ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o", color="#c05621")
    ax.set_ylabel("ASA (s)")
    known = [y for y in ys if y is not None]
    ax.set_ylim(0, max(known) * 1.15 if known else 1)  # headroom: points are not cut in half
    ax.set_title(f"Average speed of answer per day, {period}")
    step = max(1, len(xs) // 15)
    ax.set_xticks(range(0, len(xs), step), [xs[i] for i in range(0, len(xs), step)], rotation=45)
    paths.append(_save(fig, out / CHARTS[2]))
    return paths
