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
the RSS curve.

    .venv/bin/python bench/soak.py --duration 120 --rate 5 [--agents 24] [--json out.json]
    .venv/bin/python bench/soak.py --duration 600 --rate 10 --agents 60   # the long run
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
    args = ap.parse_args(argv)

    from ari_app.config.loader import load_config

    cfg_path = write_test_config(Path(tempfile.mkdtemp(prefix="soak-cfg-")) / "hotline.yaml")
    stack = Stack(name=args.name, offset=args.offset, config=cfg_path)
    ensure_rootfs(stack.rootfs)
    stack.install_sounds()
    stack.up()
    phones: list[AgentPhone] = []
    sampler: Sampler | None = None
    try:
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
        for p in (q_proc, m_proc):
            p.wait(timeout=args.duration + 180)
        ran = time.monotonic() - t0
        time.sleep(10)  # let the last records land and channels go
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
        report = {
            "duration_s": round(ran, 1), "rate_per_s": args.rate, "agents": len(chosen),
            "calls_placed": q_tot.get("created", 0) + m_tot.get("created", 0),
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
            "rss_curve_kib": [(s["t"], s["rss_kib"]) for s in sampler.samples][::10],
            "sipp_workdirs": [str(q_work), str(m_work)],
        }
        print(json.dumps({k: v for k, v in report.items() if k != "rss_curve_kib"}, indent=2))
        print("RSS over time (s, KiB):", report["rss_curve_kib"])
        if args.json:
            args.json.write_text(json.dumps({**report, "samples": sampler.samples}, indent=1))
        bad = report["sipp_failed"] or report["leaked_channels"] or report["leaked_bridges"] \
            or report["leaked_checkpoints"] or report["callers_without_record"] or dupes
        return 1 if bad else 0
    finally:
        if sampler is not None:
            sampler.stop.set()
        for ph in phones:
            ph.stop()
        if not args.keep:
            stack.down()


if __name__ == "__main__":
    sys.exit(main())
