"""Agents: the roster from config, their live state in Redis, their SIP accounts."""

from ari_app.agents.pool import (
    AgentPool,
    AgentState,
    AgentStateError,
    AgentStatus,
    CandidateQuery,
    Offer,
    Snapshot,
)
from ari_app.agents.roster import Roster

__all__ = [
    "AgentPool",
    "AgentState",
    "AgentStateError",
    "AgentStatus",
    "CandidateQuery",
    "Offer",
    "Roster",
    "Snapshot",
]
