"""Redis Sentinel failover figures: runs tests/integration/test_redis_sentinel.py
`--runs` times (a primary SIGKILLed while one caller talks and two wait) and
writes bench/results/<date>-redis-failover.{json,md} with each run's figures:

- lag: seconds until INFO showed the replica's offset equal to the primary's (the
  test waits for it before the kill; replicas report their offset once a second, so
  this is an upper bound on the replication lag, not the lag)
- promoted: seconds from the kill to the sentinels naming the replica primary
- app_back: seconds from the kill to the last waiting caller's `queue.redis_back`
  (the app writing to the new primary again; null if no caller met the outage)
- served: seconds from resuming the paused agent (after the test's checks on the
  new primary) to both waiting callers answered
- kill_to_served: seconds from the kill to both waiting callers answered, the
  test's own checks between promotion and the resume included
- kept: calls (of 3) whose SIPp scenario ended as scripted
- once: every call's events once in the stream and once in the archive

Usage: HOTLINE_PORT_OFFSET=<yours> .venv/bin/python bench/failover.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/integration/test_redis_sentinel.py"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    prov = provenance.start({"runs": args.runs, "test": TEST}, {"tree": ROOT})
    runs: list[dict[str, object]] = []
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.jsonl"
        for _ in range(args.runs):
            proc = subprocess.run([str(ROOT / ".venv/bin/pytest"), "-m", "integration", "-q",
                                   TEST], cwd=ROOT, env=dict(os.environ,
                                                             HOTLINE_BENCH_OUT=str(out)))
            failed += proc.returncode != 0
        if out.exists():
            runs = [json.loads(ln) for ln in out.read_text().splitlines() if ln.strip()]
    provenance.finish(prov)
    summary = {k: {"min": min(float(r[k]) for r in runs), "median": statistics.median(
        float(r[k]) for r in runs), "max": max(float(r[k]) for r in runs)}
        for k in ("lag", "promoted", "app_back", "served", "kill_to_served")
        if all(r.get(k) is not None for r in runs)} if runs else {}
    result = {"schema": "hotline-bench-redis-failover/1", "provenance": prov, "runs": runs,
              "failed_runs": failed, "summary": summary,
              "calls": sum(int(r["calls"]) for r in runs),  # type: ignore[call-overload]
              "kept": sum(int(r["kept"]) for r in runs),  # type: ignore[call-overload]
              "exactly_once": sum(bool(r["once"]) for r in runs)}
    js, md = provenance.result_paths("redis-failover")
    js.write_text(json.dumps(result, indent=1) + "\n")
    rows = "\n".join(f"| {i + 1} | {r['lag']} | {r['promoted']} | {r['app_back']} | "
                     f"{r['served']} | {r['kill_to_served']} | {r['kept']}/{r['calls']} | "
                     f"{r['once']} |"
                     for i, r in enumerate(runs))
    md.write_text(
        "# Redis Sentinel failover (primary SIGKILLed, 1 caller talking, 2 waiting)\n\n"
        f"{provenance.markdown(prov)}\n\n"
        "| run | replica caught up (s) | kill to promotion (s) | kill to app writing "
        "again (s) | agent resumed to both waiting served (s) | kill to both served (s) | "
        "calls kept | records exactly once |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n\nFailed runs: {failed}. Sentinels: down-after-milliseconds 1000, "
        "quorum 2 of 3, all on one host (loopback): a WAN adds its round trips.\n")
    print(md.read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
