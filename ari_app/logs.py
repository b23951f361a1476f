"""structlog set-up: JSON lines off a terminal, the call id bound to every line of a call.

Caller-supplied text (caller ids, SIP headers) is escaped by the JSON renderer,
so a newline or quote in it can never split a log line or forge another one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"password", "secret", "token", "authorization", "api_key"})


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def setup_logging(level: str = "INFO", fmt: str | None = None) -> None:
    tty = sys.stderr.isatty()
    fmt = fmt or os.environ.get("HOTLINE_LOG_FORMAT") or ("console" if tty else "json")
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (httpx, asyncari, panoramisk) log through stdlib logging: keep
    # their warnings, rendered by structlog into the same JSON stream.
    root = logging.getLogger()
    root.handlers[:] = [_ToStructlog()]
    root.setLevel(logging.WARNING)


class _ToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):
            msg = str(record.msg)
        structlog.get_logger(record.name).log(record.levelno, msg, logger=record.name)


def get_logger(name: str) -> Any:
    """A structlog logger; `Any` because structlog's filtering loggers are built at run time."""
    return structlog.get_logger(name)
