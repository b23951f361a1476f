"""The agents' HTTP API: /api/v1/agents/{id}[/login|logout|pause|resume].

Every request needs `Authorization: Bearer <token>`, compared in constant
time. A client address that fails authentication `limit` times within
`window` seconds gets 429 (with Retry-After) until the oldest failure ages
out, even with the right token, so the token cannot be brute-forced. The
failure table is bounded (least recently failing addresses are forgotten).

Errors are JSON: {"error": "<message>", "status": <code>}.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ari_app.agents.pool import AgentPool, AgentStateError
from ari_app.logs import get_logger
from ari_app.web.deps import AgentControl
from ari_app.web.metrics import STATS_KEY, WebStats

log = get_logger("web.api")

MAX_BODY = 64 * 1024
AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_REASON = 64
PREFIX = "/api/"


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None
                   ) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status,
                             headers=headers)


class FailureLimiter:
    """Failed authentications per client address, in a sliding window; bounded memory."""

    def __init__(self, limit: int = 10, window: float = 60.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds until `client` may try again, or None if not blocked."""
        d = self._fails.get(client)
        if d is None:
            return None
        now = self.clock()
        while d and d[0] <= now - self.window:
            d.popleft()
        if not d:
            del self._fails[client]
            return None
        if len(d) < self.limit:
            return None
        return d[0] + self.window - now

    def failed(self, client: str) -> None:
        d = self._fails.get(client)
        if d is None:
            d = self._fails[client] = deque(maxlen=self.limit)
        d.append(self.clock())
        self._fails.move_to_end(client)
        while len(self._fails) > self.max_clients:
            self._fails.popitem(last=False)

    def __len__(self) -> int:
        return len(self._fails)


def status_dict(st: Any) -> dict[str, Any]:
    d = asdict(st)
    d["state"] = str(st.state)
    return d


class PoolAgentControl:
    """`AgentControl` over the Redis `AgentPool` (what the app passes in WebDeps)."""

    def __init__(self, pool: AgentPool) -> None:
        self.pool = pool

    async def login(self, agent_id: str) -> str:
        return str(await self.pool.login(agent_id))

    async def logout(self, agent_id: str) -> str:
        return str(await self.pool.logout(agent_id))

    async def pause(self, agent_id: str, reason: str) -> str:
        return await self.pool.pause(agent_id, reason)

    async def resume(self, agent_id: str) -> str:
        return str(await self.pool.resume(agent_id))

    async def status(self, agent_id: str) -> dict[str, Any] | None:
        agent = self.pool.agents.get(agent_id)
        if agent is None:
            return None
        st = await self.pool.status(agent_id)
        if st is None:  # in the roster, never seen by Redis yet
            return {"id": agent_id, "site": agent.site, "state": "logged_out",
                    "reachable": True, "since": None, "call": None, "until": None,
                    "reason": None, "pause_pending": None}
        return status_dict(st)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Under /api/, every error is JSON (including aiohttp's own 404/405/413)."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    stats = request.app[STATS_KEY]
    route = request.match_info.route.name or "unknown"
    try:
        resp = await handler(request)
    except ApiError as e:
        resp = error_response(e.status, e.message, e.headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        msg = {404: "no such endpoint", 405: f"method {request.method} not allowed",
               413: f"request body larger than {MAX_BODY} bytes"}.get(e.status, e.reason)
        hdrs = {k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After")}
        resp = error_response(e.status, msg, hdrs)
    except Exception:  # answer JSON; log.exception keeps the cause
        log.exception("api.internal_error", path=request.path)
        resp = error_response(500, "internal error")
    stats.api_request(route, resp.status)
    return resp


class AgentApi:
    def __init__(self, agents: AgentControl, token: str, stats: WebStats,
                 limiter: FailureLimiter | None = None) -> None:
        self.agents = agents
        self._token = token.encode()
        self.stats = stats
        self.limiter = limiter if limiter is not None else FailureLimiter()

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        base = "/api/v1/agents/{agent_id}"
        r.add_get(base, self.get_status, name="agent.status", allow_head=False)
        for action in ("login", "logout", "pause", "resume"):
            r.add_post(f"{base}/{action}", self.change, name=f"agent.{action}")

    # -- guards ------------------------------------------------------------------------------
    def _authenticate(self, request: web.Request) -> None:
        client = request.remote or "unknown"
        wait = self.limiter.retry_after(client)
        if wait is not None:
            self.stats.rate_limited += 1
            secs = max(1, math.ceil(wait))
            raise ApiError(429, f"too many failed authentications; retry in {secs} s",
                           {"Retry-After": str(secs)})
        if not self._token:
            raise ApiError(503, "the agents' API is disabled: no token is configured")
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if not header:
            problem, challenge = "missing bearer token", 'Bearer realm="hotline"'
        elif scheme.lower() != "bearer" or not presented.strip():
            problem = "the Authorization header must be 'Bearer <token>'"
            challenge = 'Bearer realm="hotline", error="invalid_request"'
        elif not hmac.compare_digest(presented.strip().encode(), self._token):
            problem, challenge = "invalid token", 'Bearer realm="hotline", error="invalid_token"'
        else:
            return
        self.limiter.failed(client)
        self.stats.auth_failures += 1
        log.warning("api.auth_failed", remote=client, path=request.path, problem=problem)
        raise ApiError(401, problem, {"WWW-Authenticate": challenge})

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError(413, f"request body larger than {MAX_BODY} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, f"request body larger than {MAX_BODY} bytes") from None
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    async def _known(self, agent_id: str) -> dict[str, Any]:
        st = await self.agents.status(agent_id) if AGENT_ID.match(agent_id) else None
        if st is None:
            raise ApiError(404, f"unknown agent {agent_id!r}")
        return st

    # -- handlers ----------------------------------------------------------------------------
    async def get_status(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return web.json_response(await self._known(request.match_info["agent_id"]))

    async def change(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        agent_id = request.match_info["agent_id"]
        action = request.path.rsplit("/", 1)[1]
        body = await self._body(request)
        reason: str | None = None
        if action == "pause":
            reason = body.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise ApiError(400, "pause needs a JSON body with a non-empty string 'reason'")
            reason = reason.strip()
            if len(reason) > MAX_REASON or not reason.isprintable():
                raise ApiError(400, f"'reason' must be printable, at most {MAX_REASON} characters")
        await self._known(agent_id)
        try:
            if action == "login":
                result = await self.agents.login(agent_id)
            elif action == "logout":
                result = await self.agents.logout(agent_id)
            elif action == "pause":
                assert reason is not None
                result = await self.agents.pause(agent_id, reason)
            else:
                result = await self.agents.resume(agent_id)
        except AgentStateError as e:
            log.info("api.agent_refused", agent=agent_id, action=action, error=str(e))
            raise ApiError(409, str(e)) from None
        log.info("api.agent_changed", agent=agent_id, action=action, result=result,
                 remote=request.remote)
        return web.json_response({"agent": agent_id, "action": action, "result": result,
                                  "status": await self.agents.status(agent_id)})
