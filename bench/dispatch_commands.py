#!/usr/bin/env python3
"""Redis cost of one dispatch round: the per-entity dispatcher (main before
fair dispatch, loaded from git) against the fair dispatcher of this tree.

For each case the same state is built on a fresh redis-server (started here
on a loopback port), one round (`dispatch_all`) runs, and the script counts:
round trips (packets the client sent: a pipeline is one), commands the client
sent, and commands the server ran (INFO commandstats, which also counts the
commands inside Lua scripts). Offers made are listed too, to show both
dispatchers did the same amount of work. A warm-up pass first loads the
scripts, so no NOSCRIPT retry is counted. Cases use the shipped config
(34 entities, 36 agents).

    .venv/bin/python bench/dispatch_commands.py [--base main] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402
from redis.asyncio.connection import Connection  # noqa: E402

from ari_app.agents.pool import AgentPool  # noqa: E402
from ari_app.config import load_config  # noqa: E402
from ari_app.config.models import HotlineConfig  # noqa: E402
from ari_app.queue import dispatch as fair_dispatch  # noqa: E402
from ari_app.queue.dispatch import OfferBox  # noqa: E402
from ari_app.queue.waiting import WaitingQueues  # noqa: E402
from tests.support.redis_server import redis_server  # noqa: E402


def old_module(ref: str) -> types.ModuleType:
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:ari_app/queue/dispatch.py"],
                         check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("old_dispatch", loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    exec(compile(src, f"{ref}:ari_app/queue/dispatch.py", "exec"), mod.__dict__)
    return mod


class Counter:
    def __init__(self) -> None:
        self.packets = 0
        self.commands = 0
        self._orig: Callable[..., Any] | None = None

    def install(self) -> None:
        orig = Connection.send_packed_command
        self._orig = orig
        counter = self

        async def counted(conn: Connection, command: Any, check_health: bool = True) -> None:
            counter.packets += 1
            counter.commands += 1 if isinstance(command, bytes | str) else max(
                1, sum(bytes(c).count(b"\r\n*") + (1 if bytes(c).startswith(b"*") else 0)
                       for c in command))
            await orig(conn, command, check_health)

        Connection.send_packed_command = counted  # type: ignore[method-assign]

    def remove(self) -> None:
        if self._orig is not None:
            Connection.send_packed_command = self._orig  # type: ignore[method-assign]


async def server_calls(r: Redis) -> int:
    stats = await r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


CASES: dict[str, dict[str, int]] = {
    # callers per entity over n entities, agents logged in (and free)
    "10 entities x 5 callers, 3 agents free": {"entities": 10, "per": 5, "free": 3},
    "20 entities x 5 callers, no agent free (a tick while everyone is busy)":
        {"entities": 20, "per": 5, "free": 0},
    "30 entities x 2 callers, 30 agents free": {"entities": 30, "per": 2, "free": 30},
}


async def one(url: str, cfg: HotlineConfig, mod: types.ModuleType, case: dict[str, int],
              prefix: str, counter: Counter) -> dict[str, Any]:
    r = Redis.from_url(url)
    try:
        c = cfg.model_copy(update={"redis": cfg.redis.model_copy(update={"key_prefix": prefix})})
        pool = AgentPool(r, c.agents, key_prefix=prefix)
        await pool.sync()
        for a in c.agents[: case["free"]]:
            await pool.login(a.id, reachable=True)
        waiting = WaitingQueues(r, key_prefix=prefix)
        entities = [e.id for e in c.entities][: case["entities"]]
        box = OfferBox()
        now = time.time()
        n = 0
        for e in entities:
            for _ in range(case["per"]):
                lang = ("ar", "en")[n % 2]
                await waiting.join(e, f"c{n:04d}", lang, arrival=now - 200 + n)
                box.open(f"c{n:04d}")
                n += 1
        d = mod.Dispatcher(c, c.queue, r, pool, waiting, box, instance="bench")
        before = await server_calls(r)
        counter.packets = counter.commands = 0
        t0 = time.perf_counter()
        await d.dispatch_all()
        elapsed = time.perf_counter() - t0
        packets, commands = counter.packets, counter.commands
        after = await server_calls(r)
        return {"round_trips": packets, "client_commands": commands,
                "server_commands": after - before - 1, "offers": d.offers,
                "callers": n, "round_ms": round(elapsed * 1000, 2)}
    finally:
        await r.aclose()


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


async def measure(base: str) -> dict[str, Any]:
    cfg = load_config(ROOT / "config" / "hotline.yaml")
    old = old_module(base)
    counter = Counter()
    counter.install()
    results: dict[str, Any] = {}
    port = 6490 + int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp), port) as url:
        for i, case in enumerate(CASES.values()):  # warm-up: scripts loaded, connections up
            await one(url, cfg, old, case, f"warm-old{i}", counter)
            await one(url, cfg, fair_dispatch, case, f"warm-new{i}", counter)
        for i, (name, case) in enumerate(CASES.items()):
            results[name] = {
                "per_entity (base)": await one(url, cfg, old, case, f"old{i}", counter),
                "fair (this tree)": await one(url, cfg, fair_dispatch, case, f"new{i}", counter),
            }
    counter.remove()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="main")
    ap.add_argument("--out", default=str(ROOT / "bench/results/dispatch_commands.json"))
    args = ap.parse_args()
    load_start = os.getloadavg()
    results = asyncio.run(measure(args.base))
    out = {
        "what": "Redis cost of one Dispatcher.dispatch_all round, per-entity vs fair",
        "base": {"ref": args.base, "commit": git("rev-parse", args.base)},
        "tree": {"commit": git("rev-parse", "HEAD"),
                 "dirty": bool(git("status", "--porcelain", "ari_app"))},
        "host": platform.node(), "uname": " ".join(platform.uname()),
        "cpus": os.cpu_count(), "cpu_model": cpu_model(),
        "command": " ".join([".venv/bin/python", "bench/dispatch_commands.py", *sys.argv[1:]]),
        "load_average_end": os.getloadavg(), "load_average_start": load_start,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": ("round_trips: packets the client sent (a pipeline is one); server_commands: "
                 "INFO commandstats delta, includes commands run inside Lua scripts; "
                 "round_ms is one run on a shared 2-core machine, indicative only; offers go "
                 "to calls of this process (no pub/sub), the same for both"),
        "cases": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["cases"], indent=2))


if __name__ == "__main__":
    main()
