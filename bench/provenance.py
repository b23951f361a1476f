"""Where a bench figure came from: the code, the machine, the load on it, the command.

Every result file the benches write carries one of these, so a reader can tell
whether two figures are comparable (same commit? same machine? was the machine
busy with other work?) without asking whoever ran them.

Stdlib only: compare.py runs it under whichever Python launched it.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def git_state(tree: Path) -> dict[str, Any]:
    """Commit, branch and whether the work tree differs from it (a dirty tree's
    figures belong to no commit: the result says so rather than pretending)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"tree": str(tree), "commit": git("rev-parse", "HEAD") or None,
            "subject": git("log", "-1", "--format=%s") or None,
            "branch": git("rev-parse", "--abbrev-ref", "HEAD") or None,
            "dirty": bool(status), "dirty_files": status.splitlines()[:20]}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def machine() -> dict[str, Any]:
    u = platform.uname()
    return {"uname": f"{u.system} {u.node} {u.release} {u.version} {u.machine}",
            "nproc": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": _cpu_model(), "mem_total_mib": _mem_total_mib(),
            "python": sys.version.split()[0]}


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over every CPU since boot, from /proc/stat: between two
    readings, how busy the whole machine was, whoever kept it busy."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    total = sum(v[:8])  # guest time is already counted in user
    return total - idle, total


def busy_cores(seconds: float) -> float:
    """CPUs' worth of work the machine did over the next `seconds`."""
    t0 = machine_ticks()
    time.sleep(seconds)
    t1 = machine_ticks()
    d_total = t1[1] - t0[1]
    return round((t1[0] - t0[0]) / d_total * (os.cpu_count() or 1), 2) if d_total > 0 else 0.0


def busy_pct(t0: tuple[int, int], t1: tuple[int, int]) -> float | None:
    d_total = t1[1] - t0[1]
    return round(100 * (t1[0] - t0[0]) / d_total, 1) if d_total > 0 else None


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def start(params: dict[str, Any], trees: dict[str, Path],
          argv: list[str] | None = None) -> dict[str, Any]:
    """Provenance at the start of a run; `finish` adds the end. `trees` names each
    checkout whose code the run used (the bench's own, the tree under test)."""
    argv = sys.argv if argv is None else argv
    return {"started_utc": utc_now(), "command": shlex.join([sys.executable, *argv]),
            "cwd": os.getcwd(), "params": params,
            "git": {k: git_state(v) for k, v in trees.items()},
            "machine": machine(), "loadavg_start": loadavg()}


def finish(prov: dict[str, Any]) -> dict[str, Any]:
    prov["finished_utc"] = utc_now()
    prov["loadavg_end"] = loadavg()
    return prov


def result_paths(name: str, results: Path = RESULTS) -> tuple[Path, Path]:
    """bench/results/<UTC date>-<name>.{json,md}: small files, meant to be committed."""
    stem = f"{time.strftime('%Y-%m-%d', time.gmtime())}-{name}"
    results.mkdir(parents=True, exist_ok=True)
    return results / f"{stem}.json", results / f"{stem}.md"


def markdown(prov: dict[str, Any]) -> str:
    """The provenance as a few lines for the top of a markdown result."""
    m = prov["machine"]
    lines = [f"- run: {prov['started_utc']} to {prov.get('finished_utc', '?')} (UTC)",
             f"- command: `{prov['command']}`"]
    for role, g in prov["git"].items():
        dirty = " (DIRTY work tree: uncommitted changes)" if g["dirty"] else ""
        lines.append(f"- {role}: `{g['tree']}` at {str(g['commit'])[:12]} "
                     f"({g['branch']}: {g['subject']}){dirty}")
    lines.append(f"- machine: {m['uname']}; {m['nproc']} CPUs ({m['cpu_model']}), "
                 f"{m['mem_total_mib']} MiB; Python {m['python']}")
    lines.append(f"- load average (1/5/15 min): start {prov['loadavg_start']}, "
                 f"end {prov.get('loadavg_end', '?')}")
    return "\n".join(lines)
