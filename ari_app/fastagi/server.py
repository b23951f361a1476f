"""The FastAGI look-up the dialplan runs before Stasis.

It answers three questions before the app spends anything on a call: is this
caller blocked (the dialplan then plays a notice and hangs up), which
language did this caller choose last time, and has this caller a configured
queue priority. And when the dialplan could not
hand a call to the app (the ARI connection was down, or the app was draining),
`unavailable` writes that call's record, so no call goes uncounted. It must
answer fast and never hang a call: Redis gets a short timeout and every failure means "no answer"
(the dialplan fails open into Stasis).

panoramisk's own connection handler loops forever on a peer that closes
before sending its headers; this server reads the headers itself, bounded in
size and time, then uses panoramisk's Request to speak AGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Protocol

from panoramisk.fast_agi import Request

from ari_app.config.models import HotlineConfig
from ari_app.interactions.store import CallStore
from ari_app.logs import get_logger
from ari_app.records.events import Recorder, RecordEvent
from ari_app.records.model import CallRecord, HangupBy, Outcome, utcnow
from ari_app.sanitize import clean_text

log = get_logger("agi")
ANONYMOUS = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})
MAX_HEADER_LINES = 128


def normalise_number(number: str) -> str:
    return re.sub(r"[^0-9]", "", number)


class EventSink(Protocol):
    async def publish_events(self, events: list[RecordEvent]) -> object: ...


class AgiServer:
    def __init__(self, cfg: HotlineConfig, store: CallStore,
                 records: EventSink | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.records = records
        self._blocked = {normalise_number(n) for n in cfg.callers.blocklist}
        self._priority = {normalise_number(n): p for n, p in cfg.queue.priority_callers.items()}
        self.requests = 0
        self.refused = 0

    def is_blocked(self, caller: str) -> bool:
        if caller.strip().lower() in ANONYMOUS:
            return self.cfg.callers.anonymous == "reject"
        return normalise_number(caller) in self._blocked

    def caller_priority(self, caller: str) -> int:
        """The caller's configured queue priority (queue.priority_callers), 0 if none."""
        if caller.strip().lower() in ANONYMOUS:
            return 0
        return self._priority.get(normalise_number(caller), 0)

    async def _headers(self, reader: asyncio.StreamReader) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = await reader.readline()
            if not line:
                raise ConnectionError("peer closed before the AGI environment ended")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text:
                return headers
            key, sep, val = text.partition(": ")
            if sep:
                headers[key] = val
        raise ValueError("AGI environment too long")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            headers = await asyncio.wait_for(self._headers(reader), 5)
            script = headers.get("agi_network_script", "")
            if script == "unavailable":
                await self._unavailable(headers)
                return
            if script != "lookup":
                self.refused += 1
                log.warning("agi.unknown_script", script=clean_text(script, 64))
                return
            caller = clean_text(headers.get("agi_callerid", ""), 64)
            req = Request(app=None, headers=headers, reader=reader, writer=writer)
            blocked = self.is_blocked(caller)
            await req.send_command(f'SET VARIABLE HOTLINE_BLOCKED "{1 if blocked else 0}"')
            if not blocked:
                try:
                    lang = await asyncio.wait_for(self.store.remembered_language(caller), 0.5)
                except TimeoutError:
                    lang = None
                codes = {lang.code for lang in self.cfg.languages}
                if lang in codes:
                    await req.send_command(f'SET VARIABLE HOTLINE_LANGUAGE "{lang}"')
                # handed to Stasis as its third argument (asterisk-config/extensions.conf)
                priority = self.caller_priority(caller)
                if priority:
                    await req.send_command(f'SET VARIABLE HOTLINE_PRIORITY "{priority}"')
            log.info("agi.lookup", blocked=blocked)
        except (TimeoutError, ConnectionError, ValueError, OSError) as e:
            self.refused += 1
            log.warning("agi.bad_request", error=str(e)[:200])
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _unavailable(self, headers: dict[str, str]) -> None:
        """The record of a call the dialplan kept from the app: refused."""
        status = clean_text(headers.get("agi_arg_1", ""), 16)
        rec = CallRecord(
            call_id=uuid.uuid4().hex[:20], app=self.cfg.instance_id,
            channel_uniqueid=clean_text(headers.get("agi_uniqueid", ""), 64),
            linkedid=clean_text(headers.get("agi_uniqueid", ""), 64),
            caller=clean_text(headers.get("agi_callerid", ""), 64),
            dialled=clean_text(headers.get("agi_arg_2", "") or headers.get("agi_extension", ""),
                               32),
            arrived_at=utcnow(), ended_at=utcnow(), outcome=Outcome.REJECTED,
            hangup_by=HangupBy.APP,
            failure=("the hotline app was not connected to Asterisk (Stasis app not active)"
                     if status == "FAILED" else "refused while the hotline app was draining"))
        log.warning("agi.call_refused", call_id=rec.call_id, reason=rec.failure)
        if self.records is not None:
            recorder = Recorder(rec)
            recorder.emit("ended")  # arrived and ended at once: one event
            await self.records.publish_events(recorder.take())

    async def serve(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self.handle, self.cfg.agi.bind, self.cfg.agi.port)
        log.info("agi.listening", bind=self.cfg.agi.bind, port=self.cfg.agi.port)
        async with server:
            await stop.wait()
        log.info("agi.stopped")
