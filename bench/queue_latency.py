#!/usr/bin/env python3
"""From an archive: how soon a waiting caller is offered to an agent who frees up.

For each agent, take consecutive answered calls; the agent is free again at the
end of the first call plus its wrap-up. When the next call's caller was already
waiting at that moment, the gap to that call's offer is the dispatch latency
(what the issue calls "agent free to next offer"). Prints median and worst.

    bench/queue_latency.py .stack/test100/archive.sqlite3
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import statistics
import sys
from datetime import datetime


def ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def gaps(db: str) -> list[float]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("SELECT record FROM calls").fetchall() if _has_record(con) else \
        con.execute("SELECT offers, queue, ended_at, wrapup_seconds FROM calls").fetchall()
    calls = []
    for row in rows:
        if len(row) == 1:
            rec = json.loads(row[0])
            offers, queue, ended, wrapup = rec["offers"], rec["queue"], rec["ended_at"], \
                rec.get("wrapup_seconds")
        else:
            offers, queue = json.loads(row[0] or "[]"), json.loads(row[1] or "[]")
            ended, wrapup = row[2], row[3]
        for o in offers:
            calls.append({"agent": o["agent"], "at": ts(o["at"]), "result": o["result"],
                          "ended": ts(ended) if ended else None, "wrapup": wrapup or 0.0,
                          "joined": min((ts(q["joined_at"]) for q in queue), default=None)})
    out: list[float] = []
    by_agent: dict[str, list[dict]] = {}
    for c in calls:
        by_agent.setdefault(c["agent"], []).append(c)
    for offers in by_agent.values():
        offers.sort(key=lambda c: c["at"])
        for prev, nxt in itertools.pairwise(offers):
            if prev["result"] != "answered" or prev["ended"] is None or nxt["joined"] is None:
                continue
            free_at = prev["ended"] + prev["wrapup"]
            if nxt["joined"] < free_at <= nxt["at"]:
                out.append(nxt["at"] - free_at)
    return out


def _has_record(con: sqlite3.Connection) -> bool:
    cols = {r[1] for r in con.execute("PRAGMA table_info(calls)")}
    return "record" in cols


def main() -> int:
    for db in sys.argv[1:]:
        g = sorted(gaps(db))
        if not g:
            print(f"{db}: no agent freed up while a caller was waiting")
            continue
        print(f"{db}: {len(g)} hand-offs; agent free -> next offer: median "
              f"{statistics.median(g) * 1000:.0f} ms, worst {g[-1] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
