"""A virtual clock for asyncio, so states that wait for minutes run in milliseconds.

The states wait in three ways: `asyncio.wait_for`/`asyncio.wait(timeout=)`/
`asyncio.sleep` (the loop's timers), and deadlines computed from
`time.monotonic()` and `time.time()`. All three read one virtual clock here:

- `VirtualLoop` is a selector event loop whose `time()` is the virtual clock.
  When it has nothing ready to run and no real I/O in flight, it jumps the
  clock to its next timer instead of sleeping, so a 10 s announcement interval
  passes at once. While real I/O is in flight (a Redis command sent, its reply
  not read yet) it waits for it in real time without moving the clock, so a
  reply is never overtaken by a timer: the order of events is the same however
  slow the machine is. A Redis client built with `tracked_redis` counts its
  commands in flight; pub/sub reads (which pass their own timeout) do not count.
- `patched()` replaces `time.monotonic`/`time.time` in the app's modules
  (every loaded module under a prefix that imported `time`, or the two
  functions) with the virtual clock, and restores them after; other
  callables can be swapped the same way (e.g. a `utcnow`).

A test that would wait forever (nothing to run, no timer, nothing in flight)
fails after `stall` real seconds instead of hanging; so does one that lets
virtual time run past `limit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import sys
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: virtual time.time() starts here


class VirtualClock:
    def __init__(self, epoch: float = EPOCH, limit: float = 900.0,
                 stall: float = 5.0) -> None:
        self.now = 0.0
        self.epoch = epoch
        self.busy = 0  # real I/O in flight: the clock must not jump
        self.limit = limit
        self.stall = stall
        self.jumps = 0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.jumps += 1
        if self.now > self.limit:
            raise VirtualTimeout(f"virtual time ran past {self.limit:.0f} s: the code under "
                                 "test keeps waiting for something that never happens")

    @contextlib.contextmanager
    def patched(self, prefix: str = "ari_app",
                extra: dict[Any, Any] | None = None) -> Iterator[None]:
        """The virtual clock in every loaded module under `prefix`, for the block."""
        shim = _TimeShim(self)
        swap: dict[int, Any] = {id(time): shim, id(time.monotonic): self.monotonic,
                                id(time.time): self.time}
        for old, new in (extra or {}).items():
            swap[id(old)] = new
        undo: list[tuple[Any, str, Any]] = []
        for name, mod in list(sys.modules.items()):
            if mod is None or not (name == prefix or name.startswith(prefix + ".")):
                continue
            for attr, val in list(vars(mod).items()):
                if id(val) in swap and not attr.startswith("__"):
                    undo.append((mod, attr, val))
                    setattr(mod, attr, swap[id(val)])
        try:
            yield
        finally:
            for mod, attr, val in reversed(undo):
                setattr(mod, attr, val)


class VirtualTimeout(AssertionError):
    pass


class _TimeShim:
    """The `time` module as the app's modules see it under the virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def monotonic(self) -> float:
        return self._clock.now

    def time(self) -> float:
        return self._clock.time()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        self._stalled_since: float | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0:
            self._stalled_since = None
            return ready  # type: ignore[no-any-return]
        if self.clock.busy:
            # a reply is on its way: wait for it in real time, the clock stands still
            self._stalled_since = None
            return super().select(0.05)  # type: ignore[no-any-return]
        if timeout is None:
            started = self._stalled_since = self._stalled_since or time.monotonic()
            if time.monotonic() - started > self.clock.stall:
                raise VirtualTimeout(
                    f"nothing to run, no timer and no I/O for {self.clock.stall:.0f} s "
                    f"(virtual t={self.clock.now:.3f}): the code under test waits for "
                    "something that never comes")
            return super().select(0.05)  # type: ignore[no-any-return]
        self._stalled_since = None
        self.clock.advance(timeout)
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_VirtualSelector(clock))
        self.clock = clock

    def time(self) -> float:
        return self.clock.now


def run(coro: Coroutine[Any, Any, T], clock: VirtualClock | None = None, *,
        prefix: str = "ari_app", extra: dict[Any, Any] | None = None) -> T:
    """Run `coro` to completion under a virtual clock (a fresh loop each time)."""
    clock = clock or VirtualClock()
    loop = VirtualLoop(clock)
    try:
        with clock.patched(prefix, extra):
            return loop.run_until_complete(coro)
    finally:
        with clock.patched(prefix, extra):
            _cancel_the_rest(loop)
        loop.close()


def _cancel_the_rest(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the test left running, briefly: a task that will not stop must
    not hide the test's own result (its failure, raised from run_until_complete)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    with contextlib.suppress(Exception):
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=10))
        loop.run_until_complete(loop.shutdown_asyncgens())


def tracked_redis(url: str, clock: VirtualClock) -> Any:
    """A redis.asyncio client whose commands in flight hold the virtual clock still."""
    import redis.asyncio as aioredis

    class _Connection(aioredis.Connection):  # type: ignore[misc]
        async def connect(self, *a: Any, **kw: Any) -> Any:
            clock.busy += 1
            try:
                return await super().connect(*a, **kw)
            finally:
                clock.busy -= 1

        async def read_response(self, disable_decoding: bool = False,
                                timeout: float | None = None, **kw: Any) -> Any:
            if timeout is not None:  # pub/sub waiting for a message: a timer, not a reply
                return await super().read_response(disable_decoding, timeout, **kw)
            clock.busy += 1
            try:
                return await super().read_response(disable_decoding, timeout, **kw)
            finally:
                clock.busy -= 1

    pool = aioredis.ConnectionPool.from_url(url, connection_class=_Connection)
    return aioredis.Redis(connection_pool=pool)
