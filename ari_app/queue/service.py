"""Everything the queue states need, built once at start-up and shared by every call."""

from __future__ import annotations

from dataclasses import dataclass, field

from ari_app.agents.pool import AgentPool, AgentState
from ari_app.agents.roster import Roster, entity_skills
from ari_app.config.models import HotlineConfig
from ari_app.config.queue import QueueSettings
from ari_app.queue.dispatch import Dispatcher, OfferBox
from ari_app.queue.estimate import WaitEstimator
from ari_app.queue.waiting import WaitingQueues

BUSY_OR_FREE = {AgentState.AVAILABLE, AgentState.OFFERED, AgentState.ON_CALL, AgentState.WRAPUP}


@dataclass
class QueueService:
    cfg: HotlineConfig
    settings: QueueSettings
    pool: AgentPool
    waiting: WaitingQueues
    roster: Roster
    box: OfferBox
    dispatcher: Dispatcher
    estimator: WaitEstimator = field(default_factory=WaitEstimator)
    app_name: str = "hotline"

    async def serving(self, entity: str, languages: tuple[str, ...]) -> tuple[int, int]:
        """(logged-in and not paused, of those available now) agents for entity+languages."""
        agents = self.roster.serving(entity_skills(self.cfg, entity), languages)
        states = await self.pool.states([a.id for a in agents])
        working = [st for st, reachable in states if st in BUSY_OR_FREE and reachable]
        return len(working), sum(st == AgentState.AVAILABLE for st in working)

    async def anyone_can_serve(self, entity: str, language: str) -> bool:
        """Is any agent logged in (even paused or busy) who could take this caller
        once routing is fully open? If not, waiting is pointless."""
        r = self.settings.routing_for(entity)
        langs = tuple(dict.fromkeys((language, *r.fallback_languages)))
        skills = entity_skills(self.cfg, entity)
        sector = self.cfg.sector_of(entity)
        agents = self.roster.serving((*skills, sector) if sector else skills, langs)
        states = await self.pool.states([a.id for a in agents])
        return any(st != AgentState.LOGGED_OUT for st, _ in states)
