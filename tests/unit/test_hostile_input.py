"""Issue 6, unit level: caller-supplied text never breaks a log line or a record."""

from __future__ import annotations

import asyncio
import io
import json
import sys

import pytest
import structlog

from ari_app.logs import setup_logging
from ari_app.records.model import CallRecord, utcnow
from ari_app.sanitize import clean_text

NASTY = [
    'evil\n{"event": "call.outcome", "level": "info", "outcome": "answered"}',
    "a\r\nb\tc\x00d\x1b[31mred\x1b[0m",
    '"quoted" \'single\' \\backslash\\',
    "\u202eRTL override\u200b zero width\ufeff",
    "x" * 500,
    "\ud800 lone surrogate",
    "نص عربي 974",
]


@pytest.mark.parametrize("raw", NASTY)
def test_clean_text_keeps_a_printable_bounded_line(raw: str) -> None:
    out = clean_text(raw, 64)
    assert len(out) <= 64
    assert "\n" not in out and "\r" not in out and "\x00" not in out and "\x1b" not in out
    assert all(ch.isprintable() or ch == " " for ch in out), repr(out)
    out.encode("utf-8")  # no lone surrogates left: the record and log can be written


@pytest.mark.parametrize("raw", NASTY)
def test_a_record_with_a_hostile_caller_serialises_to_one_line(raw: str) -> None:
    rec = CallRecord(call_id="c1", app="hotline", channel_uniqueid="1", linkedid="1",
                     caller=clean_text(raw, 64), dialled="109", arrived_at=utcnow())
    line = rec.model_dump_json()
    assert "\n" not in line
    assert json.loads(line)["caller"] == clean_text(raw, 64)


@pytest.mark.parametrize("raw", NASTY)
def test_log_lines_stay_one_json_object_each(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    setup_logging("INFO", "json")
    try:
        log = structlog.get_logger("hostile")
        log.info("call.start", caller=raw, dialled=raw)
        log.warning(raw, header=raw)  # even as the event name
        import logging

        logging.getLogger("panoramisk").warning("library says %s", raw)
    finally:
        structlog.reset_defaults()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3, lines
    for line in lines:
        obj = json.loads(line)
        assert obj["event"] != "call.outcome"
    assert json.loads(lines[0])["caller"] == raw.encode("utf-8", "replace").decode("utf-8") \
        or "\ud800" in raw


def test_secrets_are_redacted_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    setup_logging("INFO", "json")
    try:
        structlog.get_logger("x").info("login", password="hunter2", secret="s3", token="t0k",
                                       Authorization="Bearer abc")
    finally:
        structlog.reset_defaults()
    out = buf.getvalue()
    for s in ("hunter2", "s3", "t0k", "Bearer abc"):
        assert s not in out


def test_agi_lookup_with_hostile_environment_never_hangs_or_injects() -> None:
    """A caller id with quotes cannot add AGI commands; an endless environment is cut off."""
    from ari_app.fastagi.server import AgiServer

    class _Store:
        async def remembered_language(self, caller: str) -> str | None:
            return "en"

    from pathlib import Path

    from ari_app.config.loader import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "config/hotline.yaml")
    srv = AgiServer(cfg, _Store())  # type: ignore[arg-type]

    async def talk(env: bytes, replies: int) -> tuple[bytes, int]:
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(env)
            await w.drain()
            out = b""
            for _ in range(replies):
                line = await asyncio.wait_for(r.readline(), 3)
                out += line
                if not line:
                    break
                w.write(b"200 result=1\n")
                await w.drain()
            rest = await asyncio.wait_for(r.read(), 7)
            w.close()
            return out + rest, srv.refused

    env = (b"agi_network_script: lookup\n"
           b'agi_callerid: 1" ; EXEC Dial PJSIP/900123@carrier "\n\n')
    out, _ = asyncio.run(talk(env, 2))
    commands = [c for c in out.decode().splitlines() if c]
    assert all(c.startswith("SET VARIABLE HOTLINE_") for c in commands), commands
    assert not any("EXEC" in c or "Dial" in c for c in commands)
    # a peer that never ends its environment is dropped within the 5 s bound
    out, refused = asyncio.run(talk(b"agi_network_script: lookup\n" + b"x: y\n" * 200, 0))
    assert refused >= 1 and out == b""


def test_anonymous_policy() -> None:
    from pathlib import Path

    from ari_app.config.loader import load_config
    from ari_app.fastagi.server import AgiServer

    cfg = load_config(Path(__file__).resolve().parents[2] / "config/hotline.yaml")
    allow = AgiServer(cfg.model_copy(update={"callers": cfg.callers.model_copy(
        update={"anonymous": "allow"})}), None)  # type: ignore[arg-type]
    reject = AgiServer(cfg.model_copy(update={"callers": cfg.callers.model_copy(
        update={"anonymous": "reject"})}), None)  # type: ignore[arg-type]
    for who in ("", "anonymous", "Anonymous", "restricted", " unknown "):
        assert allow.is_blocked(who) is False
        assert reject.is_blocked(who) is True
    assert reject.is_blocked("97455500001") is False
