"""Interactions as state machines, and the one place their states are registered.

Each state is a small dataclass whose `run` returns the next state (or None
when the interaction is over). Before each state runs, the interaction's state,
legs, bridges and record are checkpointed to Redis, so a restarted app knows
where every call was.

A feature package's states get that package's dependencies as a typed field
(`deps`), which is never checkpointed: the registry puts it back when a state
is rebuilt from a checkpoint. No state looks a service up by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ari_app.records.model import CallRecord, HangupBy, Outcome

if TYPE_CHECKING:
    from ari_app.interactions.context import CallContext

DEPS_FIELD = "deps"


class State(Protocol):
    name: ClassVar[str]
    # what the caller is doing in this state: decides the outcome of a hang-up
    phase: ClassVar[str]

    async def run(self, ctx: CallContext) -> State | None: ...


class Recoverable(Protocol):
    """A state that knows how to carry on, or close its books, after a restart."""

    async def resume(self, ctx: CallContext, channels: Mapping[str, Any]) -> State: ...

    async def abandon(self, ctx: CallContext, channels: Mapping[str, Any]) -> None: ...


class Counters(Protocol):
    """The live figures a call feeds (ari_app.live.CallCounters)."""

    def menu_entered(self) -> None: ...
    def menu_left(self) -> None: ...
    def queued_call(self, entity: str) -> None: ...
    def answered(self, wait_seconds: float) -> None: ...
    def abandoned_in_menu(self) -> None: ...
    def abandoned_in_queue(self, wait_seconds: float) -> None: ...
    def outcome(self, name: str) -> None: ...


def state_data(state: object) -> dict[str, Any]:
    """What a checkpoint keeps of a state: its fields, without its dependencies."""
    if not dataclasses.is_dataclass(state) or isinstance(state, type):
        return {}
    return {f.name: _plain(getattr(state, f.name)) for f in dataclasses.fields(state)
            if f.name != DEPS_FIELD}


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return dataclasses.asdict(v)
    return v


class StateRegistry:
    """Every state the app can checkpoint, by name, with how to rebuild it."""

    def __init__(self) -> None:
        self._make: dict[str, Callable[[dict[str, Any]], State]] = {}

    def add(self, cls: type[Any], deps: object | None = None) -> None:
        name = str(cls.name)
        if name in self._make:
            raise ValueError(f"state {name!r} registered twice")

        def make(data: dict[str, Any]) -> State:
            built: State = cls(**data) if deps is None else cls(**data, deps=deps)
            return built

        self._make[name] = make

    def rebuild(self, name: str, data: dict[str, Any]) -> State:
        make = self._make.get(name)
        if make is None:
            raise ValueError(f"unknown state {name!r} in a checkpoint")
        try:
            return make(data)
        except TypeError as e:  # a field renamed or removed since the checkpoint
            raise ValueError(f"state {name!r} cannot be rebuilt: {e}") from None

    def names(self) -> list[str]:
        return sorted(self._make)


@dataclass
class Finish:
    """The app ends the call: say the closing prompts, set the outcome, hang up."""

    outcome: str
    prompts: list[str] = field(default_factory=list)
    name: ClassVar[str] = "finish"
    phase: ClassVar[str] = "end"

    async def run(self, ctx: CallContext) -> State | None:
        ctx.record.outcome = Outcome(self.outcome)
        if self.prompts:
            await ctx.session.play(ctx.media(*self.prompts), interruptible=False)
        ctx.record.hangup_by = ctx.record.hangup_by or HangupBy.APP
        await ctx.session.hangup()
        return None


PHASE_OUTCOME = {
    "menu": Outcome.ABANDONED_IN_MENU,
    "queue": Outcome.ABANDONED_IN_QUEUE,
    "talk": Outcome.ANSWERED,
    "end": None,
}


def outcome_for_hangup(phase: str, record: CallRecord) -> Outcome | None:
    """The outcome of a call whose caller left while in `phase`."""
    if record.outcome is not None:
        return record.outcome
    return PHASE_OUTCOME.get(phase)
