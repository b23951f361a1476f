"""The journey's states: answer, choose a language, walk the entity menus, hand over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ari_app.ari.client import AriError
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Counters, Finish, State
from ari_app.journey.menus import interpret, language_for_key, menu_at, menu_prompts
from ari_app.records.model import LanguageSource, Outcome, seconds_between, utcnow

OTHER_LANGUAGE_KEY = "9"


@dataclass(frozen=True)
class JourneyDeps:
    """What the journey needs beyond the call itself: the live figures, and where
    a caller goes once they have chosen (the queue, wired at start-up; with no
    queue the call ends in the menu)."""

    counters: Counters | None = None
    handover: Callable[[str], State] | None = None
    # plays what must be heard before the entity menu (a runtime announcement),
    # once the caller's language is known
    before_menu: Callable[[CallContext], Awaitable[None]] | None = None


def _set_language(ctx: CallContext, code: str, source: LanguageSource) -> None:
    ctx.session.language = code
    ctx.record.language = code
    ctx.record.language_source = source
    ctx.emit("language_chosen")


@dataclass
class Answer:
    name: ClassVar[str] = "answer"
    phase: ClassVar[str] = "menu"
    deps: JourneyDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        try:
            await ctx.session.ari.answer(ctx.session.channel_id)
        except AriError as e:  # the caller may have cancelled before we answered
            await ctx.session.gone_or_raise(e)
        ctx.record.answered_at = utcnow()
        return Route(deps=self.deps)

    async def resume(self, ctx: CallContext, channels: Mapping[str, Any]) -> State:
        """Restarted between the answer and the next step: do not answer twice."""
        chan = channels.get(ctx.session.channel_id) or {}
        return Route(deps=self.deps) if chan.get("state") == "Up" else self


@dataclass
class Route:
    """Decide where the caller starts, from the number dialled and what we remember."""

    name: ClassVar[str] = "route"
    phase: ClassVar[str] = "menu"
    deps: JourneyDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        cfg = ctx.cfg
        route = cfg.numbers.get(ctx.session.dialled)
        entity = route.entity if route else None
        codes = {lang.code for lang in cfg.languages}
        if route is not None and route.language:
            _set_language(ctx, route.language, LanguageSource.NUMBER)
            return await _after_language(ctx, entity, self.deps)
        hinted = ctx.session.app_args[1] if len(ctx.session.app_args) > 1 else ""
        remembered = hinted if hinted in codes else None
        if remembered is None and not hinted:
            # the dialplan's AGI look-up was skipped or failed: ask Redis ourselves
            found = await ctx.store.remembered_language(ctx.session.caller)
            remembered = found if found in codes else None
        if remembered:
            _set_language(ctx, remembered, LanguageSource.REMEMBERED)
            return WelcomeBack(entity=entity, deps=self.deps)
        ctx.session.language = cfg.default_language
        return LanguageMenu(entity=entity, deps=self.deps)


async def _after_language(ctx: CallContext, entity: str | None, deps: JourneyDeps) -> State:
    if deps.before_menu is not None:
        await deps.before_menu(ctx)
    if entity is not None:
        return Chosen(entity=entity, path=[entity], deps=deps)
    return EntityMenu(path=[ctx.cfg.menu.id], deps=deps)


@dataclass
class WelcomeBack:
    entity: str | None = None
    name: ClassVar[str] = "welcome_back"
    phase: ClassVar[str] = "menu"
    deps: JourneyDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        res = await ctx.session.play(ctx.media("welcome-back", "other-language"))
        key = res.digit or await ctx.session.wait_digit(ctx.cfg.timers.inter_digit_timeout)
        if key == OTHER_LANGUAGE_KEY:
            return LanguageMenu(entity=self.entity, welcomed=True, deps=self.deps)
        if key is not None and self.entity is None:
            ctx.session.pending_digits.insert(0, key)  # typed ahead into the entity menu
        return await _after_language(ctx, self.entity, self.deps)


@dataclass
class LanguageMenu:
    entity: str | None = None
    tries: int = 0
    welcomed: bool = False
    name: ClassVar[str] = "language_menu"
    phase: ClassVar[str] = "menu"
    deps: JourneyDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        cfg, s = ctx.cfg, ctx.session
        key: str | None = None
        if not self.welcomed:
            key = (await s.play(ctx.media("welcome", lang=cfg.default_language))).digit
            self.welcomed = True
        if key is None:
            options = [m for lang in cfg.languages
                       for m in ctx.media_in(lang.code, "language-option")]
            key = (await s.play(options)).digit
        if key is None:
            key = await s.wait_digit(cfg.timers.digit_timeout)
        code = language_for_key(cfg, key) if key else None
        if code is not None:
            _set_language(ctx, code, LanguageSource.DIGIT)
            await ctx.store.remember_language(s.caller, code, cfg.callers.remember_language_days)
            return await _after_language(ctx, self.entity, self.deps)
        if key == "#":
            return LanguageMenu(self.entity, self.tries, welcomed=True, deps=self.deps)
        ctx.record.menu_retries += 1
        if self.tries + 1 >= cfg.timers.tries:
            _set_language(ctx, cfg.default_language, LanguageSource.DEFAULT)
            return await _after_language(ctx, self.entity, self.deps)
        await s.play(ctx.media("invalid" if key else "no-input", lang=cfg.default_language),
                     interruptible=False)
        return LanguageMenu(self.entity, self.tries + 1, welcomed=True, deps=self.deps)


@dataclass
class EntityMenu:
    path: list[str] = field(default_factory=list)
    tries: int = 0
    name: ClassVar[str] = "entity_menu"
    phase: ClassVar[str] = "menu"
    deps: JourneyDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        cfg, s = ctx.cfg, ctx.session
        menu = menu_at(cfg, self.path)
        key = (await s.play(ctx.media(*menu_prompts(cfg, menu)))).digit
        if key is None:
            key = await s.wait_digit(cfg.timers.digit_timeout)
        if key is not None:
            choice = interpret(cfg, menu, key)
            if choice.kind in ("entity", "other"):
                assert choice.target is not None
                return Chosen(entity=choice.target, path=[*self.path[1:], choice.target],
                              deps=self.deps)
            if choice.kind == "menu":
                assert choice.target is not None
                ctx.emit("menu")
                return EntityMenu(path=[*self.path, choice.target], deps=self.deps)
            if choice.kind == "back":
                if len(self.path) > 1:
                    return EntityMenu(path=self.path[:-1], deps=self.deps)
                return LanguageMenu(welcomed=True, deps=self.deps)
            if choice.kind == "repeat":
                return EntityMenu(path=self.path, tries=self.tries, deps=self.deps)
        ctx.record.menu_retries += 1
        if self.tries + 1 >= cfg.timers.tries:
            other = cfg.other_departments.id
            return Chosen(entity=other, path=[*self.path[1:], other], deps=self.deps)
        await s.play(ctx.media("invalid" if key else "no-input"), interruptible=False)
        return EntityMenu(path=self.path, tries=self.tries + 1, deps=self.deps)


@dataclass
class Chosen:
    """The caller has chosen: record it and hand over to the queue (if there is one)."""

    entity: str
    path: list[str] = field(default_factory=list)
    name: ClassVar[str] = "chosen"
    phase: ClassVar[str] = "menu"
    deps: JourneyDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        rec = ctx.record
        rec.entity = self.entity
        rec.sector = ctx.cfg.sector_of(self.entity)
        rec.entity_path = self.path
        rec.menu_left_at = utcnow()
        rec.menu_seconds = seconds_between(rec.answered_at, rec.menu_left_at)
        ctx.emit("entity_chosen")
        if self.deps.counters is not None:
            self.deps.counters.menu_left()
        if self.deps.handover is not None:
            return self.deps.handover(self.entity)
        return Finish(Outcome.COMPLETED_IN_MENU.value,
                      prompts=["you-chose", f"entity-{self.entity}", "goodbye"])
