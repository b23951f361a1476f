#!/usr/bin/env python3
"""Before/after: the app leg of bench/load.py on two checkouts, back to back on
this machine, same load, one result file with both rows and their ratio.

    python3 bench/compare.py --before DIR_A --after DIR_B [--rates 10] [--duration 20]
                             [--rounds 2] [--name compare] [--offset N]

Each tree runs with its own venv (DIR/.venv/bin/python) and its own app, rig and
config: a fresh stack (port offset --offset, default $HOTLINE_PORT_OFFSET or
700), the agents registered, a few warm-up calls, a short idle window, then
--duration seconds of calls at each rate; then the stack goes down and the
other tree's comes up. --rounds N alternates before, after, before, after...
and the summary compares each side's mean.
The driver (this script, load.py and its SIPp scenario) is this checkout's, so
both trees are measured by the same code.

Writes bench/results/<UTC date>-<name>.{json,md}: provenance (both trees'
commits, the machine, load average before and after each run), one row per run
and rate, and after/before. At 10 calls/s the defaults (2 rounds of 20 s) cost about
3 minutes in all (each run about 45 s, of which 20 s is the stack, the agents'
registration, the warm-up and the idle window).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

import provenance

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"

# (key in a load.py step, column heading); the per-call figures the lead compares
METRICS = [
    ("app_cpu_ms_per_call", "app CPU ms/call"),
    ("redis_cmds_per_call", "Redis cmds/call"),
    ("failed", "failed"),
    ("digit_to_agent_ms_p50", "key→agent p50 ms"),
    ("digit_to_agent_ms_p95", "key→agent p95 ms"),
    ("loop_lag_p99_ms_max", "loop lag p99 ms (max)"),
    ("asterisk_cpu_ms_per_call", "Asterisk CPU ms/call"),
]


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="checkout measured first")
    ap.add_argument("--after", type=Path, required=True, help="checkout measured second")
    ap.add_argument("--rates", default="10", help="calls/s, comma separated")
    ap.add_argument("--duration", type=float, default=20.0,
                    help="offered seconds of calls per rate and tree")
    ap.add_argument("--rounds", type=int, default=2,
                    help="before/after pairs, alternating: each side's runs show its own spread "
                         "and one run upset by other work on the machine stands out")
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--ring-ms", type=int, default=200)
    ap.add_argument("--talk-ms", type=int, default=2000,
                    help="as in issue 15's runs; much shorter and an app slowed by other "
                         "work fails calls because the agent hung up before the bridge")
    ap.add_argument("--warmup-calls", type=int, default=10)
    ap.add_argument("--name", default="compare", help="result name: bench/results/<date>-<name>")
    ap.add_argument("--quiet-cores", type=float, default=0.6,
                    help="before each run, wait until other work uses at most this many CPUs")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="but wait at most this many seconds per run (then run anyway, noted)")
    ap.add_argument("--offset", type=int,
                    default=int(os.environ.get("HOTLINE_PORT_OFFSET") or 700))
    return ap.parse_args(argv)


def check_tree(label: str, tree: Path) -> list[str]:
    problems = []
    if not (tree / "ari_app").is_dir():
        problems.append(f"--{label} {tree}: not a Hotline 109 checkout (no ari_app/)")
    elif not (tree / ".venv/bin/python").exists():
        problems.append(f"--{label} {tree}: no .venv: run `make venv prompts` there")
    elif not (tree / "build/sounds").is_dir():
        problems.append(f"--{label} {tree}: no build/sounds: run `make prompts` there")
    return problems


def wait_quiet(args: argparse.Namespace) -> dict[str, Any]:
    """Other users' work is the largest noise here (2 shared CPUs): start a run when
    they leave room for it, and record how busy they were."""
    t0 = time.monotonic()
    while True:
        cores = provenance.busy_cores(5.0)
        waited = round(time.monotonic() - t0, 1)
        if cores <= args.quiet_cores or waited >= args.quiet_wait:
            return {"others_cores_before": cores, "waited_s": waited,
                    "quiet": cores <= args.quiet_cores}
        log(f"other work uses {cores:g} CPUs (> {args.quiet_cores:g}): waiting "
            f"({waited:g}/{args.quiet_wait:g} s)")


def run_tree(label: str, tree: Path, args: argparse.Namespace, round_no: int) -> dict[str, Any]:
    """load.py's app leg on one tree, under that tree's interpreter; its result JSON."""
    out = OUT / f"{args.name}-{label}-{round_no}.json"
    out.unlink(missing_ok=True)
    cmd = [str(tree / ".venv/bin/python"), str(BENCH / "load.py"), "--tree", str(tree),
           "--systems", "app", "--rates", args.rates, "--seconds", f"{args.duration:g}",
           "--min-calls", "0", "--agents", str(args.agents), "--ring-ms", str(args.ring_ms),
           "--talk-ms", str(args.talk_ms), "--warmup-calls", str(args.warmup_calls),
           "--stop-after-dirty", "1000", "--offset", str(args.offset),
           "--name", f"{args.name}-{label}-{round_no}", "--json-out", str(out)]
    gate = wait_quiet(args)
    log(f"{label} (round {round_no}): {tree}; other work {gate['others_cores_before']:g} CPUs")
    t0 = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL) as proc:
        try:
            proc.wait(timeout=1800)
        except BaseException:
            proc.terminate()  # load.py stops its stack and phones on SIGTERM
            proc.wait(60)
            raise
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"compare: the {label} run on {tree} failed (exit {proc.returncode}); "
                         f"its log is above, its raw data in {OUT / out.stem}")
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["wall_seconds"] = round(time.monotonic() - t0, 1)
    doc["gate"] = gate
    return doc


def rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run and rate: the metrics, the calls, the machine's load then."""
    out = []
    for run in runs:
        doc = run["doc"]
        for step in doc["steps"]:
            row = {"label": run["label"], "round": run["round"], "rate": step["rate"],
                   "calls": step["calls"], "clean": step["clean"],
                   "machine_busy_pct": step.get("machine_busy_pct"),
                   "others_cores_before": doc["gate"]["others_cores_before"],
                   "others_cores": step.get("others_cores"),
                   "loadavg_start": doc["provenance"]["loadavg_start"][0],
                   "loadavg_end": doc["provenance"]["loadavg_end"][0],
                   "wall_seconds": doc["wall_seconds"]}
            row.update({k: step.get(k) for k, _ in METRICS})
            out.append(row)
    return out


def summary(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate: the mean of each side, after/before, and how far apart the runs of
    one side lie (max - min over its rounds, as a share of its mean).

    A run that fell behind (not clean) measures the machine's other work as much as
    the code, so a side's means use its clean runs when it has any (`runs_used`
    says which); failed calls are always averaged over every run."""
    out = []
    for rate in sorted({r["rate"] for r in table}):
        at_rate = [r for r in table if r["rate"] == rate]
        used: dict[str, list[dict[str, Any]]] = {}
        for side in ("before", "after"):
            runs = [r for r in at_rate if r["label"] == side]
            used[side] = [r for r in runs if r["clean"]] or runs
        entry: dict[str, Any] = {"rate": rate, "runs_used": {
            side: [r["round"] for r in rs] for side, rs in used.items()}}
        for key, _ in METRICS:
            sides: dict[str, list[float]] = {}
            for side, runs in used.items():
                pool = [r for r in at_rate if r["label"] == side] if key == "failed" else runs
                vals = [float(r[key]) for r in pool if r[key] is not None]
                if vals:
                    sides[side] = vals
            b, a = sides.get("before"), sides.get("after")
            mb, ma = (round(mean(b), 2) if b else None), (round(mean(a), 2) if a else None)
            entry[key] = {
                "before": mb, "after": ma,
                "ratio": round(ma / mb, 3) if ma is not None and mb else None,
                "diff": round(ma - mb, 2) if ma is not None and mb is not None else None,
                "rel_diff": round(abs(ma - mb) / ((ma + mb) / 2), 3)
                if ma is not None and mb is not None and ma + mb else None,
                "spread_within_side": {
                    side: round((max(v) - min(v)) / mean(v), 3) if len(v) > 1 and mean(v) else None
                    for side, v in sides.items()}}
        out.append(entry)
    return out


def fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return f"{v:g}" if isinstance(v, float) else str(v)


def markdown(doc: dict[str, Any]) -> str:
    heads = ["tree", "round", "calls/s", "calls", *[h for _, h in METRICS], "clean",
             "others' CPUs before → during", "load avg start → end", "wall s"]
    lines = [f"# Before/after `{doc['params']['name']}` ({doc['provenance']['started_utc']})",
             "", provenance.markdown(doc["provenance"]), "",
             f"Each tree: its own stack, {doc['params']['agents']} agents (ring "
             f"{doc['params']['ring_ms']} ms, talk {doc['params']['talk_ms']} ms), "
             f"{doc['params']['warmup_calls']} unmeasured warm-up calls, then "
             f"{doc['params']['duration']:g} s of calls per rate through the app (number 109). "
             f"Same commit on both sides: {doc['same_commit']}.", "",
             "| " + " | ".join(heads) + " |",
             "| --- | " + " | ".join("---:" for _ in heads[1:]) + " |"]
    for r in doc["rows"]:
        cells = [r["label"], r["round"], r["rate"], r["calls"], *[r[k] for k, _ in METRICS],
                 r["clean"], f"{fmt(r['others_cores_before'])} → {fmt(r['others_cores'])}",
                 f"{r['loadavg_start']:g} → {r['loadavg_end']:g}", r["wall_seconds"]]
        lines.append("| " + " | ".join(fmt(c) for c in cells) + " |")
    for s in doc["summary"]:
        derived: list[tuple[str, list[Any]]] = [
            (f"{side} mean (rounds {', '.join(map(str, s['runs_used'][side]))})",
             [s[k][side] for k, _ in METRICS]) for side in ("before", "after")]
        derived += [("after / before", [s[k]["ratio"] for k, _ in METRICS]),
                    ("abs(after − before) / mean", [s[k]["rel_diff"] for k, _ in METRICS])]
        if doc["params"]["rounds"] > 1:
            derived += [(f"{side}: (max − min) / mean",
                         [s[k]["spread_within_side"].get(side) for k, _ in METRICS])
                        for side in ("before", "after")]
        for title, values in derived:
            cells = [f"**{title}**", "", s["rate"], "", *values, "", "", "", ""]
            lines.append("| " + " | ".join(fmt(c) for c in cells) + " |")
    dirty = [f"{r['label']} {r['round']} at {r['rate']:g}/s" for r in doc["rows"] if not r["clean"]]
    if dirty:
        lines += ["", f"NOT CLEAN (failed calls or leftovers): {', '.join(dirty)}. Such a run's "
                  "per-call figures include the app falling behind (retries, long-lived "
                  "channels): a side's means leave it out when that side has a clean run "
                  "(the rounds used are named), except failed calls, averaged over every run."]
    busy = [f"{r['label']} {r['round']} ({r['doc']['gate']['others_cores_before']:g} CPUs)"
            for r in doc["runs"] if not r["doc"]["gate"]["quiet"]]
    waited = sum(r["doc"]["gate"]["waited_s"] for r in doc["runs"])
    lines += ["", f"Before each run the bench waited (at most {doc['params']['quiet_wait']:g} s) "
              f"for other work to use at most {doc['params']['quiet_cores']:g} CPUs: "
              f"{waited:g} s in all; "
              + (f"runs started on a busier machine: {', '.join(busy)}." if busy
                 else "every run started on a quiet enough machine.")]
    idle = [f"{r['label']} {r['round']}: app {i.get('app_cpu_ms_per_s')} ms CPU/s, Redis "
            f"{i.get('redis_cmds_per_s')} cmds/s"
            for r in doc["runs"] for i in [r["doc"].get("idle", {}).get("app", {})]]
    lines += ["", "Idle (no call, after the warm-up; included in the per-call figures at "
              "idle rate ÷ call rate): " + "; ".join(idle) + ".",
              "", f"Total wall time {doc['wall_seconds']:g} s.", ""]
    return "\n".join(lines)


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_on_signal)
    args = parse_args(argv)
    before, after = args.before.resolve(), args.after.resolve()
    problems = check_tree("before", before) + check_tree("after", after)
    if args.duration <= 0 or args.rounds < 1:
        problems.append("--duration must be positive and --rounds at least 1")
    if problems:
        raise SystemExit("compare: " + "\n  ".join(problems))
    prov = provenance.start(vars(args) | {"before": str(before), "after": str(after)},
                            {"before": before, "after": after, "bench": BENCH.parent})
    t0 = time.monotonic()
    runs = []
    for round_no in range(1, args.rounds + 1):
        for label, tree in (("before", before), ("after", after)):
            runs.append({"label": label, "round": round_no, "tree": str(tree),
                         "doc": run_tree(label, tree, args, round_no)})
    git = prov["git"]
    doc: dict[str, Any] = {
        "schema": "hotline-bench-compare/1", "provenance": provenance.finish(prov),
        "params": prov["params"],
        "same_commit": git["before"]["commit"] == git["after"]["commit"]
        and not git["before"]["dirty"] and not git["after"]["dirty"],
        "wall_seconds": round(time.monotonic() - t0, 1)}
    doc["rows"] = rows(runs)
    doc["summary"] = summary(doc["rows"])
    doc["runs"] = runs
    jpath, mpath = provenance.result_paths(args.name)
    jpath.write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    mpath.write_text(md)
    print(md)
    log(f"wrote {jpath} and {mpath} in {doc['wall_seconds']:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
