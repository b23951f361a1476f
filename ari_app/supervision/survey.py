"""The post-call survey: the agent hung up first, the caller stays on the line and
rates the call by pressing 1 to 5, in their own language, for one or two
questions. No key in time ends the call with a polite goodbye.

The answers are a late fact on the call (source `survey`): the call's own
events already say the conversation ended; the survey adds its scores, which
the archive folds into the call's row exactly once (docs/records.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.exceptions import RedisError

from ari_app.config.supervision import SurveySettings
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import State
from ari_app.logs import get_logger
from ari_app.records.events import RecordEvent, late_fact
from ari_app.records.model import HangupBy

log = get_logger("supervision.survey")
SCORES = frozenset("12345")
PROMPTS = ("survey-intro", "survey-q1", "survey-q2", "survey-thanks")


@dataclass(frozen=True)
class SurveyDeps:
    settings: SurveySettings
    publish: Callable[[list[RecordEvent]], Awaitable[object]]


def result_of(answers: list[int | None], questions: int) -> str:
    given = [a for a in answers if a is not None]
    if not given:
        return "no_answer"
    return "answered" if len(given) == questions else "partial"


@dataclass
class Survey:
    entity: str
    agent: str
    answers: list[int | None] = field(default_factory=list)
    name: ClassVar[str] = "survey"
    phase: ClassVar[str] = "talk"  # the call was answered, whatever happens here
    deps: SurveyDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        s, n = ctx.session, self.deps.settings.questions
        if not self.answers:
            s.pending_digits.clear()  # keys pressed while talking to the agent are no answer
        try:
            while len(self.answers) < n:
                intro = ("survey-intro",) if not self.answers else ()
                score = await self._ask(ctx, *intro, f"survey-q{len(self.answers) + 1}")
                self.answers.append(score)
                if score is None:
                    break
            done = result_of(self.answers, n) == "answered"
            await s.play(ctx.media("survey-thanks" if done else "goodbye"),
                         interruptible=False)
        finally:
            await self._publish(ctx)
        ctx.record.hangup_by = HangupBy.AGENT
        await s.hangup()
        return None

    async def _ask(self, ctx: CallContext, *prompts: str) -> int | None:
        """One question, asked at most twice; a key that is not 1-5 asks again."""
        s = ctx.session
        for _ in range(2):
            got = await s.play(ctx.media(*prompts))
            digit = got.digit or await s.wait_digit(self.deps.settings.answer_timeout)
            if digit is None:
                return None
            if digit in SCORES:
                return int(digit)
            prompts = tuple(p for p in prompts if p != "survey-intro")
        return None

    async def _publish(self, ctx: CallContext) -> None:
        scores = self.answers + [None] * (2 - len(self.answers))
        fields: dict[str, Any] = {
            "survey_q1": scores[0], "survey_q2": scores[1],
            "survey_result": result_of(self.answers, self.deps.settings.questions)}
        ev = late_fact(ctx.interaction.id, "survey", "survey", fields)
        log.info("survey.result", entity=self.entity, agent=self.agent, **fields)
        with contextlib.suppress(RedisError, OSError):
            await self.deps.publish([ev])

    async def resume(self, ctx: CallContext, channels: Mapping[str, Any]) -> State:
        """A restart during the survey asks again from where it was."""
        return self

    async def abandon(self, ctx: CallContext, channels: Mapping[str, Any]) -> None:
        await self._publish(ctx)


def survey_for(deps: SurveyDeps, prompts_known: Callable[[str], set[str]]
               ) -> Callable[[CallContext, str, str], State | None]:
    """The conversation's `after_agent` hook: a survey where the entity has one."""

    def after_agent(ctx: CallContext, entity: str, agent: str) -> State | None:
        if not deps.settings.wanted(entity):
            return None
        missing = [p for p in PROMPTS if p not in prompts_known(ctx.language)]
        if missing:
            log.warning("survey.prompts_missing", language=ctx.language, missing=missing)
            return None
        return Survey(entity=entity, agent=agent, deps=deps)

    return after_agent
