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
from collections.abc import Iterable, Sequence

from ari_app.agents.pool import CandidateQuery
from ari_app.config.models import Agent, HotlineConfig
from ari_app.config.queue import QueueSettings
from ari_app.queue.estimate import WaitEstimator, spoken_wait
from ari_app.queue.routing import next_step_in, steps_for
from ari_app.simulate.inputs import (
    DEFAULT_LANGUAGE_MIX,
    MARCH_2025_MENU_ONLY,
    MARCH_2025_MIX,
    Demand,
    LangStats,
    Result,
    Schedule,
    split_other,
    synthetic_roster,
)
from ari_app.simulate.pool import MemoryPool
from ari_app.simulate.staffing import hourly_load, schedule_from_counts, sqrt_staffing

__all__ = [  # re-exported: the simulator's public names live here
    "DEFAULT_LANGUAGE_MIX",
    "MARCH_2025_MENU_ONLY",
    "MARCH_2025_MIX",
    "Demand",
    "LangStats",
    "MemoryPool",
    "Result",
    "Schedule",
    "Simulation",
    "hourly_load",
    "schedule_from_counts",
    "split_other",
    "sqrt_staffing",
    "synthetic_roster",
]


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
