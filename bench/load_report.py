"""bench/load.py's results: one row per step, the markdown table, the headline
against issue 15's targets, the chart and the py-spy profile summary."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Above this offered agent load (offered calls/s x agent busy seconds per call / agents)
# a failing baseline step may be the agents' limit, not Asterisk's: callers queue
# for an agent. Below it, with hundreds of agents, the queue wait is negligible.
AGENT_BOUND_UTILISATION = 0.7


@dataclass
class StepResult:
    system: str
    rate: float
    calls: int
    wall_seconds: float
    sipp_failed: int
    no_bye: int
    no_agent: int
    failed: int
    answer_ms_p50: float | None
    answer_ms_p95: float | None
    digit_to_agent_ms_p50: float | None
    digit_to_agent_ms_p95: float | None
    digit_to_agent_ms_max: float | None
    asterisk_cpu_ms_per_call: float
    app_cpu_ms_per_call: float | None
    archiver_cpu_ms_per_call: float | None
    loop_lag_p99_ms_max: float | None
    redis_cmds_per_call: float
    left_channels: int
    left_bridges: int
    agent_utilisation: float = 0.0
    machine_busy_pct: float | None = None
    others_cores: float | None = None
    clean: bool = False
    notes: list[str] = field(default_factory=list)


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p * (len(xs) - 1)))], 1)


COLS = [
    ("system", "system"), ("rate", "calls/s"), ("calls", "calls"), ("failed", "failed"),
    ("answer_ms_p50", "answer p50 ms"), ("answer_ms_p95", "answer p95 ms"),
    ("digit_to_agent_ms_p50", "key→agent p50 ms"), ("digit_to_agent_ms_p95", "key→agent p95 ms"),
    ("asterisk_cpu_ms_per_call", "Asterisk CPU ms/call"),
    ("app_cpu_ms_per_call", "app CPU ms/call"),
    ("loop_lag_p99_ms_max", "loop lag p99 ms (max)"), ("redis_cmds_per_call", "Redis cmds/call"),
    ("agent_utilisation", "agent load"), ("machine_busy_pct", "machine busy %"),
    ("others_cores", "others' CPUs"),
    ("left_channels", "left ch"), ("left_bridges", "left br"), ("clean", "clean"),
]


def cell(v: Any) -> str:
    if v is None:
        return ""
    if v is True:
        return "yes"
    if v is False:
        return "NO"
    return f"{v:g}" if isinstance(v, float) else str(v)


def table(results: list[StepResult]) -> str:
    out = ["| " + " | ".join(h for _, h in COLS) + " |",
           "| " + " | ".join("---" if k == "system" else "---:" for k, _ in COLS) + " |"]
    for r in results:
        row = asdict(r)
        out.append("| " + " | ".join(cell(row[k]) for k, _ in COLS) + " |")
    return "\n".join(out)


def headline(results: list[StepResult]) -> dict[str, Any]:
    """Clean rates, their ratio and what limited the baseline, and issue 15's targets."""
    def steps(system: str) -> list[StepResult]:
        return sorted((x for x in results if x.system == system), key=lambda x: x.rate)

    def best(system: str) -> float | None:
        """Highest rate with this step and every lower step clean."""
        top = None
        for r in steps(system):
            if not r.clean:
                break
            top = r.rate
        return top

    def at(rate: float | None, key: str) -> Any:
        return next((getattr(r, key) for r in steps("app") if r.rate == rate), None)

    b, a = best("baseline"), best("app")
    first_dirty = next((r for r in steps("baseline") if not r.clean), None)
    if not steps("baseline"):
        limit, kind = "not run", "none: no baseline step"
    elif first_dirty is None:
        limit, kind = "not reached", "upper bound: the baseline was clean at every rate run"
    elif first_dirty.agent_utilisation > AGENT_BOUND_UTILISATION:
        limit, kind = "agents", "INVALID: the baseline ran out of agents, not of Asterisk"
    else:
        limit, kind = "asterisk", "measured"
    ratio = round(a / b, 2) if a and b else None
    twice = at(2 * a, "failed") if a else None
    cpu15, cmds15 = at(15, "app_cpu_ms_per_call"), at(15, "redis_cmds_per_call")
    lag = at(a, "loop_lag_p99_ms_max")

    def verdict(value: float | None, ok: bool) -> str:
        return "not measured" if value is None else ("met" if ok else "MISSED")

    return {
        "baseline_clean_rate": b, "app_clean_rate": a, "ratio": ratio, "ratio_kind": kind,
        "baseline_limited_by": limit,
        "baseline_first_dirty_agent_load": first_dirty.agent_utilisation if first_dirty else None,
        "app_cpu_ms_per_call_at_15": cpu15, "redis_cmds_per_call_at_15": cmds15,
        "loop_lag_p99_ms_at_app_clean_rate": lag, "failed_at_twice_app_clean_rate": twice,
        "targets (issue 15)": {
            "app CPU ms/call at 15 calls/s <= 10 (stretch 4)":
                verdict(cpu15, cpu15 is not None and cpu15 <= 10),
            "ratio >= 0.8 with an Asterisk-bound baseline":
                verdict(ratio if limit == "asterisk" else None,
                        ratio is not None and ratio >= 0.8),
            "Redis cmds/call <= 40 (at 15 calls/s)":
                verdict(cmds15, cmds15 is not None and cmds15 <= 40),
            "loop lag p99 <= 5 ms at the app's clean rate":
                verdict(lag, lag is not None and lag <= 5),
            "0 failed at twice the app's clean rate": verdict(twice, twice == 0),
        },
    }


def chart(results: list[StepResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for system, style in (("baseline", "o-"), ("app", "s-")):
        rs = sorted((r for r in results if r.system == system), key=lambda r: r.rate)
        x = [r.rate for r in rs]
        axes[0].plot(x, [r.failed / r.calls * 100 for r in rs], style, label=system)
        axes[1].plot(x, [r.digit_to_agent_ms_p95 or float("nan") for r in rs], style,
                     label=f"{system} p95")
        axes[1].plot(x, [r.digit_to_agent_ms_p50 or float("nan") for r in rs], style,
                     alpha=0.4, label=f"{system} p50")
        axes[2].plot(x, [r.asterisk_cpu_ms_per_call for r in rs], style,
                     label=f"Asterisk ({system})")
        if system == "app":
            axes[2].plot(x, [r.app_cpu_ms_per_call or float("nan") for r in rs], "^--",
                         label="app process")
    axes[0].set_title("failed calls (%)")
    axes[1].set_title("last key → agent INVITE (ms)")
    axes[1].set_yscale("log")
    axes[2].set_title("CPU per call (ms)")
    for ax in axes:
        ax.set_xlabel("offered calls/s")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Hotline 109 load: plain Asterisk + app_queue vs the app (same Asterisk, "
                 "alternating steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def profile_top(path: Path, n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's raw (collapsed) stacks: share of samples per function, by self time
    and inclusive (any frame in the stack), the app's own functions for the latter."""
    selfs: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";")]
        if frames:
            selfs[frames[-1]] = selfs.get(frames[-1], 0) + k
        for f in set(frames):
            if "ari_app/" in f or "redis/" in f or "httpx" in f or "asyncio/" in f:
                incl[f] = incl.get(f, 0) + k
    if not total:
        return {}

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, round(c / total, 3)) for f, c in sorted(d.items(), key=lambda x: -x[1])[:n]]

    return {"self": top(selfs), "inclusive": top(incl), "samples": [("total", float(total))]}


def markdown(doc: dict[str, Any], results: list[StepResult], prov_md: str) -> str:
    p, head = doc["params"], doc["headline"]
    lines = [f"- {k}: {cell(v)}" for k, v in head.items() if not isinstance(v, dict)]
    lines += [f"- target {k}: **{v}**" for k, v in head["targets (issue 15)"].items()]
    return "\n".join([
        f"# Load bench `{p['name']}` ({doc['provenance']['started_utc']})", "", prov_md, "",
        f"Agents {p['agents']} (ring {p['ring_ms']} ms + talk {p['talk_ms']} ms: they serve "
        f"about {doc['agent_capacity_calls_s']:g} calls/s); offered {p['seconds']:g} s per step "
        f"(at least {p['min_calls']} calls); systems {p['systems']}; "
        f"{p['warmup_calls']} unmeasured warm-up calls before each system's first step.", "",
        table(results), "", "Headline:", "", *lines, "",
        "Idle (no call, after each system's warm-up): " + json.dumps(doc["idle"]), ""])
