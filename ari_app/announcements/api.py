"""The announcements' HTTP API, behind the agents' API token (ari_app/web/api.py).

  GET    /api/v1/announcements               what is set, and the version
  GET    /api/v1/announcements/audit?limit=N the latest changes, newest first
  PUT    /api/v1/announcements/{scope}       set: {"by": "...", "texts": {"en": "..."}}
                                             or {"by": "...", "audio": {"ar": "<base64 WAV>"}},
                                             optional "starts"/"ends" (ISO 8601)
  DELETE /api/v1/announcements/{scope}?by=NAME  clear

`scope` is `global` or an entity id. Errors are JSON {"error", "status"}:
404 unknown entity, 400 bad input, 413 too big, 503 text to speech unavailable.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from ari_app.announcements.model import AnnouncementError, UnknownScope
from ari_app.announcements.service import AnnouncementService, Change
from ari_app.prompts.render import RenderError
from ari_app.web.api import ApiError

BASE = "/api/v1/announcements"
MAX_AUDIT = 1000


class AnnouncementApi:
    def __init__(self, service: AnnouncementService,
                 authenticate: Callable[[web.Request], None]) -> None:
        self.service = service
        self.authenticate = authenticate
        # base64 makes a recording a third bigger; the JSON around it is small
        self.max_body = service.settings.max_audio_bytes * 3 // 2 + 64 * 1024

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(BASE, self.list, name="announcements.list", allow_head=False)
        r.add_get(f"{BASE}/audit", self.audit, name="announcements.audit", allow_head=False)
        r.add_put(BASE + "/{scope}", self.set, name="announcements.set")
        r.add_delete(BASE + "/{scope}", self.clear, name="announcements.clear")

    async def list(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        return web.json_response(await self.service.listing())

    async def audit(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        raw = request.query.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_AUDIT:
            raise ApiError(400, f"'limit' must be a number from 1 to {MAX_AUDIT}")
        return web.json_response({"audit": await self.service.store.audit(int(raw))})

    async def set(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        scope = self._scope(request)
        body = await self._body(request)
        unknown = set(body) - {"by", "texts", "audio", "starts", "ends"}
        if unknown:
            raise ApiError(400, f"unknown field {sorted(unknown)[0]!r}")
        texts, audio = body.get("texts"), body.get("audio")
        if texts is not None and (not isinstance(texts, dict) or
                                  not all(isinstance(v, str) for v in texts.values())):
            raise ApiError(400, "'texts' must be an object of language -> text")
        recordings = _decode(audio) if audio is not None else None
        for key in ("by", "starts", "ends"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise ApiError(400, f"{key!r} must be a string")
        change = Change(scope=scope, by=body.get("by") or "", source=_source(request),
                        texts=texts, audio=recordings, starts=body.get("starts"),
                        ends=body.get("ends"))
        try:
            ann, version = await self.service.set(change)
        except AnnouncementError as e:
            raise ApiError(400, str(e)) from None
        except RenderError as e:
            raise ApiError(503, str(e)) from None
        except RedisError as e:
            raise ApiError(503, f"Redis unreachable, nothing changed: {e}") from None
        return web.json_response({"version": version, "announcement": ann.describe()})

    async def clear(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        scope = self._scope(request)
        try:
            old, version = await self.service.clear(scope, request.query.get("by", ""),
                                                    _source(request))
        except AnnouncementError as e:
            raise ApiError(400, str(e)) from None
        except RedisError as e:
            raise ApiError(503, f"Redis unreachable, nothing changed: {e}") from None
        if old is None:
            raise ApiError(404, f"no announcement is set for {scope!r}")
        return web.json_response({"version": version, "cleared": old.describe()})

    def _scope(self, request: web.Request) -> str:
        try:
            return self.service.check_scope(request.match_info["scope"])
        except UnknownScope as e:
            raise ApiError(404, str(e)) from None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        """The JSON body, read here up to `max_body` (recordings are bigger than
        the app-wide limit the other routes keep)."""
        if request.content_length is not None and request.content_length > self.max_body:
            raise ApiError(413, f"request body larger than {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_body:
                raise ApiError(413, f"request body larger than {self.max_body} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body


def _decode(audio: Any) -> dict[str, bytes]:
    if not isinstance(audio, dict) or not all(isinstance(v, str) for v in audio.values()):
        raise ApiError(400, "'audio' must be an object of language -> base64 WAV")
    out: dict[str, bytes] = {}
    for lang, b64 in audio.items():
        try:
            out[lang] = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"the recording for {lang!r} is not valid base64") from None
    return out


def _source(request: web.Request) -> str:
    return f"api {request.remote or 'unknown'}"
