"""Calls as state machines.

Each state is a small dataclass whose `run` returns the next state (or None
when the call is over). Before each state runs, the call's state and record
are saved to Redis, so a restarted app knows where every call was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ari_app.records.model import CallRecord, HangupBy, Outcome

if TYPE_CHECKING:
    from ari_app.calls.context import CallContext


class State(Protocol):
    name: ClassVar[str]
    # what the caller is doing in this state: decides the outcome of a hang-up
    phase: ClassVar[str]

    async def run(self, ctx: CallContext) -> State | None: ...


def state_data(state: object) -> dict[str, Any]:
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.asdict(state)
    return {}


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
