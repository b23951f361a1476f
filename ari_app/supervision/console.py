"""The supervisors' console (docs/supervision.md): live calls and agents' states,
listen / whisper / barge / leave on a call, force pause or logout with a reason.

  GET  /supervision[?lang=ar]                      the page (English, or Arabic RTL)
  GET  /supervision/static/{name}                  its JS and CSS
  GET  /supervision/api/state                      live calls, agents, recent audit
  POST /supervision/api/calls/{call_id}/{action}   listen | whisper | barge | leave
  POST /supervision/api/agents/{agent_id}/{action} pause | logout, {"reason": "..."}

Only a signed-in supervisor (the desktop's accounts, role supervisor) gets the
page or the API; changes carry the session's CSRF token. The supervisor's own
phone is the one rung for listen. Every action is audited: the Redis stream
`{prefix}supervision:audit` (who, what, target, reason, when) and the app log;
call actions are also events on the call's record.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from ari_app.agents.pool import AgentPool, AgentStateError
from ari_app.desktop.auth import refuse, require_session, session_of
from ari_app.logs import get_logger
from ari_app.records.model import utcnow
from ari_app.supervision.snoop import ACTIONS, Supervision, SupervisionError
from ari_app.web.deps import AgentControl
from ari_app.web.pages import localized

log = get_logger("supervision.console")
ASSETS = {"console.js": "text/javascript; charset=utf-8",
          "console.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY", "Cache-Control": "no-store",
}
AGENT_ACTIONS = ("pause", "logout")
MAX_REASON = 80
MAX_BODY = 4096
AUDIT_LEN = 100_000


def audit_key(prefix: str) -> str:
    return f"{prefix}supervision:audit"


def _read(name: str) -> str:
    return (resources.files("ari_app.supervision") / "static" / name).read_text(encoding="utf-8")


class Console:
    def __init__(self, supervision: Supervision, pool: AgentPool, control: AgentControl,
                 redis: aioredis.Redis, key_prefix: str) -> None:
        self.supervision = supervision
        self.pool = pool
        self.control = control
        self.redis = redis
        self.audit = audit_key(key_prefix)
        self.page = _read("console.html")
        self.assets = {n: _read(n).encode() for n in ASSETS}

    def mount(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/supervision", self.handle_page, name="supervision")
        r.add_get("/supervision/static/{name}", self.handle_asset, name="supervision.asset")
        r.add_get("/supervision/api/state", self.state, name="supervision.state",
                  allow_head=False)
        r.add_post("/supervision/api/calls/{call_id}/{action}", self.call_action,
                   name="supervision.call")
        r.add_post("/supervision/api/agents/{agent_id}/{action}", self.agent_action,
                   name="supervision.agent")

    @require_session(role="supervisor", page=True)
    async def handle_page(self, request: web.Request) -> web.Response:
        html = localized(self.page, request)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            headers=HEADERS)

    async def handle_asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.assets:
            raise web.HTTPNotFound()
        return web.Response(body=self.assets[name],
                            headers={**HEADERS, "Content-Type": ASSETS[name]})

    @require_session(role="supervisor")
    async def state(self, request: web.Request) -> web.Response:
        who = session_of(request)
        ids = sorted(self.pool.agents)
        agents = []
        for agent_id, (st, reachable) in zip(ids, await self.pool.states(ids), strict=True):
            if str(st) != "logged_out":
                agents.append({"id": agent_id, "site": self.pool.agents[agent_id].site,
                               "state": str(st), "reachable": reachable})
        try:
            raw: Any = await self.redis.xrevrange(self.audit, count=20)
            audit = [json.loads(f[b"entry"]) for _id, f in raw or []]
        except (RedisError, ValueError, KeyError):
            audit = []
        return web.json_response({"user": who.user, "csrf": who.csrf,
                                  "calls": self.supervision.live(), "agents": agents,
                                  "audit": audit})

    @require_session(role="supervisor")
    async def call_action(self, request: web.Request) -> web.Response:
        who = session_of(request)
        call_id, action = request.match_info["call_id"], request.match_info["action"]
        if action not in ACTIONS:
            raise refuse(404, f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        try:
            out = await self.supervision.act(call_id[:64], who.user, action)
        except SupervisionError as e:
            await self._audit(who.user, action, call_id[:64], None, f"refused: {e}")
            raise refuse(e.status if e.status in (400, 403, 404, 409) else 409,
                         str(e)) from None
        await self._audit(who.user, action, call_id, None, "done")
        return web.json_response(out)

    @require_session(role="supervisor")
    async def agent_action(self, request: web.Request) -> web.Response:
        who = session_of(request)
        agent_id, action = request.match_info["agent_id"], request.match_info["action"]
        if action not in AGENT_ACTIONS:
            raise refuse(404, f"unknown action {action!r} (pause or logout)")
        if agent_id not in self.pool.agents:
            raise refuse(404, f"unknown agent {agent_id[:40]!r}")
        body = await self._body(request)
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise refuse(400, f"a forced {action} needs a JSON body with a 'reason'")
        reason = reason.strip()
        if len(reason) > MAX_REASON or not reason.isprintable():
            raise refuse(400, f"'reason' must be printable, at most {MAX_REASON} characters")
        try:
            if action == "pause":
                result = await self.control.pause(agent_id, "supervisor")
            else:
                result = await self.control.logout(agent_id)
        except AgentStateError as e:
            raise refuse(409, str(e)) from None
        await self._audit(who.user, action, None, agent_id, reason)
        return web.json_response({"agent": agent_id, "action": action, "result": str(result)})

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise refuse(413, f"request body larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise refuse(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise refuse(400, "request body must be a JSON object")
        return body

    async def _audit(self, by: str, action: str, call_id: str | None, agent: str | None,
                     reason: str) -> None:
        entry = {"at": utcnow(), "by": by, "action": action, "call_id": call_id,
                 "agent": agent, "reason": reason}
        log.info("supervision.audit", **entry)
        try:
            await self.redis.xadd(self.audit, {"entry": json.dumps(entry),
                                               "t": str(time.time())},
                                  maxlen=AUDIT_LEN, approximate=True)
        except RedisError as e:
            log.warning("supervision.audit_unstored", error=str(e))
