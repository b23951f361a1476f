"""The conversation's states (talking until either side hangs up; the agent's
blind transfer back into another entity's queue) driven by captured transcripts."""

from __future__ import annotations

from ari_app.config.models import HotlineConfig
from ari_app.prompts.catalog import PromptCatalog
from tests.support.replay import Replayed, replay


def _run(name: str, cfg: HotlineConfig, prompts: PromptCatalog, redis_url: str) -> Replayed:
    call = replay(name, cfg, prompts, redis_url)
    call.fake.assert_done()  # every operation the rig saw, with its arguments, in order
    return call


def _ended_with(call: Replayed) -> list[tuple[str, str]]:
    """The operations after the bridge, with the id each one names."""
    start = len(call.ops) - call.ops[::-1].index("add_to_bridge")
    return [(name, str(next(iter(args.values())))) for name, args in call.fake.sent[start:]]


def test_agent_hangs_up_first(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("agent_hangs_up", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert str(rec.outcome) == "answered" and str(rec.hangup_by) == "agent"
    leg = call.fake.sent[call.ops.index("originate")][1]["channel_id"]
    bridge = call.fake.sent[call.ops.index("create_bridge")][1]["bridge_id"]
    # the agent's leg and the bridge go, then the caller is hung up by the app
    assert _ended_with(call) == [("hangup", leg), ("destroy_bridge", bridge),
                                 ("hangup", rec.channel_uniqueid)]
    assert str(call.agents["a014"].state) == "wrapup"
    assert rec.talk_seconds is not None and rec.wrapup_seconds == capture_cfg.queue.wrapup_seconds


def test_caller_hangs_up_first(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("caller_hangs_up", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    assert str(rec.outcome) == "answered" and str(rec.hangup_by) == "caller"
    leg = call.fake.sent[call.ops.index("originate")][1]["channel_id"]
    bridge = call.fake.sent[call.ops.index("create_bridge")][1]["bridge_id"]
    # the caller is gone: only the agent's leg and the bridge are the app's to end
    assert _ended_with(call) == [("hangup", leg), ("destroy_bridge", bridge)]
    assert str(call.agents["a014"].state) == "wrapup"
    assert call.kinds[-1] == "ended"


def test_blind_transfer_requeues_the_caller_for_the_other_entity(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("blind_transfer", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    progress = [args for name, args in call.fake.sent if name == "transfer_progress"]
    first_leg = call.fake.sent[call.ops.index("originate")][1]["channel_id"]
    assert progress == [{"channel_id": first_leg, "state": "channel_answered"}]
    assert [(q.entity, q.result) for q in rec.queue] == [("phcc", "transferred"),
                                                         ("moph", "answered")]
    assert [(o.agent, o.result) for o in rec.offers] == [("a100", "answered"),
                                                         ("a039", "answered")]
    assert rec.entity_path == ["phcc", "moph"] and rec.entity == "moph"
    assert rec.language == "en"  # the same language in the second queue
    assert rec.agent == "a100" and str(rec.outcome) == "answered"  # answered once
    endpoints = [args["endpoint"] for name, args in call.fake.sent if name == "originate"]
    assert endpoints == ["PJSIP/agent-a100", "PJSIP/agent-a039"]
    assert {a: str(s.state) for a, s in call.agents.items()} == {"a100": "wrapup",
                                                                 "a039": "wrapup"}
    assert "transferred" in call.kinds


def _consult_ops(call: Replayed) -> list[tuple[str, object]]:
    """The operations from the consult's start (the caller taken out of the bridge)."""
    start = call.ops.index("remove_from_bridge")
    return [(name, args["endpoint"] if name == "originate"
             else args.get("channel_ids") or args.get("channel_id"))
            for name, args in call.fake.sent[start:]]


def test_consult_then_complete_hands_the_caller_to_the_consulted_agent(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("consult_complete", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    caller = rec.channel_uniqueid
    first, second = (args["channel_id"] for name, args in call.fake.sent
                     if name == "originate")
    # the caller holds with music while a014 (keys *2 832 #) talks to a002 in the
    # bridge; *2 completes: a014's leg goes, the caller rejoins the bridge with a002
    assert _consult_ops(call)[:8] == [
        ("remove_from_bridge", [caller]), ("start_moh", caller),
        ("originate", "PJSIP/agent-a002"), ("add_to_bridge", [second]),
        ("remove_from_bridge", [first]), ("hangup", first), ("stop_moh", caller),
        ("add_to_bridge", [caller])]
    [consult] = rec.consults
    assert (consult.by, consult.target_kind, consult.target, consult.agent,
            consult.result) == ("a014", "entity", "mof", "a002", "completed")
    assert rec.entity == "mof" and rec.entity_path[-1] == "mof"
    assert rec.agent == "a014" and str(rec.hangup_by) == "agent"  # a002 hung up at the end
    assert {a: str(s.state) for a, s in call.agents.items()} == {"a014": "wrapup",
                                                                 "a002": "wrapup"}
    assert call.kinds.count("consulted") == 2  # started, then completed


def test_consult_then_return_to_the_caller(
        capture_cfg: HotlineConfig, capture_prompts: PromptCatalog, redis_url: str) -> None:
    call = _run("consult_return", capture_cfg, capture_prompts, redis_url)
    rec = call.record
    caller = rec.channel_uniqueid
    second = [args["channel_id"] for name, args in call.fake.sent if name == "originate"][1]
    # *1: the consulted leg goes and the caller rejoins a014 in the bridge
    assert _consult_ops(call)[4:7] == [("hangup", second), ("stop_moh", caller),
                                       ("add_to_bridge", [caller])]
    [consult] = rec.consults
    assert (consult.agent, consult.result) == ("a002", "returned")
    assert rec.entity == "phcc" and rec.agent == "a014" and str(rec.hangup_by) == "agent"
    # a colleague's consult is no call of theirs: no wrap-up for a002
    assert {a: str(s.state) for a, s in call.agents.items()} == {"a014": "wrapup",
                                                                 "a002": "available"}
