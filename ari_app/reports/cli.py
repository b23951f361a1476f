"""`hotline report`: figures for a month or a date range, as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from ari_app.records.archive import ArchiveError
from ari_app.records.cli import _date, add_db_arguments, default_tz, open_archive, resolve_tz


def _month(s: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", s):
        raise argparse.ArgumentTypeError(f"not a month (YYYY-MM): {s!r}")
    return s


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="call, call reason or agent figures for a month or a "
                       "date range")
    p.add_argument("--kind", choices=("calls", "reasons", "agents"), default="calls",
                   help="calls (default); reasons: call reasons per entity per month; "
                   "agents: per agent and per site")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--month", type=_month, help="YYYY-MM")
    when.add_argument("--from", dest="date_from", type=_date, help="first day (with --to)")
    p.add_argument("--to", dest="date_to", type=_date, help="last day, inclusive")
    p.add_argument("--entity", action="append", default=[], help="only this entity (repeatable)")
    p.add_argument("--site", action="append", default=[], help="only this site (repeatable)")
    p.add_argument("--language", action="append", default=[], help="only this language")
    p.add_argument("--agent", action="append", default=[],
                   help="only this agent (repeatable; --kind agents)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.add_argument("--charts", metavar="DIR", help="also write PNG charts into DIR")
    add_db_arguments(p)
    p.add_argument("--sla-seconds", type=float, default=20.0, help="service level threshold")
    p.add_argument("--top", type=int, default=4, help="entities named in the statement")
    p.add_argument("--tz", default=default_tz(),
                   help="time zone for days/hours (env HOTLINE_TZ; default: the config's)")
    p.set_defaults(func=cmd_report)


def _names_and_other(config: str | None) -> tuple[dict[str, str], tuple[str, ...]]:
    """Entity display names and the 'other departments' id, if a config can be read."""
    from ari_app.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as e:
        if config is not None:
            print(f"hotline: note: entity names unavailable: {e}", file=sys.stderr)
        return {}, ("other",)
    names = {e.id: e.names.get("en") or next(iter(e.names.values()), e.id) for e in cfg.entities}
    return names, (cfg.other_departments.id,)


# filters a kind of report cannot honour: refused rather than silently ignored
_NOT_FOR = {"calls": ("agent",), "reasons": ("site", "language", "agent"),
            "agents": ("entity", "language")}


def cmd_report(args: argparse.Namespace) -> int:
    from ari_app.reports.charts import write_charts
    from ari_app.reports.compute import Period, Query, compute
    from ari_app.reports.render import to_csv, to_json, to_table
    from ari_app.reports.survey import survey_scores, survey_table

    args.tz = resolve_tz(args)
    unused = [f"--{f}" for f in _NOT_FOR[args.kind] if getattr(args, f)]
    if unused:
        print(f"hotline: {', '.join(unused)} does not apply to --kind {args.kind}",
              file=sys.stderr)
        return 2
    try:
        if args.month:
            period = Period.month(args.month, args.tz)
        else:
            if args.date_to is None:
                print("hotline: --from needs --to", file=sys.stderr)
                return 2
            if args.date_to < args.date_from:
                print("hotline: --to is before --from", file=sys.stderr)
                return 2
            period = Period(args.date_from, args.date_to, args.tz)
        period.utc_bounds()
    except (KeyError, ValueError) as e:
        print(f"hotline: bad period or time zone: {e}", file=sys.stderr)
        return 2
    names, other = _names_and_other(getattr(args, "config", None))
    q = Query(
        period=period,
        entities=tuple(args.entity),
        sites=tuple(args.site),
        languages=tuple(args.language),
        sla_seconds=args.sla_seconds,
        top=args.top,
        other_ids=other,
    )
    opened = open_archive(args, must_exist=True)
    if opened is None:
        return 1
    failures: tuple[type[Exception], ...] = (ArchiveError, *opened.db_errors)
    if args.kind != "calls":
        return _work_report(args, period, names, opened, failures)
    try:
        with opened as archive:
            report = compute(archive.db, q)
            start, end = q.period.utc_bounds()
            surveys = survey_scores(archive.db, start, end, {
                "entity": q.entities, "site": q.sites, "language": q.languages})
    except failures as e:
        print(f"hotline: {e}", file=sys.stderr)
        return 1
    text = {
        "table": lambda: to_table(report, names) + survey_table(surveys),
        "csv": lambda: to_csv(report),
        "json": lambda: _with_surveys(to_json(report), surveys),
    }[args.format]()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if args.charts:
        for path in write_charts(report, args.charts, names):
            print(f"chart: {path}", file=sys.stderr)
    return 0


def _work_report(args: argparse.Namespace, period: Any, names: dict[str, str], opened: Any,
                 failures: tuple[type[Exception], ...]) -> int:
    """--kind reasons | agents (reports/reasons.py, reports/agents.py)."""
    from ari_app.reports import work_render as wr
    from ari_app.reports.agents import compute_agents
    from ari_app.reports.reasons import compute_reasons, reasons_csv, reasons_json, reasons_table

    try:
        with opened as archive:
            if args.kind == "reasons":
                rr = compute_reasons(archive.db, period, tuple(args.entity))
            else:
                ar = compute_agents(archive.db, period, tuple(args.site), tuple(args.agent))
    except failures as e:
        print(f"hotline: {e}", file=sys.stderr)
        return 1
    if args.kind == "reasons":
        text = {"table": lambda: reasons_table(rr, names), "csv": lambda: reasons_csv(rr),
                "json": lambda: reasons_json(rr)}[args.format]()
    else:
        text = {"table": lambda: wr.agents_table(ar), "csv": lambda: wr.agents_csv(ar),
                "json": lambda: wr.agents_json(ar)}[args.format]()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if args.charts:
        path = (wr.reasons_chart(rr, args.charts, names) if args.kind == "reasons"
                else wr.agents_chart(ar, args.charts))
        print(f"chart: {path}", file=sys.stderr)
    return 0


def _with_surveys(text: str, surveys: dict[str, Any]) -> str:
    """The JSON report with the post-call survey's scores (reports/survey.py)."""
    d = json.loads(text)
    d["survey"] = {dim: [s.as_dict() for s in rows] for dim, rows in surveys.items()}
    return json.dumps(d, ensure_ascii=False, indent=2) + "\n"
