"""Typed ARI operations over asyncari's swagger repositories.

asyncari is kept for its swagger-driven REST and its websocket handling; the
app talks to Asterisk only through the methods here, so call code never
touches untyped objects and tests can read every operation the app uses.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from asyncari.client import Client
from asyncari.model import OperationError
from asyncswagger11.http_client import AsynchronousHttpClient, Authenticator

from ari_app.logs import get_logger

Event = dict[str, Any]
log = get_logger("ari")


class AriError(Exception):
    def __init__(self, op: str, status: int | None, message: str) -> None:
        super().__init__(f"ARI {op} failed ({status}): {message}")
        self.status = status


class AriNotConnected(AriError):
    """The events websocket is down and did not come back in time."""


class _Auth(Authenticator):  # type: ignore[misc]
    """Basic auth on REST calls; the websocket takes `api_key` (its headers are not sent)."""

    def __init__(self, host: str, username: str, password: str) -> None:
        super().__init__(host)
        self._basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._key = f"{username}:{password}"

    def apply(self, headers: dict[str, str], params: dict[str, str]) -> None:
        if headers is params:  # asyncswagger11's ws_connect passes one dict for both
            params["api_key"] = self._key
        else:
            headers["Authorization"] = self._basic


class RawClient(Client):  # type: ignore[misc]
    """asyncari's client with events handed over raw, without building model objects.

    Every event goes to `sink` synchronously: asyncari times out a listener
    that blocks for over a second, so the sink must only enqueue.
    """

    def __init__(self, tg: Any, base_url: str, apps: str, http: Any,
                 sink: Callable[[Event], None]) -> None:
        super().__init__(tg, base_url, apps, http)
        self._sink = sink
        self.closed = anyio.Event()

    async def process_ws(self, msg: Event) -> None:
        self._sink(msg)

    async def _run(self, evt: Any = None) -> None:
        try:
            await super()._run(evt)
        finally:
            self.closed.set()


DEFAULT_REQUEST_TIMEOUT = 10.0


def _session(timeout: float = DEFAULT_REQUEST_TIMEOUT) -> httpx.AsyncClient:
    # asyncswagger11 allows only 3 concurrent requests; a busy hotline needs more.
    # The timeout bounds how long one call waits on an Asterisk that does not answer
    # (ari.request_timeout); connecting gets at most 3 s of it.
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
                             limits=httpx.Limits(max_connections=64,
                                                 max_keepalive_connections=32))


class _Http(AsynchronousHttpClient):  # type: ignore[misc]
    """asyncswagger11's client closes its session on any transport error and then
    retries on that closed session, so one failed request would break every
    later one until a reconnect. This one opens a fresh pool instead, and
    retries only when the request was never sent (a POST is not repeated).

    The old pool is closed only once the requests other calls have in flight on
    it are done (or timed out): closing it at once failed all of them with
    ReadError, so one call's timeout failed every call talking to ARI then. A
    timeout swaps nothing: httpx already drops that one connection."""

    session: httpx.AsyncClient
    timeout: float = DEFAULT_REQUEST_TIMEOUT
    _retiring: dict[asyncio.Task[None], httpx.AsyncClient]

    async def request(self, method: str, url: str, params: Any = None, data: Any = None,
                      headers: Any = None) -> httpx.Response:
        params = dict(params or {})
        headers = dict(headers or {})
        if self.authenticator is not None and self.authenticator.matches(url):
            self.authenticator.apply(headers, params)
        try:
            response = await self.session.request(method, url, params=params, data=data,
                                                  headers=headers)
        except httpx.TimeoutException:
            raise
        except httpx.TransportError as e:
            old, self.session = self.session, _session(self.timeout)
            self._retire(old)
            if not isinstance(e, httpx.ConnectError):
                raise
            response = await self.session.request(method, url, params=params, data=data,
                                                  headers=headers)
        if response.status_code >= 400:
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as err:
                # asyncari reads the ARI error message from `.data`
                err.data = (  # type: ignore[attr-defined]
                    _json_or_none(response) if response.status_code == 400 else None)
                raise
        return response


    def _retire(self, old: httpx.AsyncClient) -> None:
        async def close_later() -> None:
            await asyncio.sleep(self.timeout + 1.0)
            await old.aclose()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring[task] = old
        task.add_done_callback(lambda t: self._retiring.pop(t, None))

    async def close(self) -> None:
        for task, old in list(self._retiring.items()):
            task.cancel()
            await old.aclose()
        await super().close()


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def make_http(host: str, username: str, password: str,
              timeout: float = DEFAULT_REQUEST_TIMEOUT) -> Any:
    http = _Http(auth=_Auth(host, username, password))
    http.timeout = timeout
    http._retiring = {}
    http.session = _session(timeout)
    return http


RETRY_PAUSE = 0.1
# operations whose repeat answers 409/422 when the first attempt, whose answer was
# lost, already did the job
REPEAT_FINDS_IT_DONE = frozenset({"originateWithId", "playWithId", "createWithId",
                                  "addChannel", "record", "snoopChannelWithId"})


# Asterisk answers an originate 500 when it cannot make the channel (an agent's
# phone unreachable): repeating it only delays the next agent by a round trip.
# A lost answer (no status) is still tried again.
NO_RETRY_ON_5XX = frozenset({"originateWithId"})


class AriClient:
    """The app's one ARI client for its whole life, across websocket reconnects.

    A request made while the connection is being re-established waits for it (up
    to `reconnect_wait` seconds) instead of failing: a blip in the events
    websocket must not end the calls that happen to act during it."""

    def __init__(self, raw: RawClient | None, reconnect_wait: float = 10.0) -> None:
        self._raw = raw
        self.reconnect_wait = reconnect_wait
        self._attached = asyncio.Event()
        if raw is not None:
            self._attached.set()

    def attach(self, raw: RawClient) -> None:
        self._raw = raw
        self._attached.set()

    def detach(self) -> None:
        self._raw = None
        self._attached.clear()

    @property
    def attached(self) -> bool:
        return self._raw is not None

    async def _op(self, repo: str, op: str, *, missing_ok: bool = False, **kw: Any) -> Any:
        """One ARI request, tried twice when it failed in transit or Asterisk answered
        5xx: a lost answer or a passing fault must not end a citizen's call. Every
        operation the app uses is safe to repeat: the ones that create something
        name it (channel, playback, bridge ids), so a repeat that finds it made
        (409, or 422 for a channel already in its bridge) means the first one did it."""
        try:
            return await self._once(repo, op, missing_ok, kw)
        except AriNotConnected:
            raise
        except AriError as e:
            if e.status is not None and (e.status < 500 or op in NO_RETRY_ON_5XX):
                raise
            log.info("ari.retry", op=f"{repo}.{op}", status=e.status)
        await asyncio.sleep(RETRY_PAUSE)
        try:
            return await self._once(repo, op, missing_ok, kw)
        except AriError as e:
            if e.status in (409, 422) and op in REPEAT_FINDS_IT_DONE:
                return None
            raise

    async def _once(self, repo: str, op: str, missing_ok: bool, kw: dict[str, Any]) -> Any:
        raw = self._raw
        if raw is None:
            try:
                await asyncio.wait_for(self._attached.wait(), self.reconnect_wait)
            except TimeoutError:
                raise AriNotConnected(f"{repo}.{op}", None, "ARI is not connected") from None
            raw = self._raw
        try:
            return await getattr(getattr(raw, repo), op)(**kw)
        except OperationError as e:
            cause = e.__cause__
            status = getattr(getattr(cause, "response", None), "status_code", None)
            if missing_ok and status in (404, 409, 422):
                return None
            raise AriError(f"{repo}.{op}", status, str(e)) from None
        except httpx.HTTPStatusError as e:
            status = e.response.status_code
            if missing_ok and status in (404, 409, 422):
                return None
            raise AriError(f"{repo}.{op}", status, e.response.text[:200]) from None
        except httpx.HTTPError as e:
            raise AriError(f"{repo}.{op}", None, str(e) or type(e).__name__) from None

    # -- channels -----------------------------------------------------------
    async def answer(self, channel_id: str) -> None:
        await self._op("channels", "answer", channelId=channel_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._op("channels", "hangup", missing_ok=True, channelId=channel_id, reason=reason)

    async def play(self, channel_id: str, media: list[str], lang: str, playback_id: str) -> None:
        await self._op("channels", "playWithId", channelId=channel_id, playbackId=playback_id,
                       media=",".join(media), lang=lang)

    async def stop_playback(self, playback_id: str) -> None:
        await self._op("playbacks", "stop", missing_ok=True, playbackId=playback_id)

    async def start_moh(self, channel_id: str, moh_class: str = "default") -> None:
        await self._op("channels", "startMoh", missing_ok=True, channelId=channel_id,
                       mohClass=moh_class)

    async def stop_moh(self, channel_id: str) -> None:
        await self._op("channels", "stopMoh", missing_ok=True, channelId=channel_id)

    async def set_var(self, channel_id: str, name: str, value: str) -> None:
        await self._op("channels", "setChannelVar", missing_ok=True, channelId=channel_id,
                       variable=name, value=value)

    async def continue_in_dialplan(self, channel_id: str) -> None:
        await self._op("channels", "continueInDialplan", missing_ok=True, channelId=channel_id)

    async def originate(self, endpoint: str, channel_id: str, app: str, app_args: str,
                        ring_seconds: int, caller_id: str,
                        other_channel_id: str | None = None) -> None:
        kw: dict[str, Any] = {}
        if other_channel_id:
            kw["otherChannelId"] = other_channel_id
        await self._op("channels", "originateWithId", channelId=channel_id, endpoint=endpoint,
                       app=app, appArgs=app_args, timeout=ring_seconds, callerId=caller_id, **kw)

    async def originate_local(self, endpoint: str, channel_id: str, app: str, app_args: str,
                              ring_seconds: int, caller_id: str, variables: dict[str, str],
                              formats: str) -> None:
        """Originate a Local channel (the callback): the dialplan it runs reads
        `variables`, and a Local channel has no codecs of its own (`formats`)."""
        await self._op("channels", "originateWithId", channelId=channel_id, endpoint=endpoint,
                       app=app, appArgs=app_args, timeout=ring_seconds, callerId=caller_id,
                       variables=variables, formats=formats)

    async def transfer_progress(self, channel_id: str, state: str) -> None:
        """Tell the phone that sent a REFER how its transfer went (it gets a NOTIFY)."""
        await self._op("channels", "transfer_progress", missing_ok=True, channelId=channel_id,
                       states=state)

    async def ring(self, channel_id: str) -> None:
        await self._op("channels", "ring", missing_ok=True, channelId=channel_id)

    # -- bridges ------------------------------------------------------------
    async def create_bridge(self, bridge_id: str, name: str, kind: str = "mixing") -> None:
        await self._op("bridges", "createWithId", bridgeId=bridge_id, type=kind, name=name)

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self._op("bridges", "addChannel", bridgeId=bridge_id, channel=",".join(channel_ids))

    async def remove_from_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self._op("bridges", "removeChannel", missing_ok=True, bridgeId=bridge_id,
                       channel=",".join(channel_ids))

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._op("bridges", "destroy", missing_ok=True, bridgeId=bridge_id)

    async def record_bridge(self, bridge_id: str, name: str, fmt: str) -> None:
        """Record what the bridge mixes into `name`.`fmt` below Asterisk's recording
        spool; it stops when the bridge is destroyed."""
        await self._op("bridges", "record", bridgeId=bridge_id, name=name, format=fmt,
                       ifExists="overwrite", beep=False, terminateOn="none")

    async def play_bridge(self, bridge_id: str, media: list[str], lang: str,
                          playback_id: str) -> None:
        await self._op("bridges", "playWithId", bridgeId=bridge_id, playbackId=playback_id,
                       media=",".join(media), lang=lang)

    async def snoop(self, channel_id: str, snoop_id: str, spy: str, whisper: str, app: str,
                    app_args: str) -> None:
        """A snoop channel on `channel_id`: it hears `spy` and speaks into `whisper`
        (in: what the channel hears, out: what it sends, both, none)."""
        await self._op("channels", "snoopChannelWithId", channelId=channel_id,
                       snoopId=snoop_id, spy=spy, whisper=whisper, app=app, appArgs=app_args)

    # -- inventory ------------------------------------------------------------
    async def channel_ids(self) -> list[str]:
        res = await self._op("channels", "list")
        return [c.id for c in res or []]

    async def channels(self) -> list[dict[str, Any]]:
        """Every channel with its details (state, dialplan app data)."""
        res = await self._op("channels", "list")
        return [dict(getattr(c, "json", None) or {"id": c.id}) for c in res or []]

    async def playback_alive(self, playback_id: str) -> bool:
        """Is this playback still playing (ARI has no list of playbacks)?"""
        return await self._op("playbacks", "get", missing_ok=True,
                              playbackId=playback_id) is not None

    async def bridge_ids(self) -> list[str]:
        res = await self._op("bridges", "list")
        return [b.id for b in res or []]

    async def info(self) -> dict[str, Any]:
        res = await self._op("asterisk", "getInfo")
        return dict(res) if isinstance(res, dict) else {}
