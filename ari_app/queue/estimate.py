"""Expected wait, and how to say it without promising more than the data supports.

The estimate is position x mean handle time / agents serving, which is what a
caller at that place in line would wait if agents free up at their recent
average rate. Handle time is an exponentially weighted mean so one long call
moves it a little, not a lot; and per caller the spoken figure is smoothed so
it does not jump between announcements. With too few samples, or nobody
logged in to serve, there is no estimate at all: silence is better than a
number we cannot stand behind.

`WaitEstimator` is the arithmetic, in memory (the simulator uses it as is).
`SharedWaitEstimator` keeps the series in Redis, so every instance and site
gives the same figure and a restart keeps it: see its docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from ari_app.logs import get_logger

log = get_logger("queue.estimate")
KEEP_SECONDS = 30 * 86400


@dataclass
class _Series:
    mean: float | None = None
    count: int = 0

    def add(self, x: float, alpha: float) -> None:
        self.mean = x if self.mean is None else (1 - alpha) * self.mean + alpha * x
        self.count += 1


@dataclass
class WaitEstimator:
    alpha: float = 0.1
    min_samples: int = 5
    max_seconds: float = 3600.0
    smoothing: float = 0.5
    _handle: dict[str, _Series] = field(default_factory=dict)
    _answer: dict[str, _Series] = field(default_factory=dict)

    def record_handle_time(self, entity: str, seconds: float) -> None:
        """Talk + wrap-up of one answered call of this entity."""
        if seconds > 0:
            self._handle.setdefault(entity, _Series()).add(
                min(seconds, self.max_seconds), self.alpha
            )

    def record_answer_wait(self, entity: str, seconds: float) -> None:
        """How long an answered caller waited; a check on the model, see `estimate`."""
        if seconds >= 0:
            self._answer.setdefault(entity, _Series()).add(
                min(seconds, self.max_seconds), self.alpha
            )

    def handle_time(self, entity: str) -> float | None:
        s = self._handle.get(entity)
        return s.mean if s and s.count >= self.min_samples else None

    def estimate(
        self,
        entity: str,
        position: int,
        serving_agents: int,
        available_agents: int = 0,
        previous: float | None = None,
    ) -> float | None:
        """Seconds this caller can expect to wait, or None when we cannot say.

        `serving_agents`: logged in (not paused) and able to take this caller;
        `available_agents`: of those, idle now. `previous`: the last figure
        given to this caller, to smooth toward."""
        aht = self.handle_time(entity)
        if aht is None or serving_agents <= 0 or position <= 0:
            return None
        ahead = max(0, position - available_agents)
        model = ahead * aht / serving_agents
        seen = self._answer.get(entity)
        if seen and seen.mean is not None and seen.count >= self.min_samples and position == 1:
            # At the head of the line the recent answer waits are direct evidence.
            model = max(model, min(seen.mean, aht))
        est = (
            model if previous is None else (1 - self.smoothing) * previous + self.smoothing * model
        )
        return max(0.0, min(est, self.max_seconds))


# ARGV: alpha, ttl, then (series, entity, seconds)...; the samples in order,
# each one EWMA step, then every series back. KEYS[1]: the estimates hash.
_APPLY = r"""
local key, alpha = KEYS[1], tonumber(ARGV[1])
for i = 3, #ARGV, 3 do
  local f = ARGV[i] .. ':' .. ARGV[i + 1]
  local x = tonumber(ARGV[i + 2])
  local m = tonumber(redis.call('HGET', key, f .. ':mean'))
  if m then m = (1 - alpha) * m + alpha * x else m = x end
  redis.call('HSET', key, f .. ':mean', string.format('%.17g', m))
  redis.call('HINCRBY', key, f .. ':n', 1)
end
if #ARGV > 2 then redis.call('EXPIRE', key, tonumber(ARGV[2])) end
return redis.call('HGETALL', key)
"""


class SharedWaitEstimator(WaitEstimator):
    """The estimator's series in Redis, one hash `{prefix}:estimate` for all
    entities (fields `<h|a>:<entity>:mean` and `:n`), kept 30 days after the
    last sample.

    Calls record synchronously (a caller never waits on Redis): a sample
    updates this instance's copy at once and is queued; `sync` applies the
    queued samples in Redis (one script, one round trip, each sample one EWMA
    step there) and replaces this instance's copy with the shared series. A
    failed sync keeps the samples for the next one."""

    def __init__(self, redis: Redis, *, key_prefix: str = "hotline", **kw: Any) -> None:
        super().__init__(**kw)
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain braces: it becomes the hash tag")
        self.redis = redis
        self.key = "{" + key_prefix + "}:estimate"
        self._apply = redis.register_script(_APPLY)
        self._queued: list[tuple[str, str, float]] = []
        self._lock = asyncio.Lock()
        self.sync_errors = 0

    def record_handle_time(self, entity: str, seconds: float) -> None:
        super().record_handle_time(entity, seconds)
        if seconds > 0:
            self._queued.append(("h", entity, min(seconds, self.max_seconds)))

    def record_answer_wait(self, entity: str, seconds: float) -> None:
        super().record_answer_wait(entity, seconds)
        if seconds >= 0:
            self._queued.append(("a", entity, min(seconds, self.max_seconds)))

    async def sync(self) -> None:
        """Send the queued samples, read every series back. Raises a Redis error."""
        async with self._lock:
            sent = list(self._queued)
            args: list[str | float] = [self.alpha, KEEP_SECONDS]
            for kind, entity, x in sent:
                args += [kind, entity, repr(float(x))]
            raw = await self._apply(keys=[self.key], args=args)
            del self._queued[:len(sent)]
            self._handle, self._answer = _series(raw)

    async def run_sync(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.sync()
            except Exception as e:  # noqa: BLE001 - estimates wait for the next sync
                self.sync_errors += 1
                log.warning("estimate.sync_failed", error=repr(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def _series(raw: list[Any]) -> tuple[dict[str, _Series], dict[str, _Series]]:
    fields: dict[str, str] = {}
    for k, v in zip(raw[::2], raw[1::2], strict=True):
        fields[k.decode() if isinstance(k, bytes) else str(k)] = (
            v.decode() if isinstance(v, bytes) else str(v))
    out: dict[str, dict[str, _Series]] = {"h": {}, "a": {}}
    for name, val in fields.items():
        kind, _, rest = name.partition(":")
        entity, _, part = rest.rpartition(":")
        if kind not in out or part != "mean":
            continue
        try:
            out[kind][entity] = _Series(float(val), int(fields.get(f"{kind}:{entity}:n", "0")))
        except ValueError:
            log.warning("estimate.bad_field", field=name)
    return out["h"], out["a"]


SpokenWait = tuple[str, int | None]

LESS_THAN_MINUTE = "less_than_minute"
ABOUT_MINUTES = "about_minutes"
MORE_THAN_MINUTES = "more_than_minutes"
CEILING_MINUTES = 30


def spoken_wait(seconds: float | None) -> SpokenWait | None:
    """The phrase (prompt key, minutes) a person would use for this wait.

    Under a minute: "less than a minute". Then whole minutes 1-5, rounded to
    the nearest (a half rounds up: a caller minds a short figure more than a
    long one), then to the nearest 5 up to 30; beyond 30 minutes only "more
    than 30 minutes", because no estimate is good that far out. None: say
    nothing.
    """
    if seconds is None or seconds != seconds or seconds < 0:
        return None
    if seconds < 60:
        return (LESS_THAN_MINUTE, None)
    minutes = seconds / 60.0
    n = int(minutes + 0.5)
    if n > 5:
        n = 5 * int(minutes / 5 + 0.5)
    if n > CEILING_MINUTES:
        return (MORE_THAN_MINUTES, CEILING_MINUTES)
    return (ABOUT_MINUTES, max(1, n))
