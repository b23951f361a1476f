"""Waiting on what the app keeps in Redis while calls are in progress, and
killing and restarting the app: shared by the restart and recovery tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from tests.support.stackfix import StackUnderTest


def redis_of(stack: StackUnderTest) -> redis.Redis:
    return redis.Redis(port=stack.stack.ports.redis, decode_responses=True)


def until(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout}s: {what}")
        time.sleep(0.1)


def waiting(stack: StackUnderTest, entity: str = "phcc") -> int:
    r = redis_of(stack)
    try:
        return int(r.zcard("{hotline}:wait:" + entity))
    finally:
        r.close()


def checkpoints(stack: StackUnderTest) -> dict[str, dict[str, str]]:
    """call id -> checkpoint hash, for every interaction the app was driving."""
    r = redis_of(stack)
    try:
        return {cid: r.hgetall("{hotline}:call:" + cid)
                for cid in r.smembers("{hotline}:calls:active")}
    finally:
        r.close()


def call_of(stack: StackUnderTest, caller: str) -> str:
    for cid, cp in checkpoints(stack).items():
        if json.loads(cp.get("record") or "{}").get("caller") == caller:
            return cid
    raise AssertionError(f"no checkpoint for caller {caller}")


def restart(stack: StackUnderTest, between: Callable[[], None] | None = None) -> None:
    stack.stack.kill_app()
    if between is not None:
        between()
    stack.stack.start_app()
