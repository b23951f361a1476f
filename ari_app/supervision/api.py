"""The supervisors' HTTP API, which the console page uses.

  GET  /api/v1/supervision/calls                        live answered calls here
  POST /api/v1/supervision/calls/{call_id}/{action}     listen | whisper | barge | leave
       body {"supervisor": "<agent id>"}

Both take the agents' API bearer token (http.token). A call is driven by one
app instance: the request goes to that instance (404 elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ari_app.logs import get_logger
from ari_app.supervision.snoop import ACTIONS, Supervision, SupervisionError
from ari_app.web.api import error_response

log = get_logger("supervision.api")
CALL_ID = re.compile(r"^[0-9a-f]{8,64}$")
AGENT_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class SupervisionApi:
    def __init__(self, supervision: Supervision,
                 authenticate: Callable[[web.Request], None],
                 body: Callable[[web.Request], Any]) -> None:
        self.supervision = supervision
        self._authenticate = authenticate
        self._body = body

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v1/supervision/calls", self.calls, name="supervision.calls",
                  allow_head=False)
        r.add_post("/api/v1/supervision/calls/{call_id}/{action}", self.act,
                   name="supervision.act")

    async def calls(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        return web.json_response({"calls": self.supervision.live()})

    async def act(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        call_id, action = request.match_info["call_id"], request.match_info["action"]
        if action not in ACTIONS:
            return _error(404, f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        if not CALL_ID.match(call_id):
            return _error(400, f"not a call id: {call_id[:80]!r}")
        body = await self._body(request)
        supervisor = body.get("supervisor")
        if not isinstance(supervisor, str) or not AGENT_ID.match(supervisor):
            return _error(400, "the JSON body needs 'supervisor': a supervisor's agent id")
        try:
            out = await self.supervision.act(call_id, supervisor, action)
        except SupervisionError as e:
            log.info("supervision.refused", call_id=call_id, supervisor=supervisor,
                     action=action, error=str(e), remote=request.remote)
            return _error(e.status, str(e))
        log.info("supervision.api", call_id=call_id, supervisor=supervisor, action=action,
                 remote=request.remote)
        return web.json_response(out)


def _error(status: int, message: str) -> web.Response:
    return error_response(status, message)
