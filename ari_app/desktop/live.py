"""The desk's live stream: GET /desktop/events (server-sent events, one per desk).

Events:
  state    the agent's own state (pool status), sent on connect and on change
           (checked every `STATE_INTERVAL`, and at once after a pop)
  pop      the screen-pop of the call being offered or talked to
  history  the caller's earlier calls (after the pop: the archive is slower)
  unavailable   live data cannot be read (Redis away)

Pops reach this instance through one Redis pub/sub subscription (`PopListener`,
a task the web application owns from start-up to clean-up), whichever instance
drives the call; a desk that connects later reads the pop's key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from ari_app.desktop.deps import DesktopDeps
from ari_app.desktop.history import HistoryUnavailable, as_json
from ari_app.desktop.screenpop import pop_channel, public, read_pop
from ari_app.logs import get_logger

log = get_logger("desktop.live")

STATE_INTERVAL = 1.0
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
HISTORY_TIMEOUT = 10.0
MAX_DESKS = 2000
Message = dict[str, Any] | None  # None ends the stream (shutdown)


def frame(event: str, data: Any) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n".encode()


class DeskStreams:
    def __init__(self, deps: DesktopDeps) -> None:
        self.deps = deps
        self.desks: dict[str, set[asyncio.Queue[Message]]] = defaultdict(set)
        self.closed = False
        self.pops_received = 0

    def count(self) -> int:
        return sum(len(s) for s in self.desks.values())

    # -- pops from any instance ----------------------------------------------------------------
    def deliver(self, pop: dict[str, Any]) -> None:
        agent = pop.get("agent")
        if not isinstance(agent, str):
            return
        self.pops_received += 1
        for q in list(self.desks.get(agent, ())):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(pop)

    async def listen(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: the pub/sub listener lives as long as the server."""
        task = asyncio.create_task(self._listen(), name="desktop-pops")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _listen(self) -> None:
        channel = pop_channel(self.deps.key_prefix)
        while not self.closed:
            pubsub = self.deps.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                log.info("desktop.pops_subscribed")
                while not self.closed:
                    msg = await pubsub.get_message(timeout=5.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        pop = json.loads(msg["data"])
                    except (ValueError, TypeError):
                        log.warning("desktop.bad_pop_message")
                        continue
                    if isinstance(pop, dict):
                        self.deliver(pop)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                log.warning("desktop.pops_lost", error=str(e)[:200])
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self, app: web.Application) -> None:
        del app
        self.closed = True
        for qs in self.desks.values():
            for q in qs:
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)

    # -- one desk ------------------------------------------------------------------------------
    async def stream(self, request: web.Request, agent_id: str) -> web.StreamResponse:
        if self.closed:
            raise web.HTTPServiceUnavailable(text="shutting down")
        if self.count() >= MAX_DESKS:
            raise web.HTTPServiceUnavailable(text=f"too many desks (limit {MAX_DESKS})",
                                             headers={"Retry-After": "30"})
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no",
            "X-Content-Type-Options": "nosniff"})
        await resp.prepare(request)
        q: asyncio.Queue[Message] = asyncio.Queue(maxsize=4)
        self.desks[agent_id].add(q)
        log.info("desktop.connected", agent=agent_id, desks=self.count())
        # history look-ups this desk started: ended with it
        tasks: set[asyncio.Task[None]] = set()
        try:
            await resp.write(f"retry: {RETRY_MS}\n\n".encode())
            await self._run(resp, agent_id, q, tasks)
        except ConnectionError:
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.desks[agent_id].discard(q)
            if not self.desks[agent_id]:
                del self.desks[agent_id]
            log.info("desktop.disconnected", agent=agent_id, desks=self.count())
        return resp

    async def _run(self, resp: web.StreamResponse, agent_id: str,
                   q: asyncio.Queue[Message], tasks: set[asyncio.Task[None]]) -> None:
        last_state: dict[str, Any] | None = None
        failing = False
        try:
            pop = await read_pop(self.deps.redis, self.deps.key_prefix, agent_id)
        except RedisError:
            pop = None
        if pop is not None:
            await self._send_pop(resp, pop, q, tasks)
        quiet = 0.0
        while True:
            try:
                state = await self.deps.agents.status(agent_id)
            except RedisError as e:
                if not failing:
                    log.warning("desktop.state_unavailable", agent=agent_id, error=str(e)[:160])
                    await resp.write(frame("unavailable", {"error": "live data unavailable"}))
                failing = True
            else:
                failing = False
                if state != last_state:
                    await resp.write(frame("state", state))
                    last_state, quiet = state, 0.0
            try:
                msg = await asyncio.wait_for(q.get(), STATE_INTERVAL)
            except TimeoutError:
                quiet += STATE_INTERVAL
                if quiet >= KEEPALIVE_SECONDS:
                    await resp.write(b": keepalive\n\n")
                    quiet = 0.0
                continue
            if msg is None:
                return
            if "history" in msg:
                await resp.write(frame("history", msg["history"]))
            else:
                await self._send_pop(resp, msg, q, tasks)

    async def _send_pop(self, resp: web.StreamResponse, pop: dict[str, Any],
                        q: asyncio.Queue[Message], tasks: set[asyncio.Task[None]]) -> None:
        await resp.write(frame("pop", public(pop)))
        hashed = pop.get("caller_hash")
        call_id = str(pop.get("call_id") or "")
        if self.deps.history is not None and isinstance(hashed, str):
            task = asyncio.create_task(self._history(hashed, call_id, q))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            q.put_nowait({"history": {"call_id": call_id, "calls": [],
                                      "error": None if self.deps.history else "not configured"}})

    async def _history(self, hashed: str, call_id: str, q: asyncio.Queue[Message]) -> None:
        assert self.deps.history is not None
        out: dict[str, Any] = {"call_id": call_id, "days": self.deps.settings.history_days}
        try:
            calls = await asyncio.wait_for(self.deps.history.lookup(hashed, call_id),
                                           HISTORY_TIMEOUT)
            out.update(calls=as_json(calls, self.deps.history.names), error=None)
        except HistoryUnavailable as e:
            log.warning("desktop.history_unavailable", call_id=call_id, error=str(e))
            out.update(calls=[], error="call history unavailable")
        except TimeoutError:
            log.warning("desktop.history_timeout", call_id=call_id)
            out.update(calls=[], error="call history timed out")
        if q.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
        q.put_nowait({"history": out})
