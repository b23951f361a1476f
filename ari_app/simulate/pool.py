"""The in-memory copy of the agent pool's choice rule, for the virtual clock."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from ari_app.agents.pool import CandidateQuery
from ari_app.config.models import Agent


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
