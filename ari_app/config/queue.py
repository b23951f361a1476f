"""Queue behaviour, as the contact-center manager tunes it.

Meant to sit in HotlineConfig as `queue: QueueSettings`; every field has a
default so an existing hotline.yaml stays valid. Cross-checks against the rest
of the config (entity and site ids) are in `problems()`, because this model
alone does not know them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Ident = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
LangCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
CallerNumber = Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$")]
PRIORITY_MAX = 199  # the waiting queue's score holds priorities up to this


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToEntity(_Strict):
    """Send the caller to another entity's queue, keeping their place in time."""

    kind: Literal["entity"] = "entity"
    entity: Ident


class MessageAndHangup(_Strict):
    """Play a prompt (a sound/prompt key the journey knows) and hang up."""

    kind: Literal["message"] = "message"
    prompt: str = Field(default="no-agents", min_length=1)


Fallback = Annotated[ToEntity | MessageAndHangup, Field(discriminator="kind")]


class RoutingSteps(_Strict):
    """When the search for an agent widens, in seconds of waiting.

    Step 0 (from the start): caller's language, entity's own skill.
    Step 1 (`sector_after`): caller's language, the entity's sector too.
    Step 2 (`fallback_language_after`): `fallback_languages` speakers of the entity.
    """

    sector_after: float = Field(default=30.0, ge=0, le=3600)
    fallback_language_after: float = Field(default=90.0, ge=0, le=3600)
    fallback_languages: tuple[LangCode, ...] = ("ar", "en")

    @model_validator(mode="after")
    def _ordered(self) -> RoutingSteps:
        if self.fallback_language_after < self.sector_after:
            raise ValueError("fallback_language_after must not come before sector_after")
        return self


class EntityQueue(_Strict):
    """Per-entity overrides; anything left out uses the queue-wide value."""

    priority: int | None = Field(default=None, ge=0, le=99)
    routing: RoutingSteps | None = None
    max_wait: float | None = Field(default=None, gt=0, le=7200)
    site: Ident | None = None
    fallback: Fallback | None = None


class QueueSettings(_Strict):
    announce_interval: float = Field(default=45.0, ge=10, le=600)
    announce_first_after: float = Field(default=20.0, ge=0, le=600)
    routing: RoutingSteps = RoutingSteps()
    max_wait: float = Field(default=600.0, gt=0, le=7200)
    ring_timeout: float = Field(default=15.0, ge=5, le=120)
    wrapup_seconds: float = Field(default=10.0, ge=0, le=600)
    priority: int = Field(default=0, ge=0, le=99, description="default caller priority")
    transfer_boost: int = Field(
        default=10, ge=1, le=99, description="added to a transferred caller's priority"
    )
    site_preference: Ident | None = None
    # agents an agent reaches by consulting "0" (a supervisor), tried in order
    supervisors: list[Ident] = Field(default_factory=list, max_length=100)
    fallback: Fallback = MessageAndHangup()
    entities: dict[Ident, EntityQueue] = Field(default_factory=dict)
    # callers served ahead of others (e.g. a ministry's duty officers), by number;
    # the FastAGI look-up matches the caller id's digits (see docs/routing.md)
    priority_callers: dict[CallerNumber, Annotated[int, Field(ge=1, le=99)]] = Field(
        default_factory=dict, max_length=100_000)

    def _for(self, entity_id: str) -> EntityQueue:
        return self.entities.get(entity_id) or EntityQueue()

    def routing_for(self, entity_id: str) -> RoutingSteps:
        return self._for(entity_id).routing or self.routing

    def priority_for(self, entity_id: str) -> int:
        p = self._for(entity_id).priority
        return self.priority if p is None else p

    def priority_of(self, entity_id: str, caller_priority: int = 0) -> int:
        """A caller's place-in-line priority: the entity's plus the caller's own."""
        return max(0, min(PRIORITY_MAX, self.priority_for(entity_id) + caller_priority))

    def caller_priority(self, number: str) -> int:
        """The configured priority of a caller number (any formatting), 0 if none."""
        return self._priority_numbers().get(_digits(number), 0)

    def _priority_numbers(self) -> dict[str, int]:
        return {_digits(k): v for k, v in self.priority_callers.items()}

    def max_wait_for(self, entity_id: str) -> float:
        return self._for(entity_id).max_wait or self.max_wait

    def site_for(self, entity_id: str) -> str | None:
        return self._for(entity_id).site or self.site_preference

    def fallback_for(self, entity_id: str) -> ToEntity | MessageAndHangup:
        return self._for(entity_id).fallback or self.fallback

    def problems(
        self, entity_ids: set[str], site_ids: set[str], language_codes: set[str]
    ) -> list[str]:
        """Ids that name nothing in the rest of the config; empty when all is well."""
        out: list[str] = []
        sites = [("queue.site_preference", self.site_preference)]
        fallbacks = [("queue.fallback", self.fallback)]
        routings = [("queue.routing", self.routing)]
        for eid, eq in self.entities.items():
            if eid not in entity_ids:
                out.append(f"queue.entities: unknown entity {eid!r}")
            sites.append((f"queue.entities.{eid}.site", eq.site))
            if eq.fallback:
                fallbacks.append((f"queue.entities.{eid}.fallback", eq.fallback))
            if eq.routing:
                routings.append((f"queue.entities.{eid}.routing", eq.routing))
        out += [f"{w}: unknown site {s!r}" for w, s in sites if s and s not in site_ids]
        for where, fb in fallbacks:
            if isinstance(fb, ToEntity) and fb.entity not in entity_ids:
                out.append(f"{where}: unknown entity {fb.entity!r}")
            if isinstance(fb, ToEntity) and where.endswith(f".{fb.entity}.fallback"):
                out.append(f"{where}: an entity cannot fall back to itself")
        for where, r in routings:
            bad = [c for c in r.fallback_languages if c not in language_codes]
            if bad:
                out.append(f"{where}.fallback_languages: unknown {', '.join(bad)}")
        return out


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())
