"""The agent desktop's HTTP routes (docs/agent-desktop.md).

  GET  /desktop[?lang=ar]             the page (sign-in form when not signed in)
  GET  /desktop/static/{name}         its JS and CSS
  POST /desktop/api/signin            {"user", "password"} -> session cookie + CSRF token
  POST /desktop/api/signout           ends the session
  GET  /desktop/api/me                who is signed in, the CSRF token, state, pause reasons
  POST /desktop/api/login|logout|resume          the signed-in agent's own state
  POST /desktop/api/pause             {"reason": <a configured pause reason id>}
  GET  /desktop/api/wrapup/reasons    call reasons for the current call's entity
  POST /desktop/api/wrapup/tag|done|extend       wrap-up (when the app wires WrapUps)
  GET  /desktop/events                server-sent events (live.py)

The agent acted on is always the session's user: a request naming another
agent (an `agent` field) is refused, never redirected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from ari_app.agents.pool import AgentStateError
from ari_app.agents.wrapup import clean_note
from ari_app.desktop.auth import AUTH_KEY, refuse, require_session, session_of
from ari_app.desktop.deps import DesktopDeps
from ari_app.desktop.live import DeskStreams
from ari_app.desktop.screenpop import read_pop
from ari_app.logs import get_logger
from ari_app.web.pages import localized

log = get_logger("desktop")

ASSETS = {
    "desktop.js": "text/javascript; charset=utf-8",
    "desktop.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
MAX_BODY = 8192
MAX_NOTE = 500
MAX_EXTEND = 600.0


def _read(name: str) -> str:
    return (resources.files("ari_app.desktop") / "static" / name).read_text(encoding="utf-8")


def jsonable(x: Any) -> Any:
    """A wrap-up reason as JSON, whatever shape the wrap-up package gives it."""
    if hasattr(x, "model_dump"):
        return x.model_dump(mode="json")
    if is_dataclass(x) and not isinstance(x, type):
        return asdict(x)
    if isinstance(x, dict | list | tuple | str | int | float | bool) or x is None:
        return x
    return str(x)


class Desktop:
    def __init__(self, deps: DesktopDeps) -> None:
        self.deps = deps
        self.streams = DeskStreams(deps)
        self.page = _read("desktop.html")
        self.assets = {name: _read(name).encode() for name in ASSETS}

    def mount(self, app: web.Application) -> None:
        app[AUTH_KEY] = self.deps.auth
        r = app.router
        r.add_get("/desktop", self.handle_page, name="desktop")
        r.add_get("/desktop/static/{name}", self.handle_asset, name="desktop.asset")
        r.add_post("/desktop/api/signin", self.deps.auth.signin, name="desktop.signin")
        r.add_post("/desktop/api/signout", self.deps.auth.signout, name="desktop.signout")
        r.add_get("/desktop/api/me", self.me, name="desktop.me", allow_head=False)
        for action in ("login", "logout", "pause", "resume"):
            r.add_post(f"/desktop/api/{action}", self.change, name=f"desktop.{action}")
        r.add_get("/desktop/api/wrapup/reasons", self.wrapup_reasons,
                  name="desktop.wrapup.reasons", allow_head=False)
        for action in ("tag", "done", "extend"):
            r.add_post(f"/desktop/api/wrapup/{action}", self.wrapup,
                       name=f"desktop.wrapup.{action}")
        r.add_get("/desktop/events", self.events, name="desktop.events")
        if self.deps.auth.accounts is not None:  # off: no listener, the API answers 503
            app.cleanup_ctx.append(self.streams.listen)
        app.on_shutdown.append(self.streams.close)

    # -- page ----------------------------------------------------------------------------------
    async def handle_page(self, request: web.Request) -> web.Response:
        html = localized(self.page, request)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    async def handle_asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self.assets.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, headers={
            **SECURITY_HEADERS, "Content-Type": ASSETS[name], "Cache-Control": "no-cache"})

    # -- helpers -------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        if (request.content_length or 0) > MAX_BODY:
            raise refuse(413, f"request body larger than {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise refuse(413, f"request body larger than {MAX_BODY} bytes")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise refuse(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise refuse(400, "request body must be a JSON object")
        return body

    @staticmethod
    def _own(agent_id: str, body: dict[str, Any]) -> None:
        named = body.get("agent")
        if named is not None and named != agent_id:
            log.warning("desktop.other_agent_refused", user=agent_id,
                        named=str(named)[:40])
            raise refuse(403, f"you are signed in as {agent_id} and can act only for "
                              "yourself")

    def _reason_ids(self) -> list[str]:
        return [r.id for r in self.deps.pause_reasons]

    # -- API -----------------------------------------------------------------------------------
    @require_session()
    async def me(self, request: web.Request) -> web.Response:
        s = session_of(request)
        status = await self.deps.agents.status(s.user) if s.role == "agent" else None
        return web.json_response({
            "user": s.user, "role": s.role, "csrf": s.csrf, "status": status,
            "pause_reasons": [{"id": r.id, "labels": dict(r.labels)}
                              for r in self.deps.pause_reasons],
            "wrapup": self.deps.wrapup is not None,
        })

    @require_session(role="agent")
    async def change(self, request: web.Request) -> web.Response:
        agent_id = session_of(request).user
        action = request.path.rsplit("/", 1)[1]
        body = await self._body(request)
        self._own(agent_id, body)
        agents = self.deps.agents
        try:
            if action == "pause":
                reason = body.get("reason")
                if reason not in self._reason_ids():
                    raise refuse(400, "pause needs a 'reason' from the list: "
                                      + ", ".join(self._reason_ids()))
                result = await agents.pause(agent_id, str(reason))
            elif action == "login":
                result = await agents.login(agent_id)
            elif action == "logout":
                result = await agents.logout(agent_id)
            else:
                result = await agents.resume(agent_id)
        except AgentStateError as e:
            log.info("desktop.agent_refused", agent=agent_id, action=action, error=str(e))
            raise refuse(409, str(e)) from None
        log.info("desktop.agent_changed", agent=agent_id, action=action, result=result)
        return web.json_response({"agent": agent_id, "action": action, "result": result,
                                  "status": await agents.status(agent_id)})

    @require_session(role="agent")
    async def wrapup_reasons(self, request: web.Request) -> web.Response:
        wrap = self.deps.wrapup
        if wrap is None:
            raise refuse(503, "wrap-up is not available on this server yet")
        agent_id = session_of(request).user
        pop = await read_pop(self.deps.redis, self.deps.key_prefix, agent_id)
        entity = request.query.get("entity") or (pop or {}).get("entity") or ""
        return web.json_response({"entity": entity,
                                  "reasons": [jsonable(r) for r in wrap.service.reasons(entity)]})

    @require_session(role="agent")
    async def wrapup(self, request: web.Request) -> web.Response:
        wrap = self.deps.wrapup
        if wrap is None:
            raise refuse(503, "wrap-up is not available on this server yet")
        agent_id = session_of(request).user
        action = request.path.rsplit("/", 1)[1]
        body = await self._body(request)
        self._own(agent_id, body)
        out: dict[str, Any] = {"agent": agent_id, "action": action}
        try:
            if action == "tag":
                call_id, kind = body.get("call_id"), body.get("kind")
                sub, note = body.get("sub_reason"), body.get("note")
                if not isinstance(call_id, str) or not isinstance(kind, str):
                    raise refuse(400, "tag needs string 'call_id' and 'kind'")
                if sub is not None and not isinstance(sub, str):
                    raise refuse(400, "'sub_reason' must be a string")
                if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
                    raise refuse(400, f"'note' must be a string of at most {MAX_NOTE} "
                                      "characters")
                await wrap.service.tag(agent_id, call_id, kind, sub or None, note or None)
                # what the record keeps, for the desk to show (as text)
                out.update(call_id=call_id, kind=kind, sub_reason=sub or None,
                           note=clean_note(note, MAX_NOTE) if note else None)
            elif action == "done":
                await wrap.service.done(agent_id)
            else:
                seconds = body.get("seconds")
                if not isinstance(seconds, int | float) or not 0 < seconds <= MAX_EXTEND:
                    raise refuse(400, f"extend needs 'seconds' between 1 and {MAX_EXTEND:.0f}")
                out["until"] = await wrap.service.extend(agent_id, float(seconds))
        except wrap.error as e:
            raise refuse(409, str(e)) from None
        except AgentStateError as e:
            raise refuse(409, str(e)) from None
        log.info("desktop.wrapup", agent=agent_id, action=action)
        out["status"] = await self.deps.agents.status(agent_id)
        return web.json_response(out)

    @require_session(role="agent")
    async def events(self, request: web.Request) -> web.StreamResponse:
        return await self.streams.stream(request, session_of(request).user)
