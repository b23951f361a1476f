"""A discrete-event simulation of the hotline's queue on a virtual clock.

What is real and what is modelled:

* Routing is the app's own: `ari_app.queue.routing.steps_for` gives each waiting
  caller's candidate queries as their wait grows, and `next_step_in` says when
  to look again; `WaitEstimator` and `spoken_wait` give the figure a caller
  would be told on joining (its accuracy is part of the output).
* The agent choice is `MemoryPool`, an in-memory copy of the pool's `take`
  rule (queries in order; within one, the preferred site first, then anywhere;
  longest idle wins, ties to the lowest id). The pool's Lua scripts read the
  Redis server's clock (`TIME`) for idle-since and wrap-up ends and take no
  "now" argument, so they cannot run on a virtual clock; the copy is checked
  against the real `AgentPool` on a real redis-server by
  tests/unit/test_simulate_pool.py with the same inputs.
* Dispatch follows `Dispatcher`: entities in sorted order, callers in queue
  order (priority, then arrival); a freed agent goes to the first waiting
  caller whose open routing steps it matches. Checking only what changed (a
  new caller, a freed agent, a widened caller) gives the same matches as the
  app's full walk, because after every dispatch no free agent matches any
  waiting caller. The app's 50-caller window per entity is not modelled.
* Wrap-up: the agent is released when wrap-up ends, which is what the pool's
  lazy promotion does (idle-since = end of wrap-up).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from ari_app.agents.pool import CandidateQuery
from ari_app.agents.roster import entity_skills
from ari_app.config.models import Agent, HotlineConfig
from ari_app.queue.estimate import WaitEstimator, spoken_wait
from ari_app.queue.routing import next_step_in, steps_for
from ari_app.queue.settings import QueueSettings

# ------------------------------------------------------------------ the pool --


class MemoryPool:
    """The choice rule of `AgentPool.take` (scripts.TAKE), in memory, on a virtual clock.

    Availability indexes are heaps keyed like the Redis sorted sets:
    (skill, language) and (skill, language, site), each holding
    (idle-since ms, agent id, token); an entry is live while the agent's token
    is unchanged, so removal is lazy.
    """

    def __init__(self, agents: Iterable[Agent]) -> None:
        self.agents: dict[str, Agent] = {a.id: a for a in agents}
        self.state: dict[str, str] = {a: "logged_out" for a in self.agents}
        self.idle: dict[str, int] = {}
        self._token: dict[str, int] = {a: 0 for a in self.agents}
        self._heaps: dict[tuple[str, ...], list[tuple[int, str, int]]] = {}

    def _index(self, agent_id: str, score: int) -> None:
        a = self.agents[agent_id]
        self._token[agent_id] += 1
        entry = (score, agent_id, self._token[agent_id])
        for s in a.skills:
            for lang in a.languages:
                heapq.heappush(self._heaps.setdefault((s, lang), []), entry)
                heapq.heappush(self._heaps.setdefault((s, lang, a.site), []), entry)

    def _unindex(self, agent_id: str) -> None:
        self._token[agent_id] += 1

    def login(self, agent_id: str, now_ms: int) -> None:
        if self.state[agent_id] == "logged_out":
            self._set_available(agent_id, now_ms)

    def logout(self, agent_id: str) -> None:
        """A call in progress carries on; the agent stays out after it (as LOGOUT)."""
        if self.state[agent_id] == "available":
            self._unindex(agent_id)
        self.state[agent_id] = "logged_out"

    def _set_available(self, agent_id: str, now_ms: int) -> None:
        self.state[agent_id] = "available"
        self.idle[agent_id] = now_ms
        self._index(agent_id, now_ms)

    def release(self, agent_id: str, now_ms: int) -> bool:
        """End of call (and wrap-up): available, idle from now. False if logged out meanwhile."""
        if self.state[agent_id] != "busy":
            return False
        self._set_available(agent_id, now_ms)
        return True

    def _top(self, key: tuple[str, ...]) -> tuple[int, str] | None:
        h = self._heaps.get(key)
        while h:
            score, aid, tok = h[0]
            if tok == self._token[aid] and self.state[aid] == "available":
                return score, aid
            heapq.heappop(h)
        return None

    def take(self, queries: Sequence[CandidateQuery]) -> tuple[str, int] | None:
        """(agent id, step of the query that found them), the agent now busy; or None."""
        for q in queries:
            suffixes: tuple[str | None, ...] = (q.site, None) if q.site else (None,)
            for site in suffixes:
                best: tuple[int, str] | None = None
                for s in q.skills:
                    for lang in q.languages:
                        key = (s, lang, site) if site else (s, lang)
                        top = self._top(key)
                        if top is not None and (best is None or top < best):
                            best = top
                if best is not None:
                    aid = best[1]
                    self._unindex(aid)
                    self.state[aid] = "busy"
                    return aid, q.step
        return None


# ---------------------------------------------------------------- the inputs --

# Assumed when no archive is given; see docs/simulate.md.
DEFAULT_LANGUAGE_MIX: dict[str, float] = {
    "ar": 0.34, "en": 0.26, "ur": 0.09, "hi": 0.08, "ml": 0.08, "bn": 0.06, "ne": 0.05,
    "ta": 0.02, "si": 0.02,
}
# Share of a day's calls per hour of the day (Asia/Qatar), a government
# contact center open around the clock with a late-morning peak.
DEFAULT_HOURLY: tuple[float, ...] = (
    0.6, 0.4, 0.3, 0.3, 0.3, 0.5, 1.2, 3.0, 6.0, 8.0, 8.6, 8.4,
    7.8, 7.2, 6.6, 6.0, 5.6, 5.2, 4.8, 4.2, 3.6, 2.8, 2.0, 1.2,
)
# Sunday..Saturday (Qatar's week: Friday and Saturday are the weekend)
DEFAULT_WEEKDAY: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.95, 0.45, 0.6)

MARCH_2025_MIX: dict[str, int] = {
    "phcc": 124_341, "moph": 46_091, "mehe": 19_155, "moci": 21_412, "other": 129_542,
}
MARCH_2025_MENU_ONLY = 15_545  # of "other": ended before a department was chosen


@dataclass(frozen=True)
class Demand:
    """Who calls, when and for how long."""

    calls: int
    entity_mix: Mapping[str, float]
    language_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LANGUAGE_MIX))
    start: date = date(2025, 3, 1)
    days: int = 31
    hourly: Sequence[float] = DEFAULT_HOURLY
    weekday: Sequence[float] = DEFAULT_WEEKDAY
    aht: float = 180.0
    aht_dist: str = "lognormal"  # or "exponential"
    aht_cv: float = 1.0
    patience: float | None = 120.0  # mean seconds (exponential); None: nobody hangs up
    ring: float = 0.0  # seconds an agent's phone rings before answering
    uniform: bool = False  # constant rate over the span (the Erlang check)

    def slot_weights(self) -> list[float]:
        """Weight of each hour of the span."""
        out: list[float] = []
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            wd = self.weekday[(day.weekday() + 1) % 7]
            out.extend(1.0 if self.uniform else wd * h for h in self.hourly)
        return out


def split_other(cfg: HotlineConfig, mix: Mapping[str, int], other_key: str = "other",
                menu_only: int = 0) -> dict[str, float]:
    """Spread an 'other' volume evenly over every entity not named in `mix`,
    less `menu_only` calls that never reach a queue."""
    named = {k: float(v) for k, v in mix.items() if k != other_key}
    rest = [e.id for e in cfg.entities if e.id not in named]
    left = max(0.0, float(mix.get(other_key, 0)) - menu_only)
    out = dict(named)
    for e in rest:
        out[e] = left / len(rest)
    return out


def synthetic_roster(cfg: HotlineConfig, per_language: Mapping[str, int],
                     sites: Sequence[str] | None = None) -> list[Agent]:
    """Agents who each speak one language and serve every entity, spread over the sites."""
    site_ids = list(sites or [s.id for s in cfg.sites])
    skills = sorted({s for e in cfg.entities for s in entity_skills(cfg, e.id)})
    out: list[Agent] = []
    for lang, n in per_language.items():
        for i in range(n):
            out.append(Agent(id=f"{lang}{i:04d}", name=f"{lang} {i}",
                             site=site_ids[i % len(site_ids)], endpoint=f"sim-{lang}{i:04d}",
                             languages=[lang], skills=skills))
    return out


# Which agents are logged in during hour slot h of the span; None: all, always.
Schedule = Callable[[int], Iterable[str]] | None


@dataclass
class LangStats:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    no_agents: int = 0
    wait_sum: float = 0.0
    within: int = 0
    est_n: int = 0
    est_abs_err: float = 0.0
    est_phrase_right: int = 0
    busy: float = 0.0
    logged_in: float = 0.0

    def summary(self, target: float) -> dict[str, float | int | None]:
        closed = self.answered + self.abandoned + self.timed_out
        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "timed_out": self.timed_out,
            "no_agents": self.no_agents,
            "asa": round(self.wait_sum / self.answered, 2) if self.answered else None,
            f"sl{target:g}": round(self.within / closed, 4) if closed else None,
            "abandon_rate": round(self.abandoned / self.offered, 4) if self.offered else None,
            "occupancy": round(self.busy / self.logged_in, 4) if self.logged_in else None,
            "estimate_mae": round(self.est_abs_err / self.est_n, 1) if self.est_n else None,
            "phrase_right": round(self.est_phrase_right / self.est_n, 3) if self.est_n else None,
        }


@dataclass
class Result:
    calls: int
    events: int
    seconds: float
    overall: dict[str, float | int | None]
    by_language: dict[str, dict[str, float | int | None]]
    agent_hours: float

    def as_dict(self) -> dict[str, object]:
        return {"calls": self.calls, "events": self.events, "seconds": self.seconds,
                "agent_hours": round(self.agent_hours, 1), "overall": self.overall,
                "by_language": self.by_language}


# ----------------------------------------------------------------- the engine --

_ARRIVE, _FREE, _ABANDON, _WIDEN, _MAXWAIT, _ROSTER = range(6)


class Simulation:
    def __init__(self, cfg: HotlineConfig, demand: Demand, agents: Sequence[Agent], *,
                 settings: QueueSettings | None = None, schedule: Schedule = None,
                 seed: int = 1, sl_target: float = 20.0) -> None:
        self.cfg = cfg
        self.demand = demand
        self.settings = settings or cfg.queue
        self.pool = MemoryPool(agents)
        self.schedule = schedule
        self.rng = random.Random(seed)
        self.sl_target = sl_target
        self.estimator = WaitEstimator()
        self._steps: dict[tuple[str, str, int], list[CandidateQuery]] = {}
        self._marks: dict[str, tuple[float, ...]] = {}
        self._serves: dict[tuple[str, str, str, int], bool] = {}
        self._full: dict[tuple[str, str], list[str]] = {}
        self._agent_entities: dict[str, list[str]] = {}
        self._site_of = {a.id: a.site for a in agents}

    # -- routing (the app's own functions, memoised per phase) ------------------
    def _marks_for(self, entity: str) -> tuple[float, ...]:
        m = self._marks.get(entity)
        if m is None:
            marks: list[float] = []
            waited = 0.0
            while (nxt := next_step_in(self.cfg, entity, waited, self.settings)) is not None:
                waited += nxt
                marks.append(waited)
            m = self._marks[entity] = tuple(marks)
        return m

    def _phase(self, entity: str, waited: float) -> int:
        return sum(1 for m in self._marks_for(entity) if waited >= m)

    def steps(self, entity: str, lang: str, phase: int) -> list[CandidateQuery]:
        key = (entity, lang, phase)
        s = self._steps.get(key)
        if s is None:
            waited = ([0.0, *self._marks_for(entity)])[phase]
            s = self._steps[key] = steps_for(self.cfg, entity, lang, waited, self.settings)
        return s

    def _serves_at(self, agent_id: str, entity: str, lang: str, phase: int) -> bool:
        key = (agent_id, entity, lang, phase)
        v = self._serves.get(key)
        if v is None:
            a = self.pool.agents[agent_id]
            v = any(set(a.skills) & set(q.skills) and set(a.languages) & set(q.languages)
                    for q in self.steps(entity, lang, phase))
            self._serves[key] = v
        return v

    def _full_servers(self, entity: str, lang: str) -> list[str]:
        """Agents who could take this caller once routing is fully open (anyone_can_serve)."""
        key = (entity, lang)
        v = self._full.get(key)
        if v is None:
            last = len(self._marks_for(entity))
            v = self._full[key] = [a for a in self.pool.agents
                                   if self._serves_at(a, entity, lang, last)]
        return v

    # -- the run -----------------------------------------------------------------
    def run(self) -> Result:
        import time as _time

        t_start = _time.perf_counter()
        d, rng = self.demand, self.rng
        cfg_entities = {e.id for e in self.cfg.entities}
        ents = [e for e in d.entity_mix if e in cfg_entities]
        if not ents:
            raise ValueError("no entity in the mix is in the config")
        ew = [d.entity_mix[e] for e in ents]
        langs = list(d.language_mix)
        lw = [d.language_mix[x] for x in langs]
        weights = d.slot_weights()
        n = d.calls
        slots = rng.choices(range(len(weights)), weights=weights, k=n)
        arrival = sorted(s * 3600.0 + rng.random() * 3600.0 for s in slots)
        entity = rng.choices(ents, weights=ew, k=n)
        lang = rng.choices(langs, weights=lw, k=n)
        if d.aht_dist == "exponential":
            handle = [rng.expovariate(1.0 / d.aht) for _ in range(n)]
        else:
            sig2 = math.log(1.0 + d.aht_cv ** 2)
            mu, sig = math.log(d.aht) - sig2 / 2.0, math.sqrt(sig2)
            handle = [rng.lognormvariate(mu, sig) for _ in range(n)]
        patience = ([rng.expovariate(1.0 / d.patience) for _ in range(n)]
                    if d.patience else [math.inf] * n)

        wrapup = self.settings.wrapup_seconds
        ring = d.ring
        stats: dict[str, LangStats] = {x: LangStats() for x in langs}
        est_at: dict[int, float] = {}
        status = [0] * n  # 0 not yet, 1 waiting, 2 served/closed
        queues: dict[str, list[int]] = {}
        heads: dict[str, int] = {}
        events: list[tuple[float, int, int, int]] = []
        seq = 0

        def push(t: float, kind: int, x: int) -> None:
            nonlocal seq
            seq += 1
            heapq.heappush(events, (t, seq, kind, x))

        agent_ids = list(self.pool.agents)
        aidx = {a: i for i, a in enumerate(agent_ids)}
        login_at: dict[str, float] = {}
        busy_total = dict.fromkeys(agent_ids, 0.0)
        login_total = dict.fromkeys(agent_ids, 0.0)
        sl = self.sl_target

        busy_until: dict[str, float] = {}
        pending_login: set[str] = set()

        def login(aid: str, now: float) -> None:
            if busy_until.get(aid, 0.0) > now:
                pending_login.add(aid)  # still on the last call: back when it ends
                return
            if self.pool.state[aid] == "logged_out":
                login_at[aid] = now
                self.pool.login(aid, int(now * 1000))
                dispatch_agent(aid, now)
            elif self.pool.state[aid] == "busy" and aid not in login_at:
                login_at[aid] = now  # came back before their last call ended

        def logout(aid: str, now: float) -> None:
            pending_login.discard(aid)
            if aid in login_at:
                login_total[aid] += now - login_at.pop(aid)
            self.pool.logout(aid)

        def start(c: int, aid: str, now: float) -> None:
            status[c] = 2
            wait = now - arrival[c] + ring
            st = stats[lang[c]]
            st.answered += 1
            st.wait_sum += wait
            if wait <= sl:
                st.within += 1
            est = est_at.pop(c, None)
            if est is not None:
                st.est_n += 1
                st.est_abs_err += abs(est - wait)
                if spoken_wait(est) == spoken_wait(wait):
                    st.est_phrase_right += 1
            busy = ring + handle[c] + wrapup
            busy_total[aid] += busy
            busy_until[aid] = now + busy
            self.estimator.record_handle_time(entity[c], handle[c] + wrapup)
            self.estimator.record_answer_wait(entity[c], wait)
            push(now + busy, _FREE, aidx[aid])

        def waiting_callers(ent: str) -> Iterable[int]:
            q = queues.get(ent)
            if not q:
                return ()
            h = heads[ent]
            while h < len(q) and status[q[h]] != 1:
                h += 1
            heads[ent] = h
            if h > 4096 and h * 2 > len(q):
                del q[:h]
                heads[ent] = h = 0
            return (c for c in q[h:] if status[c] == 1)

        def agent_entities(aid: str) -> list[str]:
            v = self._agent_entities.get(aid)
            if v is None:
                v = self._agent_entities[aid] = sorted(
                    e for e in ents
                    if any(self._serves_at(aid, e, x, len(self._marks_for(e))) for x in langs))
            return v

        def dispatch_agent(aid: str, now: float) -> None:
            for ent in agent_entities(aid):
                for c in waiting_callers(ent):
                    ph = self._phase(ent, now - arrival[c])
                    if not self._serves_at(aid, ent, lang[c], ph):
                        continue
                    got = self.pool.take(self.steps(ent, lang[c], ph))
                    if got is not None:
                        start(c, got[0], now)
                        return

        def close_waiting(c: int, kind: str) -> None:
            status[c] = 2
            est_at.pop(c, None)
            st = stats[lang[c]]
            if kind == "abandoned":
                st.abandoned += 1
            else:
                st.timed_out += 1

        for i in range(n):
            push(arrival[i], _ARRIVE, i)
        n_slots = len(weights)
        if self.schedule is not None:
            for h in range(n_slots):
                push(h * 3600.0, _ROSTER, h)
        else:
            for aid in agent_ids:
                login(aid, 0.0)
        on_duty: set[str] = set()
        max_wait = {e: self.settings.max_wait_for(e) for e in ents}
        n_events = 0
        now = 0.0
        while events:
            now, _, kind, x = heapq.heappop(events)
            n_events += 1
            if kind == _ARRIVE:
                c = x
                ent, lg = entity[c], lang[c]
                st = stats[lg]
                st.offered += 1
                if not any(self.pool.state[a] != "logged_out"
                           for a in self._full_servers(ent, lg)):
                    st.no_agents += 1
                    status[c] = 2
                    continue
                got = self.pool.take(self.steps(ent, lg, 0))
                if got is not None:
                    start(c, got[0], now)
                    continue
                status[c] = 1
                q = queues.setdefault(ent, [])
                heads.setdefault(ent, 0)
                q.append(c)
                position = sum(1 for _ in waiting_callers(ent))
                serving = [a for a in self._full_servers(ent, lg)
                           if self.pool.state[a] != "logged_out"
                           and self._serves_at(a, ent, lg, 0)]
                est = self.estimator.estimate(ent, position, len(serving), 0)
                if est is not None:
                    est_at[c] = est
                for m in self._marks_for(ent):
                    push(now + m, _WIDEN, c)
                if patience[c] < max_wait[ent]:
                    push(now + patience[c], _ABANDON, c)
                else:
                    push(now + max_wait[ent], _MAXWAIT, c)
            elif kind == _FREE:
                aid = agent_ids[x]
                if self.pool.release(aid, int(now * 1000)):
                    dispatch_agent(aid, now)
                elif aid in pending_login:
                    pending_login.discard(aid)
                    login(aid, now)
            elif kind == _WIDEN:
                c = x
                if status[c] == 1:
                    ph = self._phase(entity[c], now - arrival[c])
                    got = self.pool.take(self.steps(entity[c], lang[c], ph))
                    if got is not None:
                        start(c, got[0], now)
            elif kind == _ABANDON:
                if status[x] == 1:
                    close_waiting(x, "abandoned")
            elif kind == _MAXWAIT:
                if status[x] == 1:
                    close_waiting(x, "timed_out")
            elif kind == _ROSTER and self.schedule is not None:
                want = set(self.schedule(x))
                for aid in sorted(on_duty - want):
                    logout(aid, now)
                for aid in sorted(want - on_duty):
                    login(aid, now)
                on_duty = want
        end = max(now, n_slots * 3600.0)
        for aid in list(login_at):
            logout(aid, end)
        # occupancy per language: agents counted in every language they speak
        for aid in agent_ids:
            for lg in self.pool.agents[aid].languages:
                if lg in stats:
                    stats[lg].busy += busy_total[aid]
                    stats[lg].logged_in += login_total[aid]
        total = LangStats()
        for st in stats.values():
            for f in ("offered", "answered", "abandoned", "timed_out", "no_agents", "within",
                      "est_n", "est_phrase_right"):
                setattr(total, f, getattr(total, f) + getattr(st, f))
            total.wait_sum += st.wait_sum
            total.est_abs_err += st.est_abs_err
        total.busy = sum(busy_total.values())
        total.logged_in = sum(login_total.values())
        return Result(
            calls=n, events=n_events, seconds=round(_time.perf_counter() - t_start, 2),
            overall=total.summary(sl),
            by_language={x: s.summary(sl) for x, s in stats.items()},
            agent_hours=total.logged_in / 3600.0)


# ------------------------------------------------------------- staffing plans --

def hourly_load(demand: Demand, language: str, handle: float) -> list[float]:
    """Offered Erlangs of one language in each hour slot of the span."""
    w = demand.slot_weights()
    total = sum(w)
    share = demand.language_mix[language] / sum(demand.language_mix.values())
    return [demand.calls * share * x / total * handle / 3600.0 for x in w]


def sqrt_staffing(load: Sequence[float], beta: float, minimum: int = 2) -> list[int]:
    """Square-root staffing per hour: a + beta * sqrt(a), at least `minimum` agents
    (two: one long call at night must not leave a language with nobody)."""
    return [max(minimum, math.ceil(a + beta * math.sqrt(a))) for a in load]


def schedule_from_counts(ids: Sequence[str], counts: Sequence[int]) -> Callable[[int], list[str]]:
    """Hour slot -> the first counts[h] agent ids on duty."""
    def at(h: int) -> list[str]:
        return list(ids[:counts[h]])
    return at
