#!/usr/bin/env python3
"""How fast a runtime announcement reaches running app instances, what a call
pays to look one up, and how long `set` takes to render a text.

Against a real redis-server this script starts on a free loopback port:
- propagation: three AnnouncementCache instances (three connections, as three
  app instances), on pub/sub alone (poll 300 s); each change is a 7 s sound
  (112 kB, as a rendered text); time from the start of `store.put` until every
  instance plays the new announcement (file written, copy swapped);
- look-up: `AnnouncementCache.playable` as a call does it;
- render: `AnnouncementService.set` with an English text, then with a text in
  each of the nine languages (real espeak-ng + sox, two at a time).

    .venv/bin/python bench/announce_propagation.py [--changes 30] [--save announce-propagation]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import provenance  # noqa: E402
from agent_select import start_redis  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from ari_app.announcements.cache import AnnouncementCache  # noqa: E402
from ari_app.announcements.model import Announcement  # noqa: E402
from ari_app.announcements.service import AnnouncementService, Change  # noqa: E402
from ari_app.announcements.store import AnnouncementStore  # noqa: E402
from ari_app.config.loader import load_config  # noqa: E402

INSTANCES = 3
TEXT = "Because of a system upgrade, online services are unavailable until tomorrow morning."


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def propagation(url: str, d: Path, changes: int) -> list[float]:
    conns = [Redis.from_url(url) for _ in range(INSTANCES + 1)]
    writer = AnnouncementStore(conns[0], key_prefix="bench")
    caches = [AnnouncementCache(AnnouncementStore(c, key_prefix="bench"), d / f"i{n}",
                                Path("/x"), poll_seconds=300) for n, c in enumerate(conns[1:])]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in caches]
    while (any(c.version < 0 for c in caches) or  # noqa: ASYNC110
           (await conns[0].pubsub_numsub(writer.channel))[0][1] < INSTANCES):
        await asyncio.sleep(0.01)
    out: list[float] = []
    for i in range(changes):
        data = b"RIFF" + i.to_bytes(4, "big") + b"WAVE" + bytes(112_000)
        sha = f"{i:064x}"
        ann = Announcement(scope="global", kind="audio", sounds={"en": sha},
                           seconds={"en": 7.0}, by="bench", at=time.time())
        t0 = time.perf_counter()
        await writer.put(ann, {sha: data}, "bench")
        # polled every 0.5 ms: the figure is at most that much late
        while any((p := c.playable("global", "en")) is None or  # noqa: ASYNC110
                  p.announcement.id != ann.id for c in caches):
            await asyncio.sleep(0.0005)
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    for c in conns:
        await c.aclose()
    return out


def lookup(cache: AnnouncementCache, n: int = 200_000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        cache.playable("global", "en")
        cache.playable("phcc", "ar")
    return (time.perf_counter() - t0) / (2 * n) * 1e6


async def render(url: str, d: Path) -> dict[str, float]:
    cfg = load_config(ROOT / "config" / "hotline.yaml")
    r = Redis.from_url(url)
    svc = AnnouncementService(cfg, AnnouncementStore(r, key_prefix="bench-render"))
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    await svc.set(Change(scope="global", by="bench", source="bench", texts={"en": TEXT}))
    out["one language (en)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    await svc.set(Change(scope="phcc", by="bench", source="bench",
                         texts={lang.code: TEXT for lang in cfg.languages}))
    out[f"{len(cfg.languages)} languages"] = time.perf_counter() - t0
    cache = AnnouncementCache(svc.store, d / "lookup", Path("/x"))
    await cache.refresh()
    out["lookup_us"] = lookup(cache)
    await r.aclose()
    return out


async def main_async(changes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_redis(Path(d))
        try:
            prop = await propagation(url, Path(d), changes)
            ren = await render(url, Path(d))
        finally:
            proc.terminate()
            proc.wait(5)
    return {"propagation_ms": {"n": len(prop), "p50": round(statistics.median(prop), 2),
                               "p95": round(pct(prop, 95), 2), "max": round(max(prop), 2)},
            "lookup_us_per_call": round(ren.pop("lookup_us"), 3),
            "set_seconds": {k: round(v, 2) for k, v in ren.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--changes", type=int, default=30)
    ap.add_argument("--save", metavar="NAME")
    args = ap.parse_args()
    prov = provenance.start({"changes": args.changes, "instances": INSTANCES},
                            {"bench": ROOT})
    res = asyncio.run(main_async(args.changes))
    provenance.finish(prov)
    p, s = res["propagation_ms"], res["set_seconds"]
    md = "\n".join([
        "## Runtime announcements", "", provenance.markdown(prov), "",
        f"- propagation, set to playing on all {INSTANCES} instances (pub/sub only, "
        f"{p['n']} changes of a 112 kB sound): p50 {p['p50']} ms, p95 {p['p95']} ms, "
        f"max {p['max']} ms",
        f"- a call's look-up (`AnnouncementCache.playable`): {res['lookup_us_per_call']} µs, "
        "no Redis",
        *(f"- `set` with a text, {k}: {v} s (espeak-ng + sox, two at a time)"
          for k, v in s.items()), ""])
    print(md)
    if args.save:
        j, m = provenance.result_paths(args.save)
        j.write_text(json.dumps({"provenance": prov, "results": res}, indent=1) + "\n")
        m.write_text(md)
        print(f"saved {j} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
