"""The prompt catalog: for every configured language, sound name -> text to speak.

This is the contract between the call flow and the rendered sound tree. The call
flow sets the channel language to a code and plays ``sound:hotline/<name>``;
Asterisk then finds ``sounds/<code>/hotline/<name>.wav``. Every name returned by
:meth:`PromptCatalog.names` is rendered for that language.

Texts come from ``config/prompts/<code>.yaml`` (one file per language, written in
that language's own script). Entity and sector names come from the product
config, so adding an entity needs no edit here. The module is pure: it reads
files and builds data, it never runs espeak-ng.

Placeholders in the data files:

``{name}``, ``{digit}``
    filled at load: ``option`` gets each menu entry's name and digit,
    ``language-option`` the language's own name and digit, ``other-language``
    the digit that offers further languages.
``{n}``
    a number spoken at run time. The text is split around it into
    ``<key>-before`` and ``<key>-after``; a part with nothing to say is absent.
    :meth:`PromptCatalog.say` returns the sounds to play in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ari_app.config.loader import ConfigError, read_yaml
from ari_app.config.models import HotlineConfig, Menu

# The queued callback's menu and the greeting of a callback (docs/callback.md).
CALLBACK_KEYS: tuple[str, ...] = (
    "callback-offer",
    "callback-offer-other",
    "callback-enter",
    "callback-you-entered",
    "callback-confirm",
    "callback-bad-number",
    "callback-pending",
    "callback-booked",
    "callback-greeting",
)
# Keys every language file must define.
FIXED_KEYS: tuple[str, ...] = (
    "welcome",
    "welcome-back",
    "other-language",
    "menu-intro",
    "back-repeat",
    "invalid",
    "no-input",
    "you-chose",
    "goodbye",
    "blocked",
    "unavailable",
    "you-pressed",
    "queue-hold",
    "wait-less-than-minute",
    "minutes",
    "seconds",
    "no-agents",
    "max-wait",
    "connecting",
    "transfer",
    # supervision: the recording notice and the post-call survey (docs/supervision.md)
    "recording-notice",
    "survey-intro",
    "survey-q1",
    "survey-q2",
    "survey-thanks",
    *CALLBACK_KEYS,
)
NUMBER_TEMPLATES: tuple[str, ...] = ("queue-position", "wait-about")
OPTION_TEMPLATE = "option"
LANGUAGE_OPTION = "language-option"
REQUIRED_KEYS: tuple[str, ...] = (
    *FIXED_KEYS,
    *NUMBER_TEMPLATES,
    OPTION_TEMPLATE,
    LANGUAGE_OPTION,
)

# The placeholders each key must (and may only) use.
PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    **{k: frozenset() for k in FIXED_KEYS if k != "other-language"},
    "other-language": frozenset({"digit"}),
    **{k: frozenset({"n"}) for k in NUMBER_TEMPLATES},
    OPTION_TEMPLATE: frozenset({"name", "digit"}),
    LANGUAGE_OPTION: frozenset({"digit"}),
}
# {name} is allowed (not required) in language-option: the file may write the
# language's name itself, inflected as its grammar wants.
OPTIONAL_PLACEHOLDERS: Mapping[str, frozenset[str]] = {LANGUAGE_OPTION: frozenset({"name"})}

# A file may override the option text for one menu entry, e.g. ``option-other``,
# where the language's grammar needs a different form of the name. It must
# contain {digit}; {name} is optional.
OVERRIDE_PREFIX = "option-"

OTHER_LANGUAGE_DIGIT = "9"  # the digit the language menu offers for "another language"
OTHER_DEPARTMENTS_DIGIT = "0"  # the digit the top menu offers for other departments
NUMBER_MIN = 0
NUMBER_MAX = 999
NUMBER_PREFIX = "num/"

_FIELD = re.compile(r"\{([^{}]*)\}")
_NUMBER = re.compile(r"(?<![0-9])[0-9]+(?![0-9])")


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One sound to render: where it goes and what it says."""

    lang: str
    voice: str
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class LanguagePrompts:
    code: str
    voice: str
    texts: Mapping[str, str]  # sound name -> text, every one non-empty
    templates: frozenset[str]  # names that take a number at run time


class PromptCatalog:
    """Every sound each language needs, and how to say templated prompts."""

    def __init__(self, languages: Mapping[str, LanguagePrompts]) -> None:
        self._langs = dict(languages)

    # ---- loading -------------------------------------------------------

    @classmethod
    def load(cls, cfg: HotlineConfig, prompts_dir: Path) -> PromptCatalog:
        """Read ``<prompts_dir>/<code>.yaml`` for every configured language.

        Raise ConfigError naming the file and key on any missing or bad entry.
        """
        tree = _option_entries(cfg)
        langs: dict[str, LanguagePrompts] = {}
        for lang in cfg.languages:
            path = prompts_dir / f"{lang.code}.yaml"
            raw, numbers = _read_prompt_file(path, lang.code)
            texts: dict[str, str] = {}
            templates: set[str] = set()
            put = _Collector(path, texts, numbers)
            for key in FIXED_KEYS:
                text = raw[key]
                if key == "other-language":
                    text = _fill(text, digit=OTHER_LANGUAGE_DIGIT)
                put(key, text, key)
            text = _fill(raw[LANGUAGE_OPTION], name=lang.name, digit=lang.digit)
            put(LANGUAGE_OPTION, text, LANGUAGE_OPTION)
            for key in NUMBER_TEMPLATES:
                before, after = raw[key].split("{n}")
                if _has_words(before):
                    put(f"{key}-before", before, key)
                if _has_words(after):
                    put(f"{key}-after", after, key)
                templates.add(key)
            ids = {item_id for item_id, _, _ in tree}
            for key in raw:
                if key.startswith(OVERRIDE_PREFIX) and key[len(OVERRIDE_PREFIX) :] not in ids:
                    raise ConfigError(f"{path}: prompts.{key}: no menu entry with that id")
            for item_id, digit, names in tree:
                key = f"{OVERRIDE_PREFIX}{item_id}"
                template = raw.get(key, raw[OPTION_TEMPLATE])
                where = key if key in raw else f"prompts.{OPTION_TEMPLATE} ({item_id})"
                put(key, _fill(template, name=names[lang.code], digit=digit), where)
            for entity in cfg.entities:
                put(f"entity-{entity.id}", entity.names[lang.code], f"entity {entity.id} name")
            for n in range(NUMBER_MIN, NUMBER_MAX + 1):
                put(f"{NUMBER_PREFIX}{n}", str(n), "numbers")
            langs[lang.code] = LanguagePrompts(
                code=lang.code, voice=lang.voice, texts=texts, templates=frozenset(templates)
            )
        return cls(langs)

    # ---- the contract the call flow uses ---------------------------------

    @property
    def languages(self) -> list[str]:
        return list(self._langs)

    def voice(self, lang: str) -> str:
        return self._lang(lang).voice

    def names(self, lang: str) -> set[str]:
        """Every sound name rendered for this language (``num/*`` included)."""
        return set(self._lang(lang).texts)

    def text(self, lang: str, name: str) -> str:
        texts = self._lang(lang).texts
        if name not in texts:
            raise KeyError(f"prompt {name!r} is not in the {lang!r} catalog")
        return texts[name]

    def say(self, lang: str, name: str, n: int | None = None) -> list[str]:
        """The sound names to play, in order, for one prompt.

        ``say("hi", "queue-position", 3)`` gives
        ``["queue-position-before", "num/3", "queue-position-after"]``, leaving
        out parts the language's text does not have.
        """
        lp = self._lang(lang)
        if name in lp.templates:
            if n is None:
                raise ValueError(f"prompt {name!r} needs a number")
            out = [p for p in (f"{name}-before",) if p in lp.texts]
            out.append(self.number(lang, n))
            out.extend(p for p in (f"{name}-after",) if p in lp.texts)
            return out
        if n is not None:
            raise ValueError(f"prompt {name!r} takes no number")
        if name not in lp.texts:
            raise KeyError(f"prompt {name!r} is not in the {lang!r} catalog")
        return [name]

    def number(self, lang: str, n: int) -> str:
        self._lang(lang)
        if isinstance(n, bool) or not NUMBER_MIN <= n <= NUMBER_MAX:
            raise ValueError(f"number {n!r} is outside {NUMBER_MIN}..{NUMBER_MAX}")
        return f"{NUMBER_PREFIX}{n}"

    def prompts(self) -> Iterator[Prompt]:
        """Every (language, name) with its voice and text, for the renderer."""
        for lp in self._langs.values():
            for name, text in lp.texts.items():
                yield Prompt(lang=lp.code, voice=lp.voice, name=name, text=text)

    def __len__(self) -> int:
        return sum(len(lp.texts) for lp in self._langs.values())

    def _lang(self, lang: str) -> LanguagePrompts:
        try:
            return self._langs[lang]
        except KeyError:
            raise KeyError(f"language {lang!r} is not in the prompt catalog") from None


@dataclass(frozen=True, slots=True)
class NumberSpeech:
    """How a language's voice gets numbers right.

    ``digits``: the ten digit characters to write numbers with (e.g. Devanagari
    for Nepali, whose espeak-ng voice reads ASCII digits in English).
    ``words``: whole numbers to write as words (works around voice bugs).
    """

    digits: str | None = None
    words: Mapping[int, str] | None = None

    def localise(self, text: str) -> str:
        if self.digits is None and not self.words:
            return text
        table = str.maketrans("0123456789", self.digits) if self.digits else {}
        words = self.words or {}

        def one(m: re.Match[str]) -> str:
            return words.get(int(m.group(0)), m.group(0).translate(table))

        return _NUMBER.sub(one, text)


class _Collector:
    """Adds sound name -> text, refusing empty texts and duplicate names."""

    def __init__(self, path: Path, texts: dict[str, str], numbers: NumberSpeech) -> None:
        self.path = path
        self.texts = texts
        self.numbers = numbers

    def __call__(self, name: str, text: str, key: str) -> None:
        if not _has_words(text):
            raise ConfigError(f"{self.path}: {key}: produces an empty text for {name!r}")
        if name in self.texts:
            raise ConfigError(f"{self.path}: {key}: sound name {name!r} is produced twice")
        self.texts[name] = self.numbers.localise(text.strip())


def _option_entries(cfg: HotlineConfig) -> list[tuple[str, str, Mapping[str, str]]]:
    """(id, digit in its parent menu, names) for every sector and entity in the tree."""
    out: list[tuple[str, str, Mapping[str, str]]] = []
    seen: dict[str, str] = {}

    def walk(menu: Menu) -> None:
        for opt in menu.options:
            node = opt.entity or opt.menu
            assert node is not None
            if node.id in seen:
                raise ConfigError(
                    f"{cfg.source}: menu {menu.id!r}: id {node.id!r} names both a menu and an "
                    f"entity; prompt option-{node.id} would be ambiguous"
                )
            seen[node.id] = menu.id
            out.append((node.id, opt.digit, node.names))
            if opt.menu:
                walk(opt.menu)

    walk(cfg.menu)
    other = cfg.other_departments
    if other.id in seen:
        raise ConfigError(f"{cfg.source}: other_departments: id {other.id!r} is also in the menu")
    out.append((other.id, OTHER_DEPARTMENTS_DIGIT, other.names))
    return out


def _fill(template: str, **values: str) -> str:
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _read_prompt_file(path: Path, code: str) -> tuple[dict[str, str], NumberSpeech]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (prompts for language {code!r})")
    data: Any = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        raise ConfigError(f"{path}: prompts: expected a mapping 'prompts:' of key -> text")
    if data.get("language", code) != code:
        raise ConfigError(f"{path}: language: says {data['language']!r}, expected {code!r}")
    extra = set(data) - {"language", "prompts", "digits", "number-words"}
    if extra:
        raise ConfigError(f"{path}: {sorted(extra)[0]}: unknown top-level key")
    prompts: dict[Any, Any] = data["prompts"]
    for key in REQUIRED_KEYS:
        if key not in prompts:
            raise ConfigError(f"{path}: prompts.{key}: missing")
    out: dict[str, str] = {}
    for key, value in prompts.items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}: prompts.{key}: keys must be texts")
        override = key.startswith(OVERRIDE_PREFIX)
        if key not in PLACEHOLDERS and not override:
            raise ConfigError(f"{path}: prompts.{key}: unknown prompt key")
        if not isinstance(value, str) or not _has_words(value):
            raise ConfigError(f"{path}: prompts.{key}: must be a non-empty text")
        used = _FIELD.findall(value)
        need = frozenset({"digit"}) if override else PLACEHOLDERS[key]
        optional = frozenset({"name"}) if override else OPTIONAL_PLACEHOLDERS.get(key, frozenset())
        allowed = need | optional
        bad = [f for f in used if f not in allowed]
        if bad:
            raise ConfigError(f"{path}: prompts.{key}: unknown placeholder {{{bad[0]}}}")
        for field in need:
            if used.count(field) != 1:
                raise ConfigError(f"{path}: prompts.{key}: must contain {{{field}}} exactly once")
        out[key] = value
    return out, _read_numbers(path, data)


def _read_numbers(path: Path, data: dict[Any, Any]) -> NumberSpeech:
    digits = data.get("digits")
    if digits is not None and (not isinstance(digits, str) or len(digits) != 10):
        raise ConfigError(f"{path}: digits: must be the ten digit characters, 0 to 9, in order")
    words_raw = data.get("number-words") or {}
    if not isinstance(words_raw, dict):
        raise ConfigError(f"{path}: number-words: expected a mapping of number -> word")
    words: dict[int, str] = {}
    for k, v in words_raw.items():
        if not isinstance(k, int) or not NUMBER_MIN <= k <= NUMBER_MAX:
            raise ConfigError(f"{path}: number-words.{k}: not a number {NUMBER_MIN}..{NUMBER_MAX}")
        if not isinstance(v, str) or not _has_words(v):
            raise ConfigError(f"{path}: number-words.{k}: must be a non-empty text")
        words[k] = v
    return NumberSpeech(digits=digits, words=words)
