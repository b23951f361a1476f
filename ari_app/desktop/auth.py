"""Signing in to the web pages people use (agent desktop, supervision console).

- Sessions live in Redis under the hash of a random id, so any app instance
  serves them and a Redis dump holds no usable cookie. The id travels in the
  cookie `hotline_session`: HttpOnly, SameSite=Strict, Secure when the app
  serves HTTPS (also forced by the server's own hook). A session ends after
  `session_idle_seconds` without a request and `session_absolute_seconds`
  after sign-in in any case; signing out deletes it.
- Every state-changing request (anything but GET/HEAD/OPTIONS) must carry the
  session's CSRF token in the `X-CSRF-Token` header, and an `Origin`, if the
  browser sends one, must be this server's. Sign-in itself takes only a JSON
  body, which no cross-site form can send.
- Failed sign-ins are counted in Redis per user and per client address; past
  the limit, sign-in answers 429 with Retry-After, even with the right
  password, until the window ends.
- The machine API token is no credential here: a request bearing an
  Authorization header is refused.

Use it on any page or API that needs a person (docs/agent-desktop.md):

    from ari_app.desktop.auth import require_session, session_of

    @require_session(role="supervisor")            # or role=None: any signed-in user
    async def handler(request: web.Request) -> web.Response:
        who = session_of(request)                   # .user, .role, .csrf
        ...

The server must have a `DesktopAuth` under `AUTH_KEY` (WebServer does it);
`page=True` sends a browser without a session to the sign-in page instead of
answering 401.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ari_app.config.desktop import DesktopSettings
from ari_app.desktop.accounts import USER_ID, Accounts, Role
from ari_app.logs import get_logger

log = get_logger("desktop.auth")

COOKIE = "hotline_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGNIN_PAGE = "/desktop"
MAX_SIGNIN_BODY = 4096


@dataclass(frozen=True)
class Session:
    key: str  # the Redis key (holds the hash of the cookie's id, never the id)
    user: str
    role: Role
    csrf: str
    created: float


def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> web.HTTPException:
    """An HTTP error with a JSON body {"error", "status"}, like the agents' API."""
    classes: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden,
        404: web.HTTPNotFound, 409: web.HTTPConflict, 413: web.HTTPRequestEntityTooLarge,
        415: web.HTTPUnsupportedMediaType, 429: web.HTTPTooManyRequests,
        503: web.HTTPServiceUnavailable}
    cls = classes[status]
    body = json.dumps({"error": message, "status": status})
    if cls is web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(MAX_SIGNIN_BODY, 0, text=body,
                                             content_type="application/json")
    return cls(text=body, content_type="application/json", headers=headers)


class SessionStore:
    def __init__(self, redis: Redis, key_prefix: str, settings: DesktopSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.base = "{" + key_prefix + "}:desk:session:"
        self.idle = settings.session_idle_seconds
        self.absolute = settings.session_absolute_seconds
        self.clock = clock

    def key(self, sid: str) -> str:
        return self.base + hashlib.sha256(sid.encode()).hexdigest()

    async def create(self, user: str, role: Role) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        key = self.key(sid)
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(key, mapping={"user": user, "role": role, "csrf": csrf,
                                 "created": f"{now:.3f}"})
            p.expire(key, self.idle)
            await p.execute()
        return sid, Session(key=key, user=user, role=role, csrf=csrf, created=now)

    async def get(self, sid: str) -> Session | None:
        """The live session for this cookie id, its idle time restarted; None if none."""
        if not sid or len(sid) > 128:
            return None
        key = self.key(sid)
        raw = await self.redis.hgetall(key)
        if not raw:
            return None
        d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                             else v) for k, v in raw.items()}
        try:
            created = float(d["created"])
            session = Session(key=key, user=d["user"], role=cast(Role, d["role"]),
                              csrf=d["csrf"], created=created)
        except (KeyError, ValueError):
            await self.redis.delete(key)
            return None
        left = created + self.absolute - self.clock()
        if left <= 0:
            await self.redis.delete(key)
            return None
        await self.redis.expire(key, max(1, int(min(self.idle, left))))
        return session

    async def destroy(self, session: Session) -> None:
        await self.redis.delete(session.key)


class SigninLimiter:
    """Failed sign-ins per user and per client address, in fixed windows in Redis
    (shared by every instance, so spreading guesses over instances gains nothing)."""

    def __init__(self, redis: Redis, key_prefix: str, settings: DesktopSettings) -> None:
        self.redis = redis
        self.base = "{" + key_prefix + "}:desk:fail:"
        self.per_user = settings.signin_fail_per_user
        self.per_address = settings.signin_fail_per_address
        self.window = settings.signin_fail_window_seconds

    def _keys(self, user: str, address: str) -> tuple[str, str]:
        return self.base + "user:" + user, self.base + "addr:" + address

    async def retry_after(self, user: str, address: str) -> int | None:
        """Seconds until this user or address may try again; None if neither is blocked."""
        ku, ka = self._keys(user, address)
        async with self.redis.pipeline(transaction=False) as p:
            p.get(ku)
            p.ttl(ku)
            p.get(ka)
            p.ttl(ka)
            nu, tu, na, ta = await p.execute()
        waits = [int(t) for n, t, limit in ((nu, tu, self.per_user), (na, ta, self.per_address))
                 if n is not None and int(n) >= limit]
        return max(1, *waits) if waits else None

    async def failed(self, user: str, address: str) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            for key in self._keys(user, address):
                p.set(key, 0, ex=self.window, nx=True)
                p.incr(key)
            await p.execute()

    async def succeeded(self, user: str) -> None:
        await self.redis.delete(self._keys(user, "")[0])


class DesktopAuth:
    """Sign-in, sign-out and the session check behind `require_session`."""

    def __init__(self, accounts: Accounts | None, sessions: SessionStore,
                 limiter: SigninLimiter, *, secure_cookie: bool) -> None:
        self.accounts = accounts  # None: no credentials file configured, the desktop is off
        self.sessions = sessions
        self.limiter = limiter
        self.secure_cookie = secure_cookie
        # argon2 takes 64 MiB and tens of ms per check: a few at a time, off the event loop
        self._verifying = asyncio.Semaphore(2)

    def _on(self) -> Accounts:
        if self.accounts is None:
            raise refuse(503, "the desktop is off: no desktop.credentials_file is configured")
        return self.accounts

    # -- the check -----------------------------------------------------------------------------
    async def check(self, request: web.Request, role: Role | None = None,
                    page: bool = False) -> Session:
        self._on()
        if "Authorization" in request.headers:
            raise refuse(401, "the desktop takes no Authorization header (the API token is "
                              "for machines): sign in with your own user and password")
        session = await self._session(request)
        if session is None:
            if page and request.method in SAFE_METHODS:
                raise web.HTTPSeeOther(f"{SIGNIN_PAGE}?next={quote(request.path_qs, safe='/')}")
            raise refuse(401, "not signed in, or the session has expired: sign in again")
        if role is not None and session.role != role:
            raise refuse(403, f"this needs a {role}'s account; {session.user} is "
                              f"signed in as {session.role}")
        if request.method not in SAFE_METHODS:
            check_origin(request)
            presented = request.headers.get(CSRF_HEADER, "")
            if not presented or not hmac.compare_digest(presented.encode(),
                                                        session.csrf.encode()):
                log.warning("desktop.csrf_refused", user=session.user, path=request.path,
                            remote=request.remote, present=bool(presented))
                raise refuse(403, f"missing or wrong CSRF token: send the {CSRF_HEADER} "
                                  "header that sign-in (or GET /desktop/api/me) gave")
        return session

    async def _session(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        if not sid:
            return None
        try:
            return await self.sessions.get(sid)
        except RedisError as e:
            log.warning("desktop.sessions_unavailable", error=str(e))
            raise refuse(503, "sessions are unavailable (Redis unreachable); "
                              "try again shortly") from None

    # -- sign-in and sign-out ------------------------------------------------------------------
    async def signin(self, request: web.Request) -> web.Response:
        accounts = self._on()
        check_origin(request)
        if request.content_type != "application/json":
            raise refuse(415, "sign-in takes a JSON body: {\"user\": ..., \"password\": ...}")
        if (request.content_length or 0) > MAX_SIGNIN_BODY:
            raise refuse(413, f"sign-in body larger than {MAX_SIGNIN_BODY} bytes")
        try:
            body = json.loads(await request.content.read(MAX_SIGNIN_BODY + 1))
        except (ValueError, UnicodeDecodeError):
            raise refuse(400, "sign-in body is not valid JSON") from None
        user = body.get("user") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(user, str) or not isinstance(password, str) or not password:
            raise refuse(400, "sign-in needs a string 'user' and a non-empty 'password'")
        user = user.strip().lower()
        address = request.remote or "unknown"
        if not USER_ID.match(user):
            raise refuse(400, "a user id is 1-40 of a-z 0-9 _ -")
        try:
            wait = await self.limiter.retry_after(user, address)
        except RedisError as e:
            log.warning("desktop.limiter_unavailable", error=str(e))
            raise refuse(503, "sign-in is unavailable (Redis unreachable)") from None
        if wait is not None:
            log.warning("desktop.signin_rate_limited", user=user, remote=address)
            raise refuse(429, f"too many failed sign-ins; try again in {wait} s",
                         {"Retry-After": str(wait)})
        async with self._verifying:
            account = await asyncio.to_thread(accounts.verify, user, password[:512])
        if account is None:
            await self.limiter.failed(user, address)
            log.warning("desktop.signin_failed", user=user, remote=address)
            raise refuse(401, "wrong user or password")
        await self.limiter.succeeded(user)
        old = await self._session(request)
        if old is not None:  # a new id at every sign-in: no session fixation
            await self.sessions.destroy(old)
        sid, session = await self.sessions.create(account.user, account.role)
        log.info("desktop.signed_in", user=account.user, role=account.role, remote=address)
        resp = web.json_response({"user": session.user, "role": session.role,
                                  "csrf": session.csrf})
        resp.set_cookie(COOKIE, sid, path="/", httponly=True, samesite="Strict",
                        secure=self.secure_cookie)
        return resp

    async def signout(self, request: web.Request) -> web.Response:
        session = await self.check(request)
        await self.sessions.destroy(session)
        log.info("desktop.signed_out", user=session.user)
        resp = web.json_response({"signed_out": session.user})
        resp.del_cookie(COOKIE, path="/")
        return resp


def check_origin(request: web.Request) -> None:
    """A browser names the page that sent a request; it must be one of ours."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    host = request.headers.get("Host", "")
    if origin == "null" or urlsplit(origin).netloc != host:
        log.warning("desktop.origin_refused", origin=origin[:100], path=request.path)
        raise refuse(403, "cross-site request refused (Origin is not this server)")


AUTH_KEY = web.AppKey("desktop.auth", DesktopAuth)
SESSION_KEY = web.RequestKey("desktop.session", Session)
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def require_session(role: Role | None = None, *, page: bool = False) -> Callable[[H], H]:
    """Guard an aiohttp handler (a function or a method) with a signed-in session.

    Refuses with 401 (no session), 403 (wrong role, or a change without the
    CSRF token), 503 (desktop off, Redis away); the handler reads the session
    with `session_of(request)`."""

    def wrap(handler: H) -> H:
        @functools.wraps(handler)
        async def guarded(*args: Any) -> web.StreamResponse:
            request = args[-1]
            assert isinstance(request, web.Request)
            session = await request.app[AUTH_KEY].check(request, role=role, page=page)
            request[SESSION_KEY] = session
            return await handler(*args)

        return cast(H, guarded)

    return wrap


def session_of(request: web.Request) -> Session:
    try:
        return request[SESSION_KEY]
    except KeyError:
        raise RuntimeError("session_of() outside a handler guarded by require_session()"
                           ) from None


__all__ = [
    "AUTH_KEY",
    "COOKIE",
    "CSRF_HEADER",
    "DesktopAuth",
    "Session",
    "SessionStore",
    "SigninLimiter",
    "refuse",
    "require_session",
    "session_of",
]
