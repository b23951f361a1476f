"""The queue's states (queued: music, the position announcement; ringing: an
answer, a ring-out) driven by captured transcripts, with the agent pool, the
waiting queues and the dispatcher in a real Redis."""

from __future__ import annotations

from typing import Any

from ari_app.config.models import HotlineConfig
from ari_app.prompts.catalog import PromptCatalog
from tests.support.replay import Replayed, replay


def _run(name: str, cfg: HotlineConfig, prompts: PromptCatalog, redis_url: str) -> Replayed:
    call = replay(name, cfg, prompts, redis_url)
    call.fake.assert_done()  # every operation the rig saw, with its arguments, in order
    assert call.waiting == 0  # nobody left in a queue
    return call


def _after(call: Replayed, op: str, k: int = 1) -> list[str]:
    """The operations the app sent after its k-th `op`."""
    seen = [i for i, name in enumerate(call.ops) if name == op]
    return call.ops[seen[k - 1] + 1:]


def _offers(call: Replayed) -> list[tuple[str, str | None]]:
    return [(o.agent, o.result) for o in call.record.offers]


def _state(call: Replayed, agent: str) -> tuple[str, str | None]:
    st = call.agents[agent]
    return str(st.state), st.reason


def test_waiting_caller_hears_music_and_their_position_then_is_answered(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("queue_announcement", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    # music, stopped for the announcement of position 1, then music again until the offer
    assert _after(call, "start_moh")[:3] == ["stop_moh", "play", "start_moh"]
    announcement = call.fake.sent[call.ops.index("stop_moh") + 1][1]
    assert announcement["media"] == ["sound:hotline/queue-position-before",
                                     "sound:hotline/num/1", "sound:hotline/queue-position-after"]
    assert announcement["lang"] == "en"
    assert _after(call, "start_moh", 2)[0] == "originate"
    assert [(q.entity, q.result) for q in rec.queue] == [("phcc", "answered")]
    assert _offers(call) == [("a014", "answered")]
    assert call.kinds[:4] == ["arrived", "language_chosen", "entity_chosen", "queued"]
    assert "offered" in call.kinds and "agent_answered" in call.kinds


def test_an_offer_stops_the_announcement_at_once(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("offer_during_announcement", capture_cfg, capture_prompts, redis_url)
    played = [args for name, args in call.fake.sent if name == "play"]
    stopped = [args for name, args in call.fake.sent if name == "stop_playback"]
    # the announcement's playback is the one stopped, then the agent is rung
    assert stopped[-1]["playback_id"] == played[-1]["playback_id"]
    assert _after(call, "stop_playback", 2)[:2] == ["start_moh", "originate"]
    assert _offers(call) == [("a014", "answered")]


def test_caller_who_hangs_up_in_the_queue_is_abandoned_and_leaves_it(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("hangup_in_queue", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert str(rec.outcome) == "abandoned_in_queue" and str(rec.hangup_by) == "caller"
    assert [(q.entity, q.result) for q in rec.queue] == [("phcc", "abandoned")]
    assert rec.queue[0].left_at is not None and rec.offers == []
    assert _state(call, "a014") == ("paused", "break")  # untouched: never offered


def test_ringing_agent_answers_and_is_bridged(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("caller_hangs_up", capture_cfg, capture_prompts, redis_url)
    originate = call.fake.sent[call.ops.index("originate")][1]
    assert originate["endpoint"] == "PJSIP/agent-a014"
    assert originate["app_args"].startswith("agent,")
    assert originate["ring_seconds"] == int(capture_cfg.queue.ring_timeout)
    # the agent's leg answered (its StasisStart): transfers handled by the app, bridged
    assert _after(call, "originate")[:4] == ["set_var", "create_bridge", "stop_moh",
                                             "add_to_bridge"]
    bridged: dict[str, Any] = call.fake.sent[call.ops.index("add_to_bridge")][1]
    assert bridged["channel_ids"] == [call.record.channel_uniqueid, originate["channel_id"]]
    assert call.record.agent == "a014" and call.record.speed_of_answer is not None


def test_agent_who_does_not_answer_is_paused_and_the_next_one_rings(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("ring_no_answer", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert _offers(call) == [("a100", "no_answer"), ("a014", "answered")]
    endpoints = [args["endpoint"] for name, args in call.fake.sent if name == "originate"]
    assert endpoints == ["PJSIP/agent-a100", "PJSIP/agent-a014"]
    assert _state(call, "a100") == ("paused", "missed_call")
    assert _state(call, "a014")[0] == "wrapup"
    assert rec.agent == "a014" and str(rec.outcome) == "answered"
    assert call.kinds.count("offered") == 2
