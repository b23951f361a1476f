"""Routing steps widen with the wait, from the config."""

from __future__ import annotations

import pytest

from ari_app.agents.pool import CandidateQuery
from ari_app.config.models import HotlineConfig
from ari_app.config.queue import EntityQueue, QueueSettings, RoutingSteps, ToEntity
from ari_app.queue.routing import next_step_in, steps_for

LANGS = [("ar", "1", "ar"), ("en", "2", "en"), ("ur", "3", "ur")]


def cfg() -> HotlineConfig:
    names = {c: c for c, _, _ in LANGS}
    return HotlineConfig.model_validate({
        "languages": [
            {"code": c, "name": c, "english_name": c, "digit": d, "voice": v} for c, d, v in LANGS
        ],
        "default_language": "ar",
        "menu": {"id": "main", "names": names, "options": [
            {"digit": "1", "menu": {"id": "health", "names": names, "options": [
                {"digit": "1", "entity": {"id": "phcc", "names": names}},
                {"digit": "2", "entity": {"id": "hmc", "names": names, "skill": "hmc_care"}},
            ]}},
            {"digit": "2", "entity": {"id": "moi", "names": names}},
        ]},
        "other_departments": {"id": "other", "names": names},
        "numbers": {"109": {"journey": "full"}},
    })


S = QueueSettings(routing=RoutingSteps(sector_after=30, fallback_language_after=60))


def test_step0_only_at_first() -> None:
    assert steps_for(cfg(), "phcc", "ur", 0, S) == [CandidateQuery(("phcc",), ("ur",), None, 0)]


def test_entity_skill_name_and_id_both_count() -> None:
    assert steps_for(cfg(), "hmc", "ur", 0, S)[0].skills == ("hmc_care", "hmc")


def test_widening() -> None:
    c = cfg()
    assert [q.step for q in steps_for(c, "phcc", "ur", 29.9, S)] == [0]
    s1 = steps_for(c, "phcc", "ur", 30, S)
    assert s1[1] == CandidateQuery(("phcc", "health"), ("ur",), None, 1)
    s2 = steps_for(c, "phcc", "ur", 61, S)
    assert s2[2] == CandidateQuery(("phcc",), ("ar", "en"), None, 2)
    # Arabic caller: step 2 adds only English.
    assert steps_for(c, "phcc", "ar", 61, S)[2].languages == ("en",)


def test_no_sector_step_for_a_top_level_entity() -> None:
    assert [q.step for q in steps_for(cfg(), "moi", "ur", 100, S)] == [0, 2]
    assert next_step_in(cfg(), "moi", 10, S) == 50
    assert next_step_in(cfg(), "phcc", 10, S) == 20
    assert next_step_in(cfg(), "phcc", 70, S) is None


def test_per_entity_overrides() -> None:
    s = QueueSettings(
        site_preference="doha_hq",
        entities={"moi": EntityQueue(site="lusail", priority=3,
                                     routing=RoutingSteps(sector_after=0,
                                                          fallback_language_after=5),
                                     fallback=ToEntity(entity="other"))},
    )
    assert [q.step for q in steps_for(cfg(), "moi", "ur", 5, s)] == [0, 2]
    assert steps_for(cfg(), "moi", "ur", 0, s)[0].site == "lusail"
    assert steps_for(cfg(), "phcc", "ur", 0, s)[0].site == "doha_hq"
    assert s.priority_for("moi") == 3 and s.priority_for("phcc") == 0
    assert s.fallback_for("moi") == ToEntity(entity="other")
    assert s.fallback_for("phcc").kind == "message"


def test_settings_problems() -> None:
    s = QueueSettings(
        site_preference="nowhere",
        entities={"ghost": EntityQueue(), "moi": EntityQueue(fallback=ToEntity(entity="moi"))},
        routing=RoutingSteps(fallback_languages=("ar", "xx")),
    )
    probs = s.problems({"moi", "phcc"}, {"doha_hq"}, {"ar", "en"})
    assert any("ghost" in p for p in probs)
    assert any("nowhere" in p for p in probs)
    assert any("itself" in p for p in probs)
    assert any("xx" in p for p in probs)


def test_steps_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="before"):
        RoutingSteps(sector_after=60, fallback_language_after=30)
