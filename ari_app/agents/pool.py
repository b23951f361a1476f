"""The agent pool: who may be offered a call, shared in Redis by every app instance.

ARI has no queue, so the app decides which agent rings. The decision and the
reservation are one Lua script (`take`), so two instances dispatching at the
same moment can never offer one agent two calls. The scripts and key layout are
in `ari_app.agents.scripts`.

Wrap-up ends lazily: `release` records the end time in a sorted set, and every
script that reads availability (take, pause, snapshot) first moves agents whose
wrap-up has ended back to available, scored idle-since = the end of wrap-up.
That needs no timer task that could die with an instance, is exact to the
millisecond of the Redis clock, and survives restarts. The one thing a lazy
end cannot do is wake a waiting caller, so `next_wrapup_end` tells the
dispatcher when to try again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ari_app.agents import scripts, select_scripts
from ari_app.config.models import Agent

MISSED_CALL = "missed_call"  # config/agent_work.py reserves it for the system


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    OFFERED = "offered"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"
    PAUSED = "paused"


class AgentStateError(Exception):
    """A transition that the agent's current state does not allow."""


@dataclass(frozen=True)
class CandidateQuery:
    """Agents who serve any of `skills` and speak any of `languages`.

    `site` is a preference, not a filter: an agent there is taken first if any
    matches; otherwise the longest-idle match anywhere.
    """

    skills: tuple[str, ...]
    languages: tuple[str, ...]
    site: str | None = None
    step: int = 0

    def __post_init__(self) -> None:
        if not self.skills or not self.languages:
            raise ValueError("a candidate query needs at least one skill and one language")


@dataclass(frozen=True)
class Offer:
    """The agent reserved for a call, and which query (routing step) found them."""

    agent: Agent
    step: int


@dataclass(frozen=True)
class AgentStatus:
    id: str
    site: str
    state: AgentState
    reachable: bool
    since: float | None
    call: str | None = None
    until: float | None = None
    reason: str | None = None
    pause_pending: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The wallboard view: every agent, and counts by site and state."""

    at: float
    agents: list[AgentStatus]
    by_site: dict[str, dict[str, int]] = field(default_factory=dict)
    unreachable_by_site: dict[str, int] = field(default_factory=dict)


def _s(v: Any) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def _sec(v: Any) -> float | None:
    s = _s(v)
    return int(s) / 1000.0 if s else None


class AgentPool:
    """Agent state in Redis. Agent ids in arguments; `Agent` models come back from take."""

    def __init__(self, redis: Redis | RedisCluster, agents: Iterable[Agent], *,
                 key_prefix: str = "hotline"):
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain braces: it becomes the hash tag")
        self.redis = redis
        self.base = "{" + key_prefix + "}:"
        self.agents: dict[str, Agent] = {a.id: a for a in agents}
        self._keys = [self.base + "agents"]
        reg = redis.register_script
        self._profile = reg(scripts.PROFILE)
        self._login = reg(scripts.LOGIN)
        self._logout = reg(scripts.LOGOUT)
        self._pause = reg(scripts.PAUSE)
        self._resume = reg(scripts.RESUME)
        self._reach = reg(scripts.REACH)
        self._take = reg(select_scripts.TAKE)
        self._dispatch = reg(select_scripts.DISPATCH)
        self._reserve = reg(scripts.RESERVE)
        self._answered = reg(scripts.ANSWERED)
        self._release = reg(scripts.RELEASE)
        self._missed = reg(scripts.MISSED)
        self._unoffer = reg(scripts.UNOFFER)
        self._promote = reg(scripts.PROMOTE)

    async def _run(self, script: Any, *args: str | int) -> Any:
        return await script(keys=self._keys, args=[self.base, *args])

    def _agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AgentStateError(f"agent {agent_id!r} is not in the roster") from None

    @staticmethod
    def _checked(agent_id: str, res: Any) -> str:
        out = _s(res) or ""
        if out.startswith("err:"):
            raise AgentStateError(f"agent {agent_id!r}: {out[4:]}")
        return out

    async def sync(self) -> None:
        """Write every roster agent's profile; re-indexes agents whose skills changed.

        Run at start-up by each instance; idempotent, keeps states as they are.
        """
        if isinstance(self.redis, RedisCluster):
            # a cluster pipeline refuses EVALSHA; every key shares one slot, so
            # concurrent calls to the one node holding it do the same job
            await asyncio.gather(*(
                self._profile(keys=self._keys, args=[self.base, *_profile_args(a)])
                for a in self.agents.values()))
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for a in self.agents.values():
                await self._profile(keys=self._keys, args=[self.base, *_profile_args(a)],
                                    client=pipe)
            await pipe.execute()

    async def login(self, agent_id: str, *, reachable: bool | None = None) -> AgentState:
        """Available from now. `reachable=None` keeps what AMI last reported
        (reachable if never reported: a dial to an unregistered phone fails fast
        and `missed` pauses the agent)."""
        a = self._agent(agent_id)
        await self._run(self._profile, *_profile_args(a))
        reach = "" if reachable is None else ("1" if reachable else "0")
        return AgentState(self._checked(agent_id, await self._run(self._login, agent_id, reach)))

    async def logout(self, agent_id: str) -> AgentState:
        """Returns the state the agent was in. A call in progress carries on."""
        return AgentState(self._checked(agent_id, await self._run(self._logout, agent_id)))

    async def pause(self, agent_id: str, reason: str) -> str:
        """'paused', or 'pause_pending' when on a call: the pause starts at release."""
        return self._checked(agent_id, await self._run(self._pause, agent_id, reason))

    async def resume(self, agent_id: str) -> AgentState:
        return AgentState(self._checked(agent_id, await self._run(self._resume, agent_id)))

    async def set_reachable(self, agent_id: str, reachable: bool) -> None:
        """From AMI ContactStatus/PeerStatus; independent of the agent's state."""
        self._checked(agent_id, await self._run(self._reach, agent_id, "1" if reachable else "0"))

    async def take(
        self, queries: CandidateQuery | Sequence[CandidateQuery], call_id: str,
        entity: str = "",
    ) -> Offer | None:
        """Reserve (available → offered) the best agent for `call_id`, in one round trip.

        Queries are tried in order (routing steps, narrowest first); within a
        query the agent idle longest wins, at the preferred site if any there,
        and on equal idle time the most proficient in `entity`.
        """
        qs = [queries] if isinstance(queries, CandidateQuery) else list(queries)
        args: list[str | int] = [call_id, entity, len(qs)]
        for q in qs:
            args += _query_args(q)
        res = await self._run(self._take, *args)
        if not res:
            return None
        agent_id, idx = _s(res[0]) or "", int(res[1])
        agent = self.agents.get(agent_id)
        if agent is None:  # known to Redis via another instance's newer roster
            await self.unoffer(agent_id, call_id)
            return None
        return Offer(agent=agent, step=qs[idx - 1].step)

    async def dispatch(self, callers: Sequence[Candidate]) -> DispatchRound:
        """One dispatch round in one round trip: `callers` in serving order, each
        offered the best free agent of its narrowest routing step that has one,
        and claimed (taken out of its waiting queue) in the same script."""
        if not callers:
            return DispatchRound([], [], 0)
        args: list[str | int] = [len(callers)]
        for c in callers:
            args += [c.entity, c.call_id, len(c.queries)]
            for q in c.queries:
                args += _query_args(q)
        res = await self._run(self._dispatch, *args)
        gone = int(res[-1])
        offers: list[tuple[str, Offer]] = []
        stranded: list[str] = []
        by_call = {c.call_id: c for c in callers}
        for j in range(0, len(res) - 1, 4):
            call_id, agent_id = _s(res[j]) or "", _s(res[j + 2]) or ""
            step = by_call[call_id].queries[int(res[j + 3]) - 1].step
            agent = self.agents.get(agent_id)
            if agent is None:  # known to Redis via another instance's newer roster
                await self.unoffer(agent_id, call_id)
                stranded.append(call_id)
                continue
            offers.append((call_id, Offer(agent=agent, step=step)))
        return DispatchRound(offers, stranded, gone)

    async def reserve(self, agent_id: str, call_id: str) -> bool:
        """Reserve one named agent (available → offered) for `call_id`, if free."""
        if agent_id not in self.agents:
            return False
        return bool(await self._run(self._reserve, agent_id, call_id))

    async def answered(self, agent_id: str, call_id: str) -> bool:
        """offered → on_call. False if the agent is no longer offered this call."""
        return bool(await self._run(self._answered, agent_id, call_id))

    async def release(
        self, agent_id: str, wrapup_seconds: float, call_id: str | None = None
    ) -> AgentState | None:
        """End of the call: wrap-up for `wrapup_seconds`, then available (lazily).

        A pause asked for during the call takes effect here instead. None if
        the agent was not on (that) call."""
        res = await self._run(
            self._release, agent_id, max(0, round(wrapup_seconds * 1000)), call_id or ""
        )
        out = _s(res)
        return AgentState(out) if out else None

    async def missed(
        self, agent_id: str, call_id: str | None = None, reason: str = MISSED_CALL
    ) -> bool:
        """Rang out or rejected: paused, so the next caller does not ring an absent desk."""
        return bool(await self._run(self._missed, agent_id, call_id or "", reason))

    async def unoffer(self, agent_id: str, call_id: str) -> bool:
        """The caller left while the agent rang: back to available, same place in line."""
        return bool(await self._run(self._unoffer, agent_id, call_id))

    async def next_wrapup_end(self) -> float | None:
        """Seconds until the next wrap-up ends (0 if due), None if nobody is in wrap-up."""
        now, nxt = await self._run(self._promote)
        if not nxt:
            return None
        return max(0.0, (int(nxt) - int(now)) / 1000.0)

    async def status(self, agent_id: str) -> AgentStatus | None:
        await self._run(self._promote)
        raw = await self.redis.hgetall(self.base + "agent:" + agent_id)
        return _status(agent_id, raw) if raw else None

    async def states(self, agent_ids: Sequence[str]) -> list[tuple[AgentState, bool]]:
        """(state, reachable) of many agents in two round trips, whatever their number.

        Wrap-ups that are over are promoted first, so "wrapup" means still in it."""
        if not agent_ids:
            return []
        await self._run(self._promote)
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hmget(self.base + "agent:" + agent_id, ["state", "reach"])
            rows = await pipe.execute()
        return [(AgentState(_s(st) or "logged_out"), _s(reach) != "0") for st, reach in rows]

    async def snapshot(self) -> Snapshot:
        """Every agent by state per site. Not atomic across agents (a wallboard
        does not need it, and a long script would stall every take)."""
        await self._run(self._promote)
        ids = sorted(_s(i) or "" for i in await self.redis.smembers(self.base + "agents"))
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self.base + "agent:" + i)
            raws = await pipe.execute()
        agents = [_status(i, r) for i, r in zip(ids, raws, strict=True) if r]
        by_site: dict[str, dict[str, int]] = {}
        unreachable: dict[str, int] = {}
        for a in agents:
            counts = by_site.setdefault(a.site, {s.value: 0 for s in AgentState})
            counts[a.state.value] += 1
            unreachable.setdefault(a.site, 0)
            if not a.reachable and a.state != AgentState.LOGGED_OUT:
                unreachable[a.site] += 1
        return Snapshot(time.time(), agents, by_site, unreachable)


@dataclass(frozen=True)
class Candidate:
    """A waiting caller as a dispatch round sees it: its routing steps now."""

    call_id: str
    entity: str
    queries: tuple[CandidateQuery, ...]


@dataclass(frozen=True)
class DispatchRound:
    """(call, offer) per caller claimed, in serving order; callers claimed for an
    agent this instance's roster does not know (the agent was handed back: put
    the caller back in line); and how many callers had left already."""

    offers: list[tuple[str, Offer]]
    stranded: list[str]
    gone: int


def _profile_args(a: Agent) -> list[str | int]:
    prof = ",".join(f"{k}={v}" for k, v in sorted(a.proficiency.items()))
    return [a.id, a.site, ",".join(a.languages), ",".join(a.skills), prof]


def _query_args(q: CandidateQuery) -> list[str | int]:
    return [q.site or "", len(q.skills), *q.skills, len(q.languages), *q.languages]


def _status(agent_id: str, raw: dict[Any, Any]) -> AgentStatus:
    h = {_s(k): _s(v) for k, v in raw.items()}
    return AgentStatus(
        id=agent_id,
        site=h.get("site") or "",
        state=AgentState(h.get("state") or "logged_out"),
        reachable=h.get("reach") != "0",
        since=_sec(h.get("since")),
        call=h.get("call"),
        until=_sec(h.get("until")),
        reason=h.get("reason"),
        pause_pending=h.get("pend"),
    )
