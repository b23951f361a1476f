"""The journey's states (answer, route, language menu, welcome back, entity menu,
chosen) driven by captured transcripts: what they send to Asterisk, what they
record, which events they emit."""

from __future__ import annotations

from ari_app.config.models import HotlineConfig
from ari_app.prompts.catalog import PromptCatalog
from tests.support.replay import Replayed, replay


def _run(name: str, cfg: HotlineConfig, prompts: PromptCatalog, redis_url: str) -> Replayed:
    call = replay(name, cfg, prompts, redis_url)
    call.fake.assert_done()  # every operation the rig saw, with its arguments, in order
    return call


def _heard(call: Replayed, lang: str) -> list[str]:
    return [p.split(":", 1)[1] for p in call.record.prompts if p.startswith(lang + ":")]


def test_language_by_digit_then_other_departments(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("language_digit", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert (rec.language, str(rec.language_source)) == ("en", "digit")
    assert rec.entity == "other" and rec.entity_path == ["other"] and rec.digits == "20"
    # the welcome in the default language, barged in by 2: then the menu in English
    assert call.ops[:4] == ["answer", "play", "stop_playback", "play"]
    assert call.fake.sent[1][1]["lang"] == "ar" and call.fake.sent[3][1]["lang"] == "en"
    assert call.kinds == ["arrived", "language_chosen", "entity_chosen", "queued", "ended"]
    assert str(rec.outcome) == "no_agent_fallback"  # nobody logged in to take it


def test_invalid_key_then_a_valid_one(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("invalid_then_valid", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert rec.menu_retries == 1 and rec.digits.startswith("02")
    assert "hotline/invalid" in _heard(call, "ar")
    assert (rec.language, str(rec.language_source)) == ("en", "digit")


def test_silence_falls_back_to_the_defaults(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("silence_defaults", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert (rec.language, str(rec.language_source)) == (capture_cfg.default_language,
                                                         "default")
    assert rec.entity == capture_cfg.other_departments.id and rec.digits == ""
    assert rec.menu_retries == 2 * capture_cfg.timers.tries  # both menus, every try
    assert _heard(call, "ar").count("hotline/no-input") == 2
    # the waits for a key are timers: virtual time, not the rig's minutes
    assert call.seconds < 1.0


def test_star_goes_back_to_the_top_menu(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("back_with_star", capture_cfg, capture_prompts, redis_url)
    assert call.record.entity_path == ["other"]
    assert _heard(call, "en").count("hotline/menu-intro") == 3  # top, health, top again


def test_returning_caller_is_welcomed_back_in_their_language(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("returning_caller", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert (rec.language, str(rec.language_source)) == ("ta", "remembered")
    assert "hotline/welcome-back" in _heard(call, "ta")
    assert not any(p.endswith("hotline/language-option") for p in rec.prompts)
    assert call.fake.sent[1][1]["lang"] == "ta"  # the first prompt is already in Tamil
