"""The fake ARI's replay rules and the virtual clock the state tests run under."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ari_app.ari.client import AriClient, AriError
from tests.support import virtual_clock
from tests.support.fake_ari import FakeAri, TranscriptMismatch


def _transcript(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"scenario": "t", "steps": list(steps)}


START = {"event": {"type": "StasisStart", "channel": {"id": "<chan:1>"}}}
PLAY = {"op": "play", "args": {"channel_id": "<chan:1>", "media": ["sound:hotline/welcome"],
                               "lang": "ar", "playback_id": "<pb:1>"}, "result": None}
FINISHED = {"event": {"type": "PlaybackFinished", "playback": {"id": "<pb:1>"}}}
HANGUP = {"op": "hangup", "args": {"channel_id": "<chan:1>", "reason": "normal"},
          "result": None}


def _fake(*steps: dict[str, Any]) -> tuple[FakeAri, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    fake = FakeAri(_transcript(*steps))
    fake.start(got.append)
    return fake, got


async def test_replays_operations_and_delivers_the_events_after_each() -> None:
    fake, got = _fake(START, PLAY, FINISHED, HANGUP)
    assert isinstance(fake, AriClient)
    assert got == [START["event"]]
    await fake.play("<chan:1>", ["sound:hotline/welcome"], "ar", "abc-pb7")
    # the app's own playback id, bound on the way in, comes back in the event
    assert got[-1] == {"type": "PlaybackFinished", "playback": {"id": "abc-pb7"}}
    await fake.hangup("<chan:1>")
    fake.assert_done()
    assert [name for name, _ in fake.sent] == ["play", "hangup"]


async def test_an_unexpected_operation_fails_naming_the_step() -> None:
    fake, _ = _fake(START, PLAY, FINISHED, HANGUP)
    with pytest.raises(TranscriptMismatch, match=r"unexpected operation answer.*step 1 play"):
        await fake.answer("<chan:1>")
    with pytest.raises(TranscriptMismatch):  # kept, even if the app swallowed it
        fake.assert_done()


async def test_a_wrong_argument_fails_and_says_which() -> None:
    fake, _ = _fake(START, PLAY, HANGUP)
    with pytest.raises(TranscriptMismatch, match=r"argument 'lang': 'en' != 'ar'"):
        await fake.play("<chan:1>", ["sound:hotline/welcome"], "en", "p1")


async def test_an_asterisk_id_must_be_the_one_delivered() -> None:
    fake, _ = _fake(START, HANGUP)
    with pytest.raises(TranscriptMismatch, match="channel_id"):
        await fake.hangup("<chan:2>")


async def test_a_missing_operation_fails_at_the_end() -> None:
    fake, _ = _fake(START, PLAY, FINISHED, HANGUP)
    await fake.play("<chan:1>", ["sound:hotline/welcome"], "ar", "p1")
    with pytest.raises(TranscriptMismatch,
                       match=r"missing operation: step 3 hangup.*never sent"):
        fake.assert_done()


async def test_an_operation_after_the_last_one_fails() -> None:
    fake, _ = _fake(START, HANGUP)
    await fake.hangup("<chan:1>")
    with pytest.raises(TranscriptMismatch, match="after the transcript's last operation"):
        await fake.hangup("<chan:1>")


async def test_a_recorded_error_is_raised_with_its_status() -> None:
    fake, _ = _fake(START, {"op": "answer", "args": {"channel_id": "<chan:1>"},
                            "error": {"status": 404, "message": "ARI channels.answer "
                                      "failed (404): Channel not found"}})
    with pytest.raises(AriError, match=r"\(404\): Channel not found") as err:
        await fake.answer("<chan:1>")
    assert err.value.status == 404
    fake.assert_done()


async def test_operations_in_flight_together_may_come_in_either_order() -> None:
    a = {"op": "hangup", "args": {"channel_id": "<call:1>-a1", "reason": "normal"},
         "result": None, "group": 1}
    b = {"op": "destroy_bridge", "args": {"bridge_id": "<call:1>-br1"}, "result": None,
         "group": 1}
    fake, got = _fake(START, a, {"event": {"type": "ChannelDestroyed"}}, b)
    await fake.destroy_bridge("c0ffee-br1")
    assert got == [START["event"]]  # a's events wait for a
    await fake.hangup("c0ffee-a1")
    assert got[-1] == {"type": "ChannelDestroyed"}
    fake.assert_done()
    assert fake.bindings["<call:1>"] == "c0ffee"


async def test_a_hook_runs_while_the_app_waits_in_that_operation() -> None:
    fake, got = _fake(START, PLAY, FINISHED, HANGUP)
    seen: list[int] = []

    async def hook(f: FakeAri) -> None:
        seen.append(len(got))  # before the operation's events

    fake.on_op(fake.nth_op("hangup"), hook)
    await fake.play("<chan:1>", ["sound:hotline/welcome"], "ar", "p1")
    await fake.hangup("<chan:1>")
    assert seen == [2]


# -- the virtual clock -------------------------------------------------------------------

def test_timers_and_the_apps_clock_run_virtually() -> None:
    from ari_app.interactions import session as app_module  # reads time.monotonic

    async def main() -> tuple[float, float]:
        t0 = app_module.time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 3600)
        await asyncio.sleep(10)
        return t0, app_module.time.monotonic()

    started = time.monotonic()
    t0, t1 = virtual_clock.run(main(), virtual_clock.VirtualClock(limit=4000))
    assert t1 - t0 == pytest.approx(3610)
    assert time.monotonic() - started < 0.5
    assert app_module.time is time  # restored


def test_a_redis_reply_is_never_overtaken_by_a_timer(redis_url: str) -> None:
    clock = virtual_clock.VirtualClock()
    order: list[str] = []

    async def main() -> None:
        redis = virtual_clock.tracked_redis(redis_url, clock)
        await redis.ping()

        async def timer() -> None:
            await asyncio.sleep(0.01)
            order.append("timer")

        task = asyncio.create_task(timer())
        await redis.blpop(["nothing-here"], timeout=0.3)  # the server answers after 0.3 s
        order.append("reply")
        await task
        await redis.aclose()

    virtual_clock.run(main(), clock)
    assert order == ["reply", "timer"]


def test_waiting_for_something_that_never_comes_fails_instead_of_hanging() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    started = time.monotonic()
    with pytest.raises(virtual_clock.VirtualTimeout, match="never comes"):
        virtual_clock.run(main(), virtual_clock.VirtualClock(stall=0.3))
    assert time.monotonic() - started < 3


def test_endless_timers_stop_at_the_limit() -> None:
    async def main() -> None:
        while True:
            await asyncio.sleep(60)

    with pytest.raises(virtual_clock.VirtualTimeout, match="ran past"):
        virtual_clock.run(main(), virtual_clock.VirtualClock(limit=600))


async def test_an_action_runs_where_the_capture_did_it() -> None:
    steps = (START, PLAY, {"action": "resume", "agent": "a014"}, FINISHED, HANGUP)
    got: list[dict[str, Any]] = []
    fake = FakeAri(_transcript(*steps))
    with pytest.raises(ValueError, match=r"actions \['resume'\]"):
        fake.start(got.append)
    done: list[tuple[str, int]] = []

    async def resume(step: dict[str, Any]) -> None:
        done.append((step["agent"], len(got)))

    fake.on_action("resume", resume)
    fake.start(got.append)
    assert done == []
    await fake.play("<chan:1>", ["sound:hotline/welcome"], "ar", "p1")
    assert fake.action_tasks and got[-1]["type"] == "StasisStart"  # held for the action
    await asyncio.gather(*fake.action_tasks)
    await asyncio.sleep(0)  # its done-callback delivers what came after it
    assert done == [("a014", 1)]  # after the play, before the PlaybackFinished
    assert got[-1]["type"] == "PlaybackFinished"
    await fake.hangup("<chan:1>")
    fake.assert_done()
