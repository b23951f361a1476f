#!/usr/bin/env python3
"""Benchmark AgentPool.take against a real redis-server it starts on a free loopback port.

Two rosters: the shipped 300 agents at 6 sites, and the same mix scaled to
30,000 agents at 600 sites. Eight takers run concurrently, each on its own
connection (as eight app instances would); every successful take is released
at once on another connection so the pool does not drain. The baseline in
the same run is a bare PING and a trivial EVALSHA under the same
concurrency, so the script's own cost can be read off.

    .venv/bin/python bench/agent_select.py [--takes 4000] [--save agent-select]

--save NAME writes bench/results/<UTC date>-NAME.md: the table under the run's
provenance (commit, machine, load average, command).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import provenance  # noqa: E402  (bench/provenance.py: this script's directory is on sys.path)
from redis.asyncio import Redis  # noqa: E402

from ari_app.agents import scripts  # noqa: E402
from ari_app.agents.pool import AgentPool  # noqa: E402
from ari_app.config import load_config  # noqa: E402
from ari_app.config.models import Agent, HotlineConfig  # noqa: E402
from ari_app.config.queue import QueueSettings  # noqa: E402
from ari_app.queue.routing import steps_for  # noqa: E402

TAKERS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(d: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--logfile", str(d / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("redis-server did not start")


def scaled(agents: list[Agent], n: int, per_site: int) -> list[Agent]:
    out = []
    for i in range(n):
        a = agents[i % len(agents)]
        out.append(a.model_copy(update={
            "id": f"x{i:05d}", "endpoint": f"agent-x{i:05d}", "site": f"s{i // per_site:03d}",
        }))
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def _proc(url: str, kind: str, agents: list[Agent], prefix: str, work: list[Any]) -> Any:
    """One taker process (one app instance): its own loop, its own connection."""
    return asyncio.run(_proc_async(url, kind, agents, prefix, work))


async def _proc_async(url: str, kind: str, agents: list[Agent], prefix: str,
                      work: list[Any]) -> tuple[list[float], int, int]:
    c = Redis.from_url(url)
    await c.ping()
    pool = AgentPool(c, agents, key_prefix=prefix)
    sha = await c.script_load("return 1")
    trips = 0
    orig = c.execute_command

    async def counted(*a: Any, **kw: Any) -> Any:
        nonlocal trips
        trips += 1
        return await orig(*a, **kw)

    lat: list[float] = []
    hits = 0
    for j, steps in enumerate(work):
        if kind == "ping":
            t = time.perf_counter()
            await c.ping()
        elif kind == "evalsha":
            t = time.perf_counter()
            await c.evalsha(sha, 0)  # type: ignore[misc]
        else:
            c.execute_command = counted  # type: ignore[method-assign]
            t = time.perf_counter()
            offer = await pool.take(steps, f"call-{id(work)}-{j}")
            dt = time.perf_counter() - t
            c.execute_command = orig  # type: ignore[method-assign]
            lat.append(dt * 1000)
            if offer:  # released at once, outside the timing, like a very short call
                hits += 1
                await c.eval(scripts.RELEASE, 1, pool._keys[0], pool.base, offer.agent.id, 0, "")
            continue
        lat.append((time.perf_counter() - t) * 1000)
    await c.aclose()
    return lat, trips, hits


async def run_takers(url: str, kind: str, agents: list[Agent], prefix: str,
                     work: list[Any]) -> tuple[list[float], int, int]:
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(TAKERS) as ex:
        parts = await asyncio.gather(*(
            loop.run_in_executor(ex, _proc, url, kind, agents, prefix, work[k::TAKERS])
            for k in range(TAKERS)
        ))
    return [x for p in parts for x in p[0]], sum(p[1] for p in parts), sum(p[2] for p in parts)


async def server_usec_per_take(admin: Redis) -> float:
    """Mean server-side run time of the take script: takers release with EVAL, so
    EVALSHA in the command stats is the take alone."""
    stats = await admin.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", float("nan")))


async def scenario(url: str, cfg: HotlineConfig, agents: list[Agent], sites: int,
                   takes: int) -> dict[str, Any]:
    prefix = f"bench{len(agents)}"
    admin = Redis.from_url(url)
    setup = AgentPool(admin, agents, key_prefix=prefix)
    t0 = time.perf_counter()
    await setup.sync()
    rng = random.Random(7)
    async with admin.pipeline(transaction=False) as pipe:
        for a in agents:
            await setup._login(keys=setup._keys, args=[setup.base, a.id, "1"], client=pipe)
        await pipe.execute()
    for a in rng.sample(agents, len(agents) // 10):  # some breaks, some phones away
        if rng.random() < 0.5:
            await setup.pause(a.id, "break")
        else:
            await setup.set_reachable(a.id, False)
    setup_s = time.perf_counter() - t0

    settings = QueueSettings()
    site_ids = sorted({a.site for a in agents})
    langs = [lang.code for lang in cfg.languages]
    work = []
    for _ in range(takes):
        e = rng.choice(cfg.entities).id
        lang = rng.choices(langs, [40, 40, 4, 4, 3, 3, 2, 2, 2][: len(langs)])[0]
        waited = rng.choice([0, 0, 0, 45, 120])
        s = settings
        if rng.random() < 0.5:
            s = settings.model_copy(update={"site_preference": rng.choice(site_ids)})
        work.append(steps_for(cfg, e, lang, waited, s))

    await run_takers(url, "take", agents, prefix, work[: TAKERS * 20])  # warm-up
    await admin.config_resetstat()
    lat, trips, hits = await run_takers(url, "take", agents, prefix, work)
    srv = await server_usec_per_take(admin)
    await admin.aclose()
    return {
        "agents": len(agents), "sites": sites, "takes": takes, "hit_rate": hits / takes,
        "p50": statistics.median(lat), "p99": pct(lat, 99),
        "srv_ms": srv / 1000,
        "round_trips": trips / takes, "setup_s": setup_s,
    }


async def baselines(url: str, n: int) -> dict[str, tuple[float, float]]:
    out = {}
    for kind, name in (("ping", "PING"), ("evalsha", "EVALSHA `return 1`")):
        lat, _, _ = await run_takers(url, kind, [], "x", [None] * n)
        out[name] = (statistics.median(lat), pct(lat, 99))
    return out


async def main_async(takes: int) -> str:
    cfg = load_config(ROOT / "config" / "hotline.yaml")
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_redis(Path(d))
        try:
            base = await baselines(url, takes)
            small = await scenario(url, cfg, list(cfg.agents), len(cfg.sites), takes)
            big = await scenario(url, cfg, scaled(list(cfg.agents), 30_000, 50), 600, takes)
        finally:
            proc.terminate()
            proc.wait(5)
    ver = subprocess.check_output(["redis-server", "--version"], text=True)  # noqa: ASYNC221
    lines = [
        "## Agent selection",
        "",
        f"`bench/agent_select.py`, {time.strftime('%Y-%m-%d')}: `AgentPool.take` against a real"
        f" redis-server ({ver.split()[2]}) on loopback, {TAKERS} concurrent takers each on its"
        f" own process and connection (as eight app instances), {takes} takes per roster;"
        " 10% of agents paused or unreachable; routing steps 0-2 mixed, half the takes with"
        " a site preference;"
        " every take released at once (untimed) so the pool stays staffed. Server"
        " ms / call: the take script's mean run time inside Redis (INFO commandstats);"
        f" machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| case | p50 ms | p99 ms | server ms / call | round trips |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (p50, p99) in base.items():
        lines.append(f"| baseline: {name} | {p50:.3f} | {p99:.3f} | | 1 |")
    for r in (small, big):
        lines.append(
            f"| take, {r['agents']:,} agents / {r['sites']} sites (hit rate"
            f" {r['hit_rate']:.0%}) | {r['p50']:.3f} | {r['p99']:.3f} | {r['srv_ms']:.3f} |"
            f" {r['round_trips']:.2f} |"
        )
    lines += [
        "",
        f"Targets: p99 < 2 ms at 300 agents ({'met' if small['p99'] < 2 else 'MISSED'}),"
        f" < 5 ms at 30,000 ({'met' if big['p99'] < 5 else 'MISSED'}). Roster load"
        f" (profiles + logins, pipelined): {small['setup_s']:.2f} s for 300,"
        f" {big['setup_s']:.2f} s for 30,000.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--takes", type=int, default=4000)
    ap.add_argument("--save", metavar="NAME",
                    help="write bench/results/<UTC date>-NAME.md (committed results)")
    args = ap.parse_args()
    prov = provenance.start(vars(args), {"tree": ROOT})
    report = asyncio.run(main_async(args.takes))
    print(report)
    if args.save:
        _, md = provenance.result_paths(args.save)
        md.write_text(provenance.markdown(provenance.finish(prov)) + "\n\n" + report)
        print(f"wrote {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
