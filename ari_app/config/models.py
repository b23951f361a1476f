"""Typed configuration.

Every rule that a telecom engineer can break in the YAML is checked here, so a
bad file is refused at load with the key that is wrong instead of failing in
the middle of a call.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ari_app.config.agent_work import AgentWork

# the service settings and the building blocks live beside this module; they are
# re-exported here, where the rest of the app has always found them
from ari_app.config.announcements import AnnouncementSettings
from ari_app.config.base import Ident as Ident
from ari_app.config.base import SecretRef as SecretRef
from ari_app.config.base import Strict as Strict
from ari_app.config.callback import CallbackSettings
from ari_app.config.desktop import DesktopSettings
from ari_app.config.queue import QueueSettings
from ari_app.config.services import AgiSettings as AgiSettings
from ari_app.config.services import AmiSettings as AmiSettings
from ari_app.config.services import ArchiveSettings as ArchiveSettings
from ari_app.config.services import AriSettings as AriSettings
from ari_app.config.services import HttpSettings as HttpSettings
from ari_app.config.services import RedisSettings as RedisSettings
from ari_app.config.services import ShutdownSettings as ShutdownSettings
from ari_app.config.supervision import SupervisionSettings

Digit = Annotated[str, Field(pattern=r"^[0-9]$")]
DialledNumber = Annotated[str, Field(pattern=r"^[0-9*#+]{2,20}$")]

# espeak-ng voices shipped by Debian that the default set and likely swaps use.
# Checked against `espeak-ng --voices` at render time too; this list catches
# typos at load without needing espeak-ng on the app host.
KNOWN_VOICES = frozenset(
    (
        "af", "am", "an", "ar", "as", "az", "ba", "be", "bg", "bn", "bpy", "bs", "ca", "chr",
        "cmn", "cs", "cv", "cy", "da", "de", "el", "en", "en-029", "en-gb", "en-gb-scotland",
        "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us", "eo", "es", "es-419", "et",
        "eu", "fa", "fa-latn", "fi", "fr", "fr-be", "fr-ch", "ga", "gd", "gn", "grc", "gu", "hak",
        "haw", "he", "hi", "hr", "ht", "hu", "hy", "hyw", "ia", "id", "io", "is", "it", "ja",
        "jbo", "ka", "kk", "kl", "kn", "ko", "kok", "ku", "ky", "la", "lb", "lfn", "lt", "lv",
        "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "nb", "nci", "ne", "nl", "nog", "om", "or",
        "pa", "pap", "piqd", "pl", "pt", "pt-br", "py", "qdb", "qu", "quc", "qya", "ro", "ru",
        "ru-lv", "sd", "shn", "si", "sjn", "sk", "sl", "smj", "sq", "sr", "sv", "sw", "ta", "te",
        "th", "tk", "tn", "tr", "tt", "ug", "uk", "ur", "uz", "vi", "yue",
    )
)




class Language(Strict):
    code: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
    name: str = Field(min_length=1, description="the language's own name, in its own script")
    english_name: str = Field(min_length=1)
    digit: Digit
    voice: str

    @field_validator("voice")
    @classmethod
    def _voice_known(cls, v: str) -> str:
        if v not in KNOWN_VOICES:
            raise ValueError(f"unknown espeak-ng voice {v!r}")
        return v


class Entity(Strict):
    id: Ident
    names: dict[str, str]
    skill: Ident | None = None

    @property
    def skill_name(self) -> str:
        return self.skill or self.id


class MenuOption(Strict):
    """One DTMF choice: either an entity (a leaf) or a sub-menu (a sector)."""

    digit: Digit
    entity: Entity | None = None
    menu: Menu | None = None

    @model_validator(mode="after")
    def _leaf_or_menu(self) -> MenuOption:
        if (self.entity is None) == (self.menu is None):
            raise ValueError("an option holds exactly one of 'entity' or 'menu'")
        return self


class Menu(Strict):
    id: Ident
    names: dict[str, str]
    options: list[MenuOption] = Field(min_length=1)

    @model_validator(mode="after")
    def _digits(self) -> Menu:
        if len(self.options) > 9:
            raise ValueError(f"menu {self.id!r} offers {len(self.options)} options; at most 9")
        seen: dict[str, str] = {}
        for opt in self.options:
            label = opt.entity.id if opt.entity else opt.menu.id if opt.menu else "?"
            if opt.digit in seen:
                raise ValueError(
                    f"menu {self.id!r}: digit {opt.digit} is used by both "
                    f"{seen[opt.digit]!r} and {label!r}"
                )
            seen[opt.digit] = label
        return self


class NumberRoute(Strict):
    """What a dialled number does: the full journey, or a shortcut."""

    journey: Literal["full"] | None = None
    entity: Ident | None = None
    language: str | None = None

    @model_validator(mode="after")
    def _something(self) -> NumberRoute:
        if self.journey is None and self.entity is None and self.language is None:
            raise ValueError("a number must say 'journey: full', an 'entity' or a 'language'")
        return self


class MenuTimers(Strict):
    digit_timeout: float = Field(5.0, gt=0, le=60)
    tries: int = Field(3, ge=1, le=10)
    inter_digit_timeout: float = Field(3.0, gt=0, le=30)


class Site(Strict):
    id: Ident
    name: str


class Agent(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
    name: str
    site: Ident
    endpoint: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    languages: list[str] = Field(min_length=1)
    skills: list[Ident] = Field(min_length=1, description="entity ids or sector ids served")
    proficiency: dict[str, Annotated[int, Field(ge=1, le=10)]] = Field(default_factory=dict)


class CallerPolicy(Strict):
    remember_language_days: int = Field(90, ge=0, le=3650)
    # salts the hash that keys a caller's remembered language, so Redis never
    # holds callers' numbers in the clear
    salt: SecretRef = SecretRef(env="HOTLINE_CALLER_SALT")
    anonymous: Literal["allow", "reject"] = "allow"
    blocklist: list[Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$")]] = Field(
        default_factory=list
    )


class HotlineConfig(Strict):
    """The whole product configuration.

    `source` is where it came from, so relative paths resolve beside the file.
    """

    source: Path | None = None
    ari: AriSettings = AriSettings()
    ami: AmiSettings = AmiSettings()
    agi: AgiSettings = AgiSettings()
    redis: RedisSettings = RedisSettings()
    archive: ArchiveSettings = ArchiveSettings()
    http: HttpSettings = HttpSettings()
    desktop: DesktopSettings = DesktopSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    languages: list[Language] = Field(min_length=1)
    default_language: str
    menu: Menu
    other_departments: Entity
    numbers: dict[DialledNumber, NumberRoute] = Field(min_length=1)
    timers: MenuTimers = MenuTimers()
    callers: CallerPolicy = CallerPolicy()
    sites: list[Site] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)
    agents_file: Path | None = None
    prompts_dir: Path = Path("prompts")
    # where Asterisk keeps sounds, as Asterisk sees it: prompts in several languages
    # in one playback are named by path under it
    asterisk_sounds_dir: Path = Path("/usr/share/asterisk/sounds")
    queue: QueueSettings = QueueSettings()
    announcements: AnnouncementSettings = AnnouncementSettings()
    agent_work: AgentWork = AgentWork()
    # recording, its retention, listen/whisper/barge, the post-call survey
    supervision: SupervisionSettings = SupervisionSettings()
    callback: CallbackSettings = CallbackSettings()
    # where records wait, fsync'd, while Redis is unreachable
    records_spool: Path = Path("../var/records.spool.jsonl")
    # the local day and month that reports and the wallboard's "today" count in
    timezone: str = "Asia/Qatar"
    # seconds between handing freed memory back to the system (glibc malloc_trim;
    # ari_app/live/memory.py); 0: never
    memory_trim_seconds: float = Field(default=60.0, ge=0, le=86_400)
    # the site whose Asterisk server this app instance drives (None: one server
    # holding every agent, as in the single-server rig)
    site: Ident | None = None
    # per-site servers for `hotline config render`; validated there
    # (ari_app.deploy.render.DeploySettings), opaque to the running app
    deploy: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> HotlineConfig:
        codes = [lang.code for lang in self.languages]
        _unique("languages", codes, "code")
        _unique("languages", [lang.digit for lang in self.languages], "digit")
        if len(self.languages) > 9:
            raise ValueError(f"languages: {len(self.languages)} configured; the menu holds 9")
        if self.default_language not in codes:
            raise ValueError(f"default_language: {self.default_language!r} is not configured")
        entities = self.entities
        _unique("entities", [e.id for e in entities], "id")
        menu_ids = [m.id for m in self.menus]
        _unique("menus", menu_ids, "id")
        for where, names in self._named():
            missing = [c for c in codes if not names.get(c, "").strip()]
            if missing:
                raise ValueError(f"{where}: no name in language(s) {', '.join(missing)}")
        entity_ids = {e.id for e in entities}
        for number, route in self.numbers.items():
            if route.entity and route.entity not in entity_ids:
                raise ValueError(f"numbers.{number}: unknown entity {route.entity!r}")
            if route.language and route.language not in codes:
                raise ValueError(f"numbers.{number}: unknown language {route.language!r}")
        site_ids = {s.id for s in self.sites}
        _unique("sites", [s.id for s in self.sites], "id")
        _unique("agents", [a.id for a in self.agents], "id")
        _unique("agents", [a.endpoint for a in self.agents], "endpoint")
        skills = entity_ids | set(menu_ids) | {e.skill_name for e in entities}
        for agent in self.agents:
            if agent.site not in site_ids:
                raise ValueError(f"agents.{agent.id}: unknown site {agent.site!r}")
            bad = [lang for lang in agent.languages if lang not in codes]
            if bad:
                raise ValueError(f"agents.{agent.id}: unknown language(s) {', '.join(bad)}")
            bad = [s for s in agent.skills if s not in skills]
            if bad:
                raise ValueError(f"agents.{agent.id}: unknown skill(s) {', '.join(bad)}")
        if self.site is not None and self.site not in site_ids:
            raise ValueError(f"site: unknown site {self.site!r}")
        problems = self.queue.problems(entity_ids, site_ids, set(codes))
        problems += self.agent_work.problems(entity_ids)
        agent_ids = {a.id for a in self.agents}
        problems += [f"queue.supervisors: unknown agent {a!r}" for a in self.queue.supervisors
                     if a not in agent_ids]
        fallback = self.announcements.fallback_language
        if fallback is not None and fallback not in codes:
            problems.append(f"announcements.fallback_language: {fallback!r} is not configured")
        problems += self.supervision.problems(entity_ids)
        if problems:
            raise ValueError("; ".join(problems))
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except (KeyError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        return self

    def _named(self) -> list[tuple[str, dict[str, str]]]:
        out: list[tuple[str, dict[str, str]]] = []
        for m in self.menus:
            out.append((f"menu {m.id}", m.names))
        for e in self.entities:
            out.append((f"entity {e.id}", e.names))
        return out

    @property
    def menus(self) -> list[Menu]:
        """Every menu level, depth first, the top first."""
        out: list[Menu] = []

        def walk(m: Menu) -> None:
            out.append(m)
            for opt in m.options:
                if opt.menu:
                    walk(opt.menu)

        walk(self.menu)
        return out

    @property
    def entities(self) -> list[Entity]:
        """Each entity once, in menu order, 'other departments' last."""
        out: list[Entity] = []
        for m in self.menus:
            out.extend(opt.entity for opt in m.options if opt.entity)
        if all(e.id != self.other_departments.id for e in out):
            out.append(self.other_departments)
        return out

    @property
    def instance_id(self) -> str:
        """Unique per app instance: the Stasis app name, qualified by the site when
        several sites' servers each run an app of the same name."""
        return f"{self.site}-{self.ari.app}" if self.site else self.ari.app

    def resolve(self, p: Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        if p.is_absolute() or self.source is None:
            return p
        return self.source.parent / p

    def language(self, code: str) -> Language:
        for lang in self.languages:
            if lang.code == code:
                return lang
        raise KeyError(code)

    def entity(self, entity_id: str) -> Entity:
        for e in self.entities:
            if e.id == entity_id:
                return e
        raise KeyError(entity_id)

    def sector_of(self, entity_id: str) -> str | None:
        """The id of the menu that offers this entity directly (its sector)."""
        for m in self.menus:
            if any(o.entity and o.entity.id == entity_id for o in m.options):
                return m.id if m.id != self.menu.id else None
        return None


def _unique(where: str, values: list[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{where}: {what} {v!r} appears twice")
        seen.add(v)


def resolve_secret(ref: SecretRef, base: Path | None) -> SecretStr:
    """Read a secret at start-up. Errors name the source, never the value."""
    import os

    if ref.env is not None:
        val = os.environ.get(ref.env)
        if not val:
            raise ValueError(f"secret: environment variable {ref.env} is not set")
        return SecretStr(val)
    assert ref.file is not None
    path = ref.file if ref.file.is_absolute() or base is None else base.parent / ref.file
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as e:
        raise ValueError(f"secret: cannot read {path}: {e.strerror}") from None


SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


MenuOption.model_rebuild()
