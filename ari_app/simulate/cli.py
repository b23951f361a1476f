"""`hotline simulate`: a month (or any span) of calls through the queue, on a virtual clock.

    hotline simulate                       # March 2025 as the ministry reported it,
                                           # against the config's roster, all logged in
    hotline simulate --staff-for-asa 11    # agents per language to keep ASA <= 11 s
    hotline simulate --erlang 30,25        # one queue, 30 agents, 25 Erlangs, vs Erlang C
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from ari_app.config.models import HotlineConfig
from ari_app.simulate import erlang
from ari_app.simulate.engine import (
    DEFAULT_LANGUAGE_MIX,
    MARCH_2025_MENU_ONLY,
    MARCH_2025_MIX,
    Demand,
    Result,
    Simulation,
    hourly_load,
    schedule_from_counts,
    split_other,
    sqrt_staffing,
    synthetic_roster,
)


def _mix(text: str | None, default: dict[str, float]) -> dict[str, float]:
    if not text:
        return dict(default)
    out: dict[str, float] = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = float(v)
    return out


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("simulate", help="simulate a month of calls through the queue")
    p.add_argument("--calls", type=int, default=sum(MARCH_2025_MIX.values()),
                   help="calls in the span (default: March 2025, 340,541)")
    p.add_argument("--days", type=int, default=31)
    p.add_argument("--entity-mix", help="entity=count,... (default: March 2025's; 'other' is "
                   "spread over the entities not named)")
    p.add_argument("--menu-only", type=int, default=MARCH_2025_MENU_ONLY,
                   help="of 'other', calls that end in the menu (never queue)")
    p.add_argument("--language-mix", help="code=share,... (default: the assumed mix)")
    p.add_argument("--aht", type=float, default=180.0, help="mean talk seconds")
    p.add_argument("--aht-dist", choices=["lognormal", "exponential"], default="lognormal")
    p.add_argument("--aht-cv", type=float, default=1.0)
    p.add_argument("--wrapup", type=float, help="seconds (default: the config's queue)")
    p.add_argument("--patience", type=float, default=120.0,
                   help="mean seconds a caller waits before hanging up (0: forever)")
    p.add_argument("--ring", type=float, default=0.0)
    p.add_argument("--scale", type=float, default=1.0,
                   help="the config's roster repeated this many times (rounded)")
    p.add_argument("--staff-for-asa", type=float, metavar="SECONDS",
                   help="find agents per language (hourly square-root staffing) for this ASA")
    p.add_argument("--erlang", metavar="AGENTS,ERLANGS",
                   help="one queue, one skill, exponential handle, no abandonment: vs Erlang C")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_simulate)


def _load(args: argparse.Namespace) -> HotlineConfig:
    from ari_app.config import load_config

    return load_config(args.config)


def _settings(cfg: HotlineConfig, args: argparse.Namespace) -> Any:
    upd: dict[str, Any] = {}
    if args.wrapup is not None:
        upd["wrapup_seconds"] = args.wrapup
    return cfg.queue.model_copy(update=upd) if upd else cfg.queue


def _demand(cfg: HotlineConfig, args: argparse.Namespace) -> Demand:
    mix: dict[str, float]
    if args.entity_mix:
        mix = split_other(cfg, {k: int(v) for k, v in _mix(args.entity_mix, {}).items()},
                          menu_only=args.menu_only)
    else:
        mix = split_other(cfg, MARCH_2025_MIX, menu_only=args.menu_only)
    calls = args.calls
    if not args.entity_mix and args.calls == sum(MARCH_2025_MIX.values()):
        calls -= args.menu_only
    return Demand(calls=calls, entity_mix=mix,
                  language_mix=_mix(args.language_mix, DEFAULT_LANGUAGE_MIX), days=args.days,
                  aht=args.aht, aht_dist=args.aht_dist, aht_cv=args.aht_cv,
                  patience=args.patience or None, ring=args.ring)


def erlang_check(cfg: HotlineConfig, agents: int, erlangs: float, *, aht: float = 180.0,
                 calls: int = 200_000, seed: int = 1) -> dict[str, float]:
    """One entity, one language, `agents` identical agents, Poisson arrivals, exponential
    handle, nobody hangs up, no wrap-up: the simulator's ASA and SL(20 s) next to Erlang C."""
    entity = next(e.id for e in cfg.entities)
    lang = cfg.languages[0].code
    roster = synthetic_roster(cfg, {lang: agents})
    # the agents serve only the entity itself, so no routing step widens their set
    roster = [a.model_copy(update={"skills": [entity]}) for a in roster]
    rate = erlangs / aht
    days = max(1, math.ceil(calls / rate / 86400))
    demand = Demand(calls=calls, entity_mix={entity: 1.0}, language_mix={lang: 1.0}, days=days,
                    aht=aht, aht_dist="exponential", patience=None, uniform=True)
    # the span is whole days; stretch the arrivals so the rate is exact
    demand = Demand(**{**demand.__dict__, "calls": int(rate * days * 86400)})
    settings = cfg.queue.model_copy(update={"wrapup_seconds": 0.0, "max_wait": 7200.0})
    res = Simulation(cfg, demand, roster, settings=settings, seed=seed).run()
    sim_asa = float(res.overall["asa"] or 0.0)
    sim_sl = float(res.overall["sl20"] or 0.0)
    return {
        "agents": agents, "erlangs": erlangs, "aht": aht, "calls": res.calls,
        "seconds": res.seconds,
        "erlang_c_asa": round(erlang.asa(agents, erlangs, aht), 3),
        "sim_asa": round(sim_asa, 3),
        "erlang_c_sl20": round(erlang.service_level(agents, erlangs, aht, 20.0), 4),
        "sim_sl20": round(sim_sl, 4),
        "erlang_c_pwait": round(erlang.erlang_c(agents, erlangs), 4),
        "sim_occupancy": float(res.overall["occupancy"] or 0.0),
    }


def staff_for_asa(cfg: HotlineConfig, demand: Demand, target: float, *, seed: int = 1,
                  settings: Any = None) -> dict[str, Any]:
    """Per language, the square-root staffing factor beta (a + beta*sqrt(a) agents in each
    hour) whose simulated month keeps that language's ASA at or under `target`; then the
    whole month with every language's plan together, fallbacks included."""
    handle = demand.aht + (settings or cfg.queue).wrapup_seconds + demand.ring
    plans: dict[str, list[int]] = {}
    per_lang: dict[str, Any] = {}
    for i, lang in enumerate(demand.language_mix):
        load = hourly_load(demand, lang, handle)
        share = demand.language_mix[lang] / sum(demand.language_mix.values())
        sub = Demand(**{**demand.__dict__, "calls": round(demand.calls * share),
                        "language_mix": {lang: 1.0}})

        def run(beta: float, lang: str = lang, load: list[float] = load,
                sub: Demand = sub, lseed: int = seed + i) -> tuple[Result, list[int]]:
            counts = sqrt_staffing(load, beta)
            roster = synthetic_roster(cfg, {lang: max(counts)})
            ids = [a.id for a in roster]
            sim = Simulation(cfg, sub, roster, settings=settings,
                             schedule=schedule_from_counts(ids, counts), seed=lseed)
            return sim.run(), counts

        lo, hi = -1.0, 4.0
        for _ in range(9):
            mid = (lo + hi) / 2
            res, _ = run(mid)
            asa = res.by_language[lang]["asa"]
            if asa is not None and float(asa) <= target:
                hi = mid
            else:
                lo = mid
        res, counts = run(hi)
        plans[lang] = counts
        per_lang[lang] = {"beta": round(hi, 3), "peak_agents": max(counts),
                          "agent_hours": sum(counts), **res.by_language[lang]}
    ids_by_lang: dict[str, list[str]] = {}
    roster = synthetic_roster(cfg, {x: max(c) for x, c in plans.items()})
    for a in roster:
        ids_by_lang.setdefault(a.languages[0], []).append(a.id)

    def schedule(h: int) -> list[str]:
        return [i for x, c in plans.items() for i in ids_by_lang[x][:c[h]]]

    whole = Simulation(cfg, demand, roster, settings=settings, schedule=schedule,
                       seed=seed).run()
    return {"target_asa": target, "per_language": per_lang, "together": whole.as_dict(),
            "hourly_plan": plans}


def cmd_simulate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    settings = _settings(cfg, args)
    t0 = time.perf_counter()
    out: dict[str, Any]
    if args.erlang:
        c, a = args.erlang.split(",")
        out = erlang_check(cfg, int(c), float(a), aht=args.aht, seed=args.seed)
    elif args.staff_for_asa is not None:
        out = staff_for_asa(cfg, _demand(cfg, args), args.staff_for_asa, seed=args.seed,
                            settings=settings)
    else:
        roster = list(cfg.agents)
        reps = max(1, round(args.scale))
        if reps > 1:
            roster = [a.model_copy(update={"id": f"{a.id}-{k}", "endpoint": f"{a.endpoint}-{k}"})
                      for k in range(reps) for a in cfg.agents]
        res = Simulation(cfg, _demand(cfg, args), roster, settings=settings,
                         seed=args.seed).run()
        out = {"roster": len(roster), **res.as_dict()}
    out["wall_seconds"] = round(time.perf_counter() - t0, 2)
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        _print(out)
    return 0


def _print(out: dict[str, Any]) -> None:
    if "by_language" in out:
        rows = [("all", out["overall"]), *out["by_language"].items()]
        print(f"{out['calls']:,} calls, {out.get('roster', '?')} agents, "
              f"{out['agent_hours']:,} agent-hours; simulated in {out['seconds']} s")
        print(f"{'lang':5} {'offered':>8} {'ASA s':>7} {'SL20':>6} {'aband':>6} {'occ':>6}")
        for k, r in rows:
            print(f"{k:5} {r['offered']:>8,} {r['asa'] or 0:>7.1f} {(r['sl20'] or 0):>6.1%} "
                  f"{(r['abandon_rate'] or 0):>6.1%} {(r['occupancy'] or 0):>6.1%}")
    else:
        print(json.dumps(out, indent=1))
