#!/usr/bin/env python3
"""Soak: SIPp callers and agents against a real stack at a steady rate (not part of CI).

Starts its own stack (Asterisk, Redis, app, archiver; name `soak`, port offset
900 unless --offset), registers and logs in agents whose phones answer, then
runs two SIPp callers side by side for --duration seconds at --rate calls/s
in total: half dial 1091 (queue, an agent answers, the caller hangs up after
a few seconds), half dial 109 (language and entity menus, hang up in the
menu). Every second it samples the app's RSS (/proc/<pid>/status VmRSS), the
channels and bridges Asterisk holds (ARI) and the calls checkpointed in
Redis. At the end it reports failed SIPp calls, records per outcome, calls
without a record, leaked channels/bridges/checkpoints, app error lines and
the RSS curve, and the RSS slope after warm-up (--warmup seconds of calling):
MiB per 10,000 calls, by a least-squares line through the samples.

    .venv/bin/python bench/soak.py --duration 120 --rate 5 [--agents 24] [--json out.json]
    .venv/bin/python bench/soak.py --duration 1800 --rate 10 --agents 60 --save soak-30min

--save NAME writes bench/results/<UTC date>-NAME.{json,md} with the run's
provenance (commit, machine, load average). --tracemalloc FRAMES starts the app
under tracemalloc and takes a snapshot (after a full gc) at the end of the
warm-up and once the calls have drained; the report lists the allocation sites
and tracebacks that grew most between the two. Tracing slows the app (about
twice the CPU once tracing starts): use it to find what grows, not to measure
the slope.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import provenance  # noqa: E402

from scripts.stack import Stack, ensure_rootfs  # noqa: E402
from tests.support.sipp import (  # noqa: E402
    SIPP_DIR,
    AgentPhone,
    expand_steps,
    free_port_pair,
    free_udp_port,
)
from tests.support.stackfix import write_test_config  # noqa: E402

QUEUE_STEPS = "wait:400,dtmf:2,wait:5000,hangup"  # 1091: English, PHCC, talk until ~5.6 s
MENU_STEPS = "wait:400,dtmf:2,wait:600,dtmf:1,wait:1500,hangup"  # 109: en, health, leave


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# Loaded into the app (and only the app: `hotline ... run`) through PYTHONPATH when
# --tracemalloc is given. The first SIGUSR2 (end of the warm-up) starts tracing, so
# start-up and warm-up run at full speed and only blocks allocated after the warm-up
# are traced; each SIGUSR2 dumps a snapshot after a full collection, so garbage
# waiting for the cycle collector is not counted as growth.
SITECUSTOMIZE = """
import os, sys
if os.environ.get("SOAK_SNAPDIR") and "run" in sys.argv[1:]:
    import collections, gc, json, signal, tracemalloc
    _n = [0]
    def _objects(out):
        counts = collections.Counter()
        big = []
        for o in gc.get_objects():
            t = type(o)
            counts[str(getattr(t, "__module__", "?")) + "." + str(t.__qualname__)] += 1
            if t in (dict, list, set, collections.deque) and len(o) > 300:
                owners = [type(r).__qualname__ for r in gc.get_referrers(o)[:4]]
                sample = repr(list(o)[:3])[:160]
                big.append({"type": t.__name__, "len": len(o), "id": id(o),
                            "owners": owners, "sample": sample})
        with open(out, "w") as f:
            json.dump({"counts": counts, "big": big}, f)
    def _dump(_sig, _frame):
        # runs between two bytecodes of whatever the app was doing: it must not raise
        try:
            _snap()
        except Exception as e:
            open(os.path.join(os.environ["SOAK_SNAPDIR"], "error"), "w").write(repr(e))
    def _snap():
        frames = int(os.environ.get("SOAK_TRACEMALLOC") or 0)
        if frames and not tracemalloc.is_tracing():
            tracemalloc.start(frames)
        gc.collect()
        _n[0] += 1
        out = os.path.join(os.environ["SOAK_SNAPDIR"], "snap-%d" % _n[0])
        _objects(out + ".objects.json")
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(out + ".pickle")
        open(out + ".done", "w").close()
    signal.signal(signal.SIGUSR2, _dump)
"""


def snapshot(pid: int, snapdir: Path, n: int, timeout: float = 120.0) -> Path:
    """Ask the app for its n-th tracemalloc snapshot and wait until it is written."""
    import signal

    out = snapdir / f"snap-{n}.done"
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while not out.exists():
        if (snapdir / "error").exists():
            raise RuntimeError(f"the app's snapshot failed: {(snapdir / 'error').read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the app wrote no snapshot {out} in {timeout:.0f} s")
        time.sleep(0.2)
    return snapdir / f"snap-{n}"


def growth(first: Path, last: Path, top: int = 15) -> dict[str, Any]:
    """What grew between two snapshots: objects by type, the containers holding
    over 300 items in the last, and (if traced) allocations by line and by traceback."""
    a = json.loads(first.with_suffix(".objects.json").read_text())
    b = json.loads(last.with_suffix(".objects.json").read_text())
    types = sorted(((n - a["counts"].get(t, 0), t) for t, n in b["counts"].items()),
                   reverse=True)[:top]
    before = {c["id"]: c["len"] for c in a["big"]}
    big = sorted(b["big"], key=lambda c: c["len"] - before.get(c["id"], 0), reverse=True)
    out: dict[str, Any] = {
        "objects_grown_by_type": [{"type": t, "grew": d} for d, t in types],
        "big_containers": [{**c, "grew": c["len"] - before.get(c["id"], 0)}
                           for c in big[:top]]}
    if not last.with_suffix(".pickle").exists():
        return out
    import tracemalloc

    flt = [tracemalloc.Filter(False, tracemalloc.__file__),
           tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    ta = tracemalloc.Snapshot.load(str(first.with_suffix(".pickle"))).filter_traces(flt)
    tb = tracemalloc.Snapshot.load(str(last.with_suffix(".pickle"))).filter_traces(flt)

    def rows(kind: str) -> list[dict[str, Any]]:
        rs = []
        for st in tb.compare_to(ta, kind)[:top]:
            frames = [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}"
                      for f in st.traceback]
            rs.append({"size_diff_kib": round(st.size_diff / 1024, 1),
                       "count_diff": st.count_diff, "size_kib": round(st.size / 1024, 1),
                       "where": frames[0] if kind == "lineno" else frames[-12:]})
        return rs

    total = sum(t.size for t in tb.traces) - sum(t.size for t in ta.traces)
    return {**out, "traced_growth_kib": round(total / 1024, 1), "by_line": rows("lineno"),
            "by_traceback": rows("traceback")[:8]}


def slope(samples: list[dict[str, Any]], t_from: float, t_to: float) -> float | None:
    """KiB per second of RSS, least squares over the samples in [t_from, t_to]."""
    pts = [(s["t"], s["rss_kib"]) for s in samples
           if s["rss_kib"] and t_from <= s["t"] <= t_to]
    if len(pts) < 10:
        return None
    mt = statistics.fmean(t for t, _ in pts)
    mr = statistics.fmean(r for _, r in pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (r - mr) for t, r in pts) / den if den else None


def median_rss(samples: list[dict[str, Any]], t_from: float, t_to: float) -> float | None:
    vals = [s["rss_kib"] for s in samples if s["rss_kib"] and t_from <= s["t"] <= t_to]
    return statistics.median(vals) if vals else None


def callers_csv(path: Path, prefix: str, n: int) -> Path:
    with path.open("w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(n):
            f.write(f"{prefix}{i:06d};\n")
    return path


def caller_scenario(steps: str, workdir: Path) -> Path:
    xml = (SIPP_DIR / "caller.xml").read_text().replace("@STEPS@", expand_steps(steps, workdir))
    xml = xml.replace("[caller]", "[field0]")
    out = workdir / "caller.xml"
    out.write_text(xml)
    return out


def start_callers(stack: Stack, steps: str, number: str, rate: float, total: int,
                  prefix: str) -> tuple[subprocess.Popen[bytes], Path]:
    work = Path(tempfile.mkdtemp(prefix=f"soak-{number}-"))
    scen = caller_scenario(steps, work)
    inf = callers_csv(work / "callers.csv", prefix, total)
    argv = [shutil.which("sipp") or "sipp", f"127.0.0.1:{stack.ports.sip}", "-sf", str(scen),
            "-inf", str(inf), "-s", number, "-r", f"{rate:g}", "-rp", "1000", "-m", str(total),
            "-l", str(max(10, int(rate * 30))), "-i", "127.0.0.1", "-p", str(free_udp_port()),
            "-mi", "127.0.0.1", "-mp", str(free_port_pair()), "-nostdin", "-timeout_error",
            "-recv_timeout", "60000", "-deadcall_wait", "0", "-trace_stat", "-stf",
            str(work / "stats.csv"), "-fd", "5", "-trace_err", "-error_file",
            str(work / "errors.log")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=work)
    return proc, work


def sipp_totals(work: Path) -> dict[str, int]:
    rows = list(csv.reader((work / "stats.csv").open(), delimiter=";")) \
        if (work / "stats.csv").exists() else []
    if len(rows) < 2:
        return {}
    head, last = rows[0], rows[-1]
    want = {"TotalCallCreated": "created", "SuccessfulCall(C)": "successful",
            "FailedCall(C)": "failed"}
    return {want[h]: int(last[i]) for i, h in enumerate(head) if h in want and last[i].isdigit()}


class Sampler(threading.Thread):
    def __init__(self, stack: Stack, pid: int) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.pid = pid
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import redis

        r = redis.Redis(port=self.stack.ports.redis)
        t0 = time.monotonic()
        while not self.stop.is_set():
            s: dict[str, Any] = {"t": round(time.monotonic() - t0, 1), "rss_kib": rss_kib(self.pid)}
            try:
                left = self.stack.leftovers()
                s["channels"], s["bridges"] = len(left["channels"]), len(left["bridges"])
            except OSError:
                s["channels"] = s["bridges"] = None
            try:
                s["active"] = r.scard("{hotline}:calls:active")
            except redis.RedisError:
                s["active"] = None
            self.samples.append(s)
            self.stop.wait(1.0)
        r.close()


def login_agents(stack: Stack, cfg: Any, ids: list[str]) -> None:
    import asyncio

    import redis.asyncio as aioredis

    from ari_app.agents.pool import AgentPool

    async def go() -> None:
        r = aioredis.from_url(f"redis://127.0.0.1:{stack.ports.redis}/0")
        pool = AgentPool(r, cfg.agents)
        for a in ids:
            await pool.login(a)
        await r.aclose()

    asyncio.run(go())


def records(stack: Stack, prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    import redis

    from ari_app.records.events import records_in_stream

    r = redis.Redis(port=stack.ports.redis)
    try:
        found = records_in_stream(f for _id, f in r.xrange("{hotline}:records"))
    finally:
        r.close()
    return [rec for rec in found if str(rec.get("caller", "")).startswith(prefixes)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=120, help="seconds of calling")
    ap.add_argument("--rate", type=float, default=5, help="new calls per second, in total")
    ap.add_argument("--agents", type=int, default=24, help="agents with answering phones")
    ap.add_argument("--offset", type=int, default=int(os.environ.get("SOAK_OFFSET", "900")))
    ap.add_argument("--name", default="soak")
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--warmup", type=float, default=120,
                    help="seconds of calling before the RSS slope (and first snapshot)")
    ap.add_argument("--objects", action="store_true",
                    help="count the app's objects by type at the end of the warm-up and "
                         "at the end (cheap: no cost while calls run)")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                    help="as --objects, and trace the app's allocations after the warm-up, "
                         "FRAMES deep (0: off; slows the app)")
    ap.add_argument("--save", metavar="NAME",
                    help="write bench/results/<UTC date>-NAME.{json,md}")
    args = ap.parse_args(argv)
    if args.warmup >= args.duration:
        ap.error(f"--warmup ({args.warmup:g} s) must be shorter than --duration "
                 f"({args.duration:g} s)")
    prov = provenance.start({k: (str(v) if isinstance(v, Path) else v)
                             for k, v in vars(args).items()}, {"soak": ROOT})

    from ari_app.config.loader import load_config

    cfg_path = write_test_config(Path(tempfile.mkdtemp(prefix="soak-cfg-")) / "hotline.yaml")
    stack = Stack(name=args.name, offset=args.offset, config=cfg_path)
    ensure_rootfs(stack.rootfs)
    stack.install_sounds()
    snapdir: Path | None = None
    extra_env: dict[str, str] = {}
    if args.tracemalloc or args.objects:
        snapdir = Path(tempfile.mkdtemp(prefix="soak-snap-"))
        (snapdir / "sitecustomize.py").write_text(SITECUSTOMIZE)
        extra_env = {"SOAK_TRACEMALLOC": str(args.tracemalloc), "SOAK_SNAPDIR": str(snapdir),
                     "PYTHONPATH": os.pathsep.join(
                         p for p in (str(snapdir), os.environ.get("PYTHONPATH")) if p)}
    phones: list[AgentPhone] = []
    callers: list[subprocess.Popen[bytes]] = []
    sampler: Sampler | None = None
    try:
        stack.up(app=False)
        stack.start_app(extra_env=extra_env)
        stack.start_archiver()
        cfg = load_config(stack.app_config)
        chosen = [a for a in cfg.agents if "en" in a.languages and
                  ({"phcc", "health"} & set(a.skills))][: args.agents]
        total = int(args.duration * args.rate)
        for a in chosen:
            pw = (stack.dir / "secrets/agents" / f"{a.id}.secret").read_text().strip()
            ph = AgentPhone(stack.ports.sip, a.endpoint, pw, mode="answer", calls=total + 10)
            ph.register()
            phones.append(ph)
        time.sleep(2)
        login_agents(stack, cfg, [a.id for a in chosen])
        app_pid = stack._pid("app")
        assert app_pid is not None
        log_start = stack.app_log.stat().st_size
        sampler = Sampler(stack, app_pid)
        sampler.start()
        t0 = time.monotonic()
        half = max(1, total // 2)
        q_proc, q_work = start_callers(stack, QUEUE_STEPS, "1091", args.rate / 2, half, "97460")
        m_proc, m_work = start_callers(stack, MENU_STEPS, "109", args.rate / 2, half, "97461")
        callers += [q_proc, m_proc]
        snaps: list[Path] = []
        warm_at: float | None = None
        while q_proc.poll() is None or m_proc.poll() is None:
            if time.monotonic() - t0 > args.duration + 180:
                raise RuntimeError("the SIPp callers did not finish in time")
            if warm_at is None and time.monotonic() - t0 >= args.warmup:
                warm_at = round(time.monotonic() - t0, 1)
                if snapdir is not None:
                    snaps.append(snapshot(app_pid, snapdir, 1))
            time.sleep(0.5)
        ran = time.monotonic() - t0
        time.sleep(10)  # let the last records land and channels go
        if snapdir is not None:
            snaps.append(snapshot(app_pid, snapdir, 2))
        sampler.stop.set()
        sampler.join(5)
        left = stack.leftovers()
        import redis

        r = redis.Redis(port=stack.ports.redis)
        checkpoints = r.scard("{hotline}:calls:active")
        r.close()
        recs = records(stack, ("97460", "97461"))
        outcomes: dict[str, int] = {}
        for rec in recs:
            outcomes[str(rec.get("outcome"))] = outcomes.get(str(rec.get("outcome")), 0) + 1
        dupes = len(recs) - len({rec["call_id"] for rec in recs})
        callers_seen = {rec["caller"] for rec in recs}
        errors = 0
        for line in stack.app_log.read_bytes()[log_start:].decode(errors="replace").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                errors += 1
                continue
            if obj.get("level") in ("error", "critical") or obj.get("event") == "call.crashed":
                errors += 1
        rss = [s["rss_kib"] for s in sampler.samples if s["rss_kib"]]
        chans = [s["channels"] for s in sampler.samples if s["channels"] is not None]
        q_tot, m_tot = sipp_totals(q_work), sipp_totals(m_work)
        placed = q_tot.get("created", 0) + m_tot.get("created", 0)
        calls_per_s = placed / ran if ran else 0.0
        warm = warm_at if warm_at is not None else args.warmup
        kib_per_s = slope(sampler.samples, warm, ran)
        rss_warm, rss_end = median_rss(sampler.samples, warm - 15, warm + 15), \
            median_rss(sampler.samples, ran - 30, ran)
        memory = {
            "warmup_s": warm, "calls_after_warmup": round((ran - warm) * calls_per_s),
            "rss_warm_kib": rss_warm, "rss_end_kib": rss_end,
            "slope_kib_per_s": round(kib_per_s, 3) if kib_per_s is not None else None,
            "slope_mib_per_10k_calls": round(kib_per_s / calls_per_s * 10000 / 1024, 3)
            if kib_per_s is not None and calls_per_s else None,
            "tracemalloc_frames": args.tracemalloc,
        }
        report = {
            "duration_s": round(ran, 1), "rate_per_s": args.rate, "agents": len(chosen),
            "calls_placed": placed,
            "sipp_failed": q_tot.get("failed", 0) + m_tot.get("failed", 0),
            "sipp_successful": q_tot.get("successful", 0) + m_tot.get("successful", 0),
            "records": len(recs), "callers_without_record":
                q_tot.get("created", 0) + m_tot.get("created", 0) - len(callers_seen),
            "duplicate_records": dupes, "outcomes": outcomes,
            "leaked_channels": len(left["channels"]), "leaked_bridges": len(left["bridges"]),
            "leaked_checkpoints": checkpoints, "app_error_lines": errors,
            "peak_channels": max(chans) if chans else None,
            "rss_kib": {"first": rss[0] if rss else None, "max": max(rss) if rss else None,
                        "last": rss[-1] if rss else None,
                        "median": int(statistics.median(rss)) if rss else None},
            "memory": memory,
            "rss_curve_kib": [(s["t"], s["rss_kib"]) for s in sampler.samples][::10],
            "sipp_workdirs": [str(q_work), str(m_work)],
        }
        if len(snaps) == 2:
            report["growth"] = growth(*snaps)
        print(json.dumps({k: v for k, v in report.items() if k != "rss_curve_kib"}, indent=2))
        print("RSS over time (s, KiB):", report["rss_curve_kib"])
        if args.json:
            args.json.write_text(json.dumps({**report, "samples": sampler.samples}, indent=1))
        if args.save:
            save(args.save, provenance.finish(prov), report)
        bad = report["sipp_failed"] or report["leaked_channels"] or report["leaked_bridges"] \
            or report["leaked_checkpoints"] or report["callers_without_record"] or dupes
        return 1 if bad else 0
    finally:
        # an interrupted run's callers would go on dialling the next run's stack
        for proc in callers:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        if sampler is not None:
            sampler.stop.set()
        for ph in phones:
            ph.stop()
        if not args.keep:
            stack.down()


def save(name: str, prov: dict[str, Any], report: dict[str, Any]) -> None:
    jpath, mpath = provenance.result_paths(name)
    jpath.write_text(json.dumps({"provenance": prov, **report}, indent=1) + "\n")
    m = report["memory"]
    lines = [f"# Soak: {name}", "", provenance.markdown(prov), "",
             f"{report['calls_placed']} calls in {report['duration_s']} s "
             f"({report['rate_per_s']:g} calls/s asked, {report['agents']} agents); "
             f"SIPp failed {report['sipp_failed']}, callers without a record "
             f"{report['callers_without_record']}, duplicate records "
             f"{report['duplicate_records']}; left behind: {report['leaked_channels']} "
             f"channels, {report['leaked_bridges']} bridges, {report['leaked_checkpoints']} "
             f"checkpoints; app error lines {report['app_error_lines']}.", "",
             "| memory | value |", "| --- | ---: |",
             f"| warm-up (s of calling) | {m['warmup_s']} |",
             f"| calls after warm-up | {m['calls_after_warmup']} |",
             f"| RSS at warm-up, median ±15 s (KiB) | {m['rss_warm_kib']} |",
             f"| RSS at the end, median of the last 30 s (KiB) | {m['rss_end_kib']} |",
             f"| RSS slope after warm-up (KiB/s) | {m['slope_kib_per_s']} |",
             f"| **RSS slope after warm-up (MiB per 10,000 calls)** | "
             f"**{m['slope_mib_per_10k_calls']}** |",
             f"| tracemalloc frames (0: not traced) | {m['tracemalloc_frames']} |"]
    tm = report.get("growth")
    if tm:
        lines += ["", "Objects grown between the snapshots, by type:", "",
                  "| grew | type |", "| ---: | --- |"]
        lines += [f"| {r['grew']} | `{r['type']}` |" for r in tm["objects_grown_by_type"]]
    if tm and "by_line" in tm:
        lines += ["", f"Traced growth between the snapshots: {tm['traced_growth_kib']} KiB. "
                  "Top allocation sites by growth:", "",
                  "| KiB grown | blocks grown | where |", "| ---: | ---: | --- |"]
        lines += [f"| {r['size_diff_kib']} | {r['count_diff']} | `{r['where']}` |"
                  for r in tm["by_line"]]
    lines += ["", "RSS every 10 s (s, KiB): " + ", ".join(
        f"{t:g}:{r}" for t, r in report["rss_curve_kib"]), ""]
    mpath.write_text("\n".join(lines))
    print(f"wrote {jpath} and {mpath}")


if __name__ == "__main__":
    sys.exit(main())
