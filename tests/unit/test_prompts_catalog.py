"""The prompt catalog: every name the call flow plays exists in every language."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ari_app.config import ConfigError, HotlineConfig, load_config
from ari_app.prompts.catalog import REQUIRED_KEYS, PromptCatalog

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "hotline.yaml"
PROMPTS = REPO / "config" / "prompts"

FIXED = [
    "welcome", "language-option", "welcome-back", "other-language", "menu-intro",
    "option-other", "back-repeat", "invalid", "no-input", "you-chose", "goodbye", "blocked",
    "unavailable", "you-pressed", "queue-hold", "wait-less-than-minute", "minutes", "seconds",
    "no-agents", "max-wait", "connecting", "transfer",
]  # fmt: skip


@pytest.fixture(scope="module")
def cfg() -> HotlineConfig:
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def catalog(cfg: HotlineConfig) -> PromptCatalog:
    return PromptCatalog.load(cfg, PROMPTS)


def test_every_language_has_a_file(cfg: HotlineConfig, catalog: PromptCatalog) -> None:
    assert sorted(catalog.languages) == sorted(lang.code for lang in cfg.languages)
    for lang in cfg.languages:
        assert (PROMPTS / f"{lang.code}.yaml").is_file()
        assert catalog.voice(lang.code) == lang.voice


def test_every_required_name_in_every_language(cfg: HotlineConfig, catalog: PromptCatalog) -> None:
    for lang in cfg.languages:
        names = catalog.names(lang.code)
        want = set(FIXED)
        want |= {f"option-{m.id}" for m in cfg.menus if m.id != cfg.menu.id}
        want |= {f"option-{e.id}" for e in cfg.entities}
        want |= {f"entity-{e.id}" for e in cfg.entities}
        want |= {f"num/{n}" for n in range(1000)}
        want |= {"queue-position-before", "wait-about-before"}
        missing = want - names
        assert not missing, f"{lang.code}: missing {sorted(missing)[:10]}"
        for n in (0, 1, 42, 999):
            assert catalog.say(lang.code, "queue-position", n)[0] == "queue-position-before"
            assert f"num/{n}" in catalog.say(lang.code, "wait-about", n)


def test_texts_name_the_digit_and_name(cfg: HotlineConfig, catalog: PromptCatalog) -> None:
    en = "en"
    assert catalog.text(en, "welcome") == "Welcome to 109, the government contact center."
    assert catalog.text(en, "language-option") == "For English, press 2."
    assert catalog.text(en, "option-phcc") == "For Primary Health Care Corporation, press 1."
    assert catalog.text(en, "option-health") == "For Health, press 1."
    assert catalog.text(en, "option-other") == "For Other departments, press 0."
    assert catalog.text(en, "other-language") == "For another language, press 9."
    assert catalog.text(en, "entity-moph") == "Ministry of Public Health"
    assert catalog.text(en, "num/123") == "123"
    for lang in cfg.languages:
        phcc = cfg.entity("phcc").names[lang.code]
        assert phcc in catalog.text(lang.code, "option-phcc")
        assert catalog.text(lang.code, "entity-phcc") == phcc
        # The language's digit, in ASCII or Devanagari (Nepali); the name may be inflected.
        forms = {lang.digit, "०१२३४५६७८९"[int(lang.digit)]}
        assert any(f in catalog.text(lang.code, "language-option") for f in forms)


def test_numbers_use_the_voice_friendly_form(catalog: PromptCatalog) -> None:
    assert catalog.text("ne", "num/109") == "१०९"  # the Nepali voice reads ASCII digits in English
    assert "१०९" in catalog.text("ne", "welcome")
    assert catalog.text("si", "num/7") == "හත"  # espeak-ng's si voice misreads a lone 7
    assert catalog.text("si", "num/17") == "17"


def test_say_orders_template_parts(catalog: PromptCatalog) -> None:
    assert catalog.say("en", "queue-position", 3) == [
        "queue-position-before",
        "num/3",
        "queue-position-after",
    ]
    assert catalog.text("en", "queue-position-before") == "You are number"
    assert catalog.text("en", "queue-position-after") == "in the queue."
    # Hindi puts the number mid-sentence: both parts exist.
    assert catalog.say("hi", "wait-about", 5) == ["wait-about-before", "num/5", "wait-about-after"]
    assert catalog.text("hi", "wait-about-after") == "मिनट है।"
    # Arabic and Tamil end on the number: the empty "after" part is absent.
    assert catalog.say("ar", "queue-position", 7) == ["queue-position-before", "num/7"]
    assert "queue-position-after" not in catalog.names("ar")
    assert "queue-position" not in catalog.names("en")


def test_say_plain_and_errors(catalog: PromptCatalog) -> None:
    assert catalog.say("ta", "welcome") == ["welcome"]
    assert catalog.say("en", "entity-other") == ["entity-other"]
    with pytest.raises(ValueError, match="needs a number"):
        catalog.say("en", "queue-position")
    with pytest.raises(ValueError, match="takes no number"):
        catalog.say("en", "welcome", 3)
    with pytest.raises(ValueError, match="outside"):
        catalog.say("en", "queue-position", 1000)
    with pytest.raises(KeyError):
        catalog.say("en", "no-such-prompt")
    with pytest.raises(KeyError):
        catalog.say("xx", "welcome")


def _copy_prompts(tmp_path: Path) -> Path:
    d = tmp_path / "prompts"
    shutil.copytree(PROMPTS, d)
    return d


def _edit(path: Path, edit: object) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_missing_file_names_the_file(cfg: HotlineConfig, tmp_path: Path) -> None:
    d = _copy_prompts(tmp_path)
    (d / "ta.yaml").unlink()
    with pytest.raises(ConfigError, match=r"ta\.yaml: file not found"):
        PromptCatalog.load(cfg, d)


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_key_names_file_and_key(cfg: HotlineConfig, tmp_path: Path, key: str) -> None:
    d = _copy_prompts(tmp_path)
    _edit(d / "bn.yaml", lambda data: data["prompts"].pop(key))
    with pytest.raises(ConfigError, match=rf"bn\.yaml: prompts\.{key}: missing"):
        PromptCatalog.load(cfg, d)


@pytest.mark.parametrize(
    ("key", "text", "reason"),
    [
        ("queue-position", "You are next.", r"must contain \{n\} exactly once"),
        ("option", "Press {digit}.", r"must contain \{name\} exactly once"),
        ("welcome", "Hello {n}.", r"unknown placeholder \{n\}"),
        ("invalid", " . ", "must be a non-empty text"),
        ("welcom", "Hello.", "unknown prompt key"),
        ("option-nosuch", "For X, press {digit}.", "no menu entry with that id"),
    ],
)
def test_bad_text_refused(
    cfg: HotlineConfig, tmp_path: Path, key: str, text: str, reason: str
) -> None:
    d = _copy_prompts(tmp_path)
    _edit(d / "en.yaml", lambda data: data["prompts"].__setitem__(key, text))
    with pytest.raises(ConfigError, match=rf"en\.yaml: prompts\.{key}: {reason}"):
        PromptCatalog.load(cfg, d)
