"""The FastAGI look-up the dialplan runs before Stasis.

It answers two questions before the app spends anything on a call: is this
caller blocked (the dialplan then plays a notice and hangs up), and which
language did this caller choose last time. It must answer fast and never hang
a call: Redis gets a short timeout and every failure means "no answer"
(the dialplan fails open into Stasis).

panoramisk's own connection handler loops forever on a peer that closes
before sending its headers; this server reads the headers itself, bounded in
size and time, then uses panoramisk's Request to speak AGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from panoramisk.fast_agi import Request

from ari_app.config.models import HotlineConfig
from ari_app.interactions.store import CallStore
from ari_app.logs import get_logger
from ari_app.sanitize import clean_text

log = get_logger("agi")
ANONYMOUS = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})
MAX_HEADER_LINES = 128


def normalise_number(number: str) -> str:
    return re.sub(r"[^0-9]", "", number)


class AgiServer:
    def __init__(self, cfg: HotlineConfig, store: CallStore) -> None:
        self.cfg = cfg
        self.store = store
        self._blocked = {normalise_number(n) for n in cfg.callers.blocklist}
        self.requests = 0
        self.refused = 0

    def is_blocked(self, caller: str) -> bool:
        if caller.strip().lower() in ANONYMOUS:
            return self.cfg.callers.anonymous == "reject"
        return normalise_number(caller) in self._blocked

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
            log.info("agi.lookup", blocked=blocked)
        except (TimeoutError, ConnectionError, ValueError, OSError) as e:
            self.refused += 1
            log.warning("agi.bad_request", error=str(e)[:200])
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def serve(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self.handle, self.cfg.agi.bind, self.cfg.agi.port)
        log.info("agi.listening", bind=self.cfg.agi.bind, port=self.cfg.agi.port)
        async with server:
            await stop.wait()
        log.info("agi.stopped")
