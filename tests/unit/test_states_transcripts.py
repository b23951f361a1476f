"""Every captured transcript, replayed through the interaction model, sends exactly
the operations the app sent on the rig and ends in the record and the events the
rig's app published (tests/unit/transcripts/README.md)."""

from __future__ import annotations

import pytest

from ari_app.config.models import HotlineConfig
from ari_app.prompts.catalog import PromptCatalog
from tests.support.replay import TRANSCRIPTS, comparable, replay

NAMES = sorted(p.stem for p in TRANSCRIPTS.glob("*.json"))


@pytest.mark.parametrize("name", NAMES)
def test_replay_reproduces_what_the_rig_recorded(
        name: str, capture_cfg: HotlineConfig, capture_prompts: PromptCatalog,
        redis_url: str) -> None:
    call = replay(name, capture_cfg, capture_prompts, redis_url)
    call.fake.assert_done()
    oracle = call.fake.transcript
    assert comparable(call.record.model_dump(mode="json")) == comparable(oracle["record"])
    assert call.kinds == [e["kind"] for e in oracle["events"]]
    assert call.waiting == 0
    assert call.seconds < 1.0, f"{name} took {call.seconds:.2f} s"
