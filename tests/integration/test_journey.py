"""Issue 3: the language menu and the entity menu tree, with SIPp callers."""

from __future__ import annotations

import pytest

from ari_app.config.loader import load_config
from tests.support.stackfix import StackUnderTest

CFG = load_config("config/hotline.yaml")
MENU_END = {"completed_in_menu", "no_agent_fallback"}


def _prompts(rec: dict, lang: str) -> list[str]:
    return [p.split(":", 1)[1] for p in rec["prompts"] if p.startswith(lang + ":")]


@pytest.mark.parametrize("lang", CFG.languages, ids=lambda lang: lang.code)
def test_each_language_digit_lands_in_that_language(stack: StackUnderTest, lang) -> None:
    res, caller = stack.call(f"wait:400,dtmf:{lang.digit},wait:700,dtmf:0,expect_bye")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["language"] == lang.code
    assert rec["language_source"] == "digit"
    assert "hotline/menu-intro" in _prompts(rec, lang.code)
    assert rec["entity"] == "other" and rec["outcome"] in MENU_END


def test_invalid_digit_then_valid(stack: StackUnderTest) -> None:
    res, caller = stack.call("wait:400,dtmf:0,wait:2500,dtmf:2,wait:700,dtmf:0,expect_bye")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["menu_retries"] == 1
    assert "hotline/invalid" in _prompts(rec, CFG.default_language)
    assert rec["language"] == "en" and rec["language_source"] == "digit"


def test_silence_falls_back_to_default_language_then_other_departments(
        stack: StackUnderTest) -> None:
    res, caller = stack.call("expect_bye:180000", timeout=200)
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["language"] == CFG.default_language
    assert rec["language_source"] == "default"
    assert rec["entity"] == CFG.other_departments.id
    assert rec["menu_retries"] >= 4  # two tries in each menu


def test_star_goes_back_one_level(stack: StackUnderTest) -> None:
    res, caller = stack.call("wait:400,dtmf:2,wait:600,dtmf:1,wait:600,dtmf:*,"
                             "wait:600,dtmf:0,expect_bye")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["entity_path"] == ["other"]
    assert _prompts(rec, "en").count("hotline/menu-intro") == 3  # top, health, top again


def test_barge_in_during_welcome_stops_the_prompt(stack: StackUnderTest) -> None:
    res, caller = stack.call("wait:300,dtmf:2,wait:600,dtmf:0,expect_bye")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    # the key pressed during the welcome interrupted it: no language option was played
    assert not any(p.endswith("hotline/language-option") for p in rec["prompts"])
    assert rec["language"] == "en"


def test_returning_caller_skips_language_menu(stack: StackUnderTest) -> None:
    caller = stack.new_caller()
    res, _ = stack.call("wait:400,dtmf:8,wait:700,dtmf:0,expect_bye", caller=caller)
    assert res.ok, res.stderr
    assert stack.record_for(caller)["language"] == "ta"
    res, _ = stack.call("wait:2500,dtmf:0,expect_bye", caller=caller)
    assert res.ok, res.stderr
    second = stack.records_for(caller)[-1]
    assert second["language"] == "ta" and second["language_source"] == "remembered"
    assert "hotline/welcome-back" in _prompts(second, "ta")
    assert not any(p.endswith("hotline/language-option") for p in second["prompts"])


def test_blocked_number_never_reaches_the_app(stack: StackUnderTest) -> None:
    res, caller = stack.call("expect_bye:30000", caller="97400000666")
    assert res.ok, res.stderr
    assert stack.records_for(caller) == []
    assert stack.log_lines(event="agi.lookup", blocked=True)


def test_hangup_in_entity_menu_is_abandoned_in_menu(stack: StackUnderTest) -> None:
    res, caller = stack.call("wait:400,dtmf:2,wait:1500,hangup")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["outcome"] == "abandoned_in_menu"
    assert rec["hangup_by"] == "caller"
    assert rec["language"] == "en" and rec["entity"] is None


def test_dialled_number_maps_straight_to_an_entity(stack: StackUnderTest) -> None:
    res, caller = stack.call("wait:400,dtmf:2,expect_bye", number="1091")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["dialled"] == "1091"
    assert rec["entity"] == "phcc" and rec["entity_path"] == ["phcc"]
    assert "hotline/menu-intro" not in _prompts(rec, "en")


def test_dialled_number_maps_to_a_language(stack: StackUnderTest) -> None:
    res, caller = stack.call("wait:1500,dtmf:0,expect_bye", number="1092")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["language"] == "en" and rec["language_source"] == "number"
