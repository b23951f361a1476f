"""The ARI client's own rules: one retry for a lost answer or a 5xx, a repeat that
finds the work done counts as done, 4xx is never retried, and a request made
during a reconnect waits for it. (The call path is tested against the real
Asterisk; this is the client's logic alone.)"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from ari_app.ari.client import AriClient, AriError, AriNotConnected


class _Repo:
    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    def __getattr__(self, op: str) -> Any:
        async def call(**kw: Any) -> Any:
            self.calls += 1
            out = self.outcomes.pop(0)
            if isinstance(out, BaseException):
                raise out
            return out
        return call


class _Raw:
    def __init__(self, outcomes: list[Any]) -> None:
        self.channels = self.bridges = self.playbacks = _Repo(outcomes)


def _status(code: int) -> httpx.HTTPStatusError:
    req = httpx.Request("POST", "http://ari/")
    return httpx.HTTPStatusError("x", request=req, response=httpx.Response(code, request=req))


async def test_a_5xx_or_a_lost_answer_is_tried_once_more() -> None:
    raw = _Raw([_status(500), None])
    await AriClient(raw).answer("c1")  # type: ignore[arg-type]
    assert raw.channels.calls == 2
    raw = _Raw([httpx.ReadTimeout("lost"), None])
    await AriClient(raw).start_moh("c1")  # type: ignore[arg-type]
    assert raw.channels.calls == 2


async def test_twice_failed_is_an_error() -> None:
    raw = _Raw([_status(500), _status(500)])
    with pytest.raises(AriError) as e:
        await AriClient(raw).answer("c1")  # type: ignore[arg-type]
    assert e.value.status == 500 and raw.channels.calls == 2


async def test_a_4xx_is_not_retried() -> None:
    raw = _Raw([_status(404)])
    with pytest.raises(AriError) as e:
        await AriClient(raw).answer("c1")  # type: ignore[arg-type]
    assert e.value.status == 404 and raw.channels.calls == 1


async def test_a_repeat_that_finds_the_channel_made_is_success() -> None:
    # the first originate reached Asterisk but its answer was lost; the repeat is 409
    raw = _Raw([httpx.ReadTimeout("lost"), _status(409)])
    await AriClient(raw).originate("PJSIP/a", "id-a1", "hotline", "agent,x", 5, "x")  # type: ignore[arg-type]
    assert raw.channels.calls == 2
    # a 409 for an operation that creates nothing is an error
    raw = _Raw([_status(500), _status(409)])
    with pytest.raises(AriError):
        await AriClient(raw).answer("c1")  # type: ignore[arg-type]


async def test_a_request_during_a_reconnect_waits_for_it() -> None:
    client = AriClient(_Raw([None]), reconnect_wait=2.0)  # type: ignore[arg-type]
    client.detach()
    task = asyncio.ensure_future(client.answer("c1"))
    await asyncio.sleep(0.05)
    assert not task.done()
    client.attach(_Raw([None]))  # type: ignore[arg-type]
    await asyncio.wait_for(task, 1.0)
    client.detach()
    slow = AriClient(None, reconnect_wait=0.05)
    with pytest.raises(AriNotConnected):
        await slow.answer("c1")


async def test_an_originate_asterisk_refused_is_not_repeated() -> None:
    """A 500 to an originate is Asterisk failing to make the channel (the agent's
    phone unreachable): the next agent must not wait for a pointless repeat."""
    raw = _Raw([_status(500)])
    with pytest.raises(AriError) as e:
        await AriClient(raw).originate("PJSIP/a", "id-a1", "hotline", "agent,x", 5, "x")  # type: ignore[arg-type]
    assert e.value.status == 500 and raw.channels.calls == 1
