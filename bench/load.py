#!/usr/bin/env python3
"""Load bench: plain Asterisk (dialplan + app_queue) against the app's full journey.

One Asterisk 22 (the rig's chroot), one Redis, the app and its archiver, SIPp
callers and SIPp agents' phones, on a stack of its own (port offset --offset,
default $HOTLINE_PORT_OFFSET or 700). Per rate step (calls/s) a fixed number of
calls runs first through the baseline (number 1099: Answer, two Read() menus
with the app's prompts, Queue(bench) leastrecent to the same agents) and then
through the app (number 109: language menu, main menu, queue for `other`, agent
chosen in Redis, bridged, call record written), so both see the same machine
load at the same moment.

Each caller presses 2 (English) FIRST_MS after the answer and 0 (other
departments) GAP_MS later, then waits for the BYE; every agent's phone rings
--ring-ms, answers, talks --talk-ms and hangs up. A baseline step whose offered
agent load (rate x (ring + talk) / agents) is above 0.7 is refused: it would
measure the agents, not Asterisk.

    .venv/bin/python bench/load.py [--rates 5,10,15,25,50,100,150] [--agents 300]
                                   [--systems baseline,app] [--name load] [--offset N]
                                   [--tree DIR] [--profile-rate R] [--keep]

--tree DIR runs the app, the rig and the config of another checkout (its own
.venv: run this script with DIR/.venv/bin/python); bench/compare.py uses it.

Writes bench/results/<UTC date>-<name>.{json,md} (small, committed: provenance,
parameters, one row per step, headline) or, with --json-out, that one JSON file
instead; raw SIPp logs, the chart and py-spy's output stay in bench/out/. A
system's higher steps are skipped after two dirty steps in a row. How each
figure is measured: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def _tree(argv: list[str]) -> Path:
    """The checkout under test: it must come first on sys.path before its modules
    (the rig, ari_app, the SIPp helpers) are imported."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--tree", type=Path, default=BENCH.parent)
    return ap.parse_known_args(argv)[0].tree.resolve()


TREE = _tree(sys.argv[1:])
sys.path.insert(0, str(TREE))

import provenance  # noqa: E402
from load_probes import PhoneGroup, pool_ready, start_phones, stop_phones  # noqa: E402
from load_report import (  # noqa: E402
    AGENT_BOUND_UTILISATION,
    StepResult,
    chart,
    headline,
    markdown,
    profile_top,
    table,
)
from load_stack import BenchStack, write_bench_config  # noqa: E402
from load_steps import FIRST_MS, GAP_MS, Run  # noqa: E402

from scripts.stack import ensure_rootfs  # noqa: E402

OUT = BENCH / "out"


def log(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- main --

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rates", default="5,10,15,25,50,100,150")
    ap.add_argument("--seconds", type=float, default=8.0, help="offered seconds per step")
    ap.add_argument("--min-calls", type=int, default=50)
    ap.add_argument("--agents", type=int, default=300)
    ap.add_argument("--ring-ms", type=int, default=200, help="agent phone rings this long")
    ap.add_argument("--talk-ms", type=int, default=1000,
                    help="then talks this long (the app must bridge the agent's leg before "
                         "the phone hangs up: too short a talk fails calls a slow app would "
                         "still connect)")
    ap.add_argument("--systems", default="baseline,app", help="which legs each step runs")
    ap.add_argument("--warmup-calls", type=int, default=10,
                    help="unmeasured calls through each system before its first step")
    ap.add_argument("--idle-seconds", type=float, default=3.0,
                    help="measure the background cost with no call for this long")
    ap.add_argument("--profile-rate", type=float, default=0.0,
                    help="py-spy record the app during this app step (0: none; py-spy "
                         "stops the app to sample, so that step's CPU is inflated)")
    ap.add_argument("--stop-after-dirty", type=int, default=2,
                    help="skip a system's higher steps after this many dirty steps in a row")
    ap.add_argument("--redis-max-connections", type=int, default=0,
                    help="app's redis-py pool size via the URL (0: as the config ships it)")
    ap.add_argument("--recording-share", type=float, default=0.0,
                    help="supervision.recording.share: %% of answered calls Asterisk records")
    ap.add_argument("--name", default="load", help="result name: bench/results/<date>-<name>")
    ap.add_argument("--json-out", type=Path,
                    help="write the result JSON here instead of bench/results/")
    ap.add_argument("--offset", type=int,
                    default=int(os.environ.get("HOTLINE_PORT_OFFSET") or 700),
                    help="the stack's port offset (default $HOTLINE_PORT_OFFSET, else 700)")
    ap.add_argument("--stack-name", help="rig stack name (default bench<offset>)")
    ap.add_argument("--tree", type=Path, default=BENCH.parent,
                    help="checkout whose app, rig and config are measured")
    ap.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    return ap.parse_args(argv)


def preflight(args: argparse.Namespace, rates: list[float], systems: list[str]) -> None:
    """Refuse, naming the problem, a run whose figures would mean something else."""
    import ari_app

    problems = []
    if not (TREE / ".venv/bin/hotline").exists():
        problems.append(f"{TREE}/.venv/bin/hotline is missing: run `make venv` in {TREE}")
    if not (TREE / "build/sounds").is_dir():
        problems.append(f"{TREE}/build/sounds is missing: run `make prompts` in {TREE}")
    if not Path(ari_app.__file__).resolve().is_relative_to(TREE):
        problems.append(f"ari_app comes from {ari_app.__file__}, not from {TREE}: "
                        f"run this script with {TREE}/.venv/bin/python")
    if not rates or min(rates) <= 0:
        problems.append(f"--rates must be positive calls/s, got {args.rates!r}")
    if not systems or set(systems) - {"baseline", "app"}:
        problems.append(f"--systems must name baseline and/or app, got {args.systems!r}")
    if args.agents < 1:
        problems.append(f"--agents must be at least 1, got {args.agents}")
    busy = (args.ring_ms + args.talk_ms) / 1000
    over = [r for r in rates if r * busy / max(args.agents, 1) > AGENT_BOUND_UTILISATION]
    if "baseline" in systems and over:
        cap = args.agents / busy
        problems.append(
            f"baseline rates {over} would offer the {args.agents} agents more than "
            f"{AGENT_BOUND_UTILISATION:.0%} of what they serve ({cap:.0f} calls/s at "
            f"{args.ring_ms} + {args.talk_ms} ms a call): the baseline would measure the agents, "
            f"not Asterisk. Add agents (--agents) or shorten --talk-ms")
    if problems:
        raise SystemExit("bench/load.py: " + "\n  ".join(problems))


def _stop_on_signal(signum: int, _frame: object) -> None:
    # a background job ignores SIGINT and SIGTERM kills outright: either way the
    # stack and the phones would outlive the run. SystemExit runs the `finally`.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_on_signal)
    args = parse_args(argv)
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    preflight(args, rates, systems)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    prov = provenance.start(params, {"bench": BENCH.parent, "tree": TREE}
                            if BENCH.parent != TREE else {"tree": TREE})
    work = OUT / args.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    config = write_bench_config(TREE, args.agents, work)
    from ari_app.config.loader import load_config

    agents = load_config(config).agents
    stack = BenchStack(config, [a.endpoint for a in agents], args.stack_name or
                       f"bench{args.offset}", args.offset,
                       redis_max_connections=args.redis_max_connections,
                       baseline="baseline" in systems, recording_share=args.recording_share)
    version = ensure_rootfs(stack.rootfs)
    stack.install_sounds()
    shutil.rmtree(stack.dir / "redis", ignore_errors=True)  # the bench's own Redis: start empty
    phones: list[PhoneGroup] = []
    run: Run | None = None
    results: list[StepResult] = []
    warmups: list[StepResult] = []
    idle: dict[str, dict[str, float]] = {}
    try:
        stack.up(app=True)
        log(f"{version}: stack {stack.name} up (offset {args.offset}, tree {TREE})")
        if "baseline" in systems and "bench" not in stack.asterisk_cli("queue show bench"):
            raise RuntimeError("baseline queue missing from Asterisk")
        start_phones(stack, agents, work, args.ring_ms, args.talk_ms, phones)
        log(f"{len(agents)} agents registered on {len(phones)} SIPp phones")
        run = Run(stack, work, phones, OUT / f"{args.name}-profile", TREE / ".venv/bin/py-spy")
        dirty = dict.fromkeys(systems, 0)
        for rate in rates:
            n = max(args.min_calls, int(rate * args.seconds))
            for system in systems:
                if dirty[system] >= args.stop_after_dirty:
                    continue  # this system already failed twice in a row
                if system == "app":
                    log(f"pool: {pool_ready(stack, config)}")
                if args.warmup_calls and not any(w.system == system for w in warmups):
                    warmups.append(run.step(system, rate, args.warmup_calls, label="-warmup"))
                    log(f"{system} warm-up: failed={warmups[-1].failed}")
                    if args.idle_seconds > 0:
                        idle[system] = run.idle(args.idle_seconds)
                        log(f"idle after the {system} warm-up: {idle[system]}")
                r = run.step(system, rate, n,
                             profile=system == "app" and rate == args.profile_rate)
                results.append(r)
                dirty[system] = 0 if r.clean else dirty[system] + 1
                log(f"{system:8} {rate:5g}/s n={n}: failed={r.failed} "
                    f"key→agent p50={r.digit_to_agent_ms_p50} p95={r.digit_to_agent_ms_p95} "
                    f"ast={r.asterisk_cpu_ms_per_call} app={r.app_cpu_ms_per_call} "
                    f"redis={r.redis_cmds_per_call} lag={r.loop_lag_p99_ms_max} "
                    f"left={r.left_channels}/{r.left_bridges} wall={r.wall_seconds}")
                time.sleep(2)
            if min(dirty.values()) >= args.stop_after_dirty:
                log("every system dirty: stopping")
                break
    finally:
        stop_phones(phones)
        if not args.keep:
            stack.down()
    busy = (args.ring_ms + args.talk_ms) / 1000
    for r in results + warmups:
        r.agent_utilisation = round(r.rate * busy / args.agents, 3)
    doc: dict[str, Any] = {
        "schema": "hotline-bench-load/1", "provenance": provenance.finish(prov),
        "params": params, "asterisk": version, "first_key_ms": FIRST_MS, "gap_ms": GAP_MS,
        "last_key_offset_s": round(run.last_key, 3) if run else None,
        "agent_capacity_calls_s": round(args.agents / busy, 1), "idle": idle,
        "headline": headline(results), "steps": [asdict(r) for r in results],
        "warmup": [asdict(r) for r in warmups],
        "profile": profile_top(OUT / f"{args.name}-profile.txt") if args.profile_rate else {}}
    write(doc, results, args)
    print(table(results))
    return 0


def write(doc: dict[str, Any], results: list[StepResult], args: argparse.Namespace) -> None:
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(doc, indent=1))
        log(f"wrote {args.json_out}")
        return
    jpath, mpath = provenance.result_paths(args.name)
    jpath.write_text(json.dumps(doc, indent=1) + "\n")
    mpath.write_text(markdown(doc, results, provenance.markdown(doc["provenance"])))
    if len({r.rate for r in results}) > 1:
        chart(results, OUT / f"{args.name}-chart.png")
    log(f"wrote {jpath} and {mpath}")


if __name__ == "__main__":
    sys.exit(main())
