"""A recorder of everything that crosses the ARI boundary, for test fixtures.

When `HOTLINE_ARI_TRANSCRIPT` names a directory, the supervisor writes one
JSONL file per app run there: every raw event as the app's event sink gets it,
and every operation the app sends through `AriClient` (method name, arguments,
then its result or the `AriError` status). scripts/capture_transcripts.py cuts
these into per-scenario fixtures that tests/support/fake_ari.py replays.

It is a capture tool for the lab rig, not for production: lines are written
synchronously and the file holds callers' numbers. Unset, nothing here runs
(the supervisor uses the plain client and sink).

Line shapes (each also has `seq`, its position in the file, and `t`, seconds
since the recorder started):
    {"kind": "event", "event": {...}}
    {"kind": "op", "op": "play", "args": {...}}
    {"kind": "result", "of": <seq of the op>, "result": ...}
    {"kind": "error", "of": <seq of the op>, "status": 404, "message": "..."}
    {"kind": "connected"} / {"kind": "disconnected"}
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from ari_app.ari.client import AriClient, AriError, Event, RawClient

ENV = "HOTLINE_ARI_TRANSCRIPT"
FORMAT = 1


def operations() -> dict[str, inspect.Signature]:
    """The public coroutine methods of AriClient: every operation the app can send."""
    return {name: inspect.signature(fn) for name, fn in vars(AriClient).items()
            if not name.startswith("_") and inspect.iscoroutinefunction(fn)}


class TranscriptWriter:
    """Appends transcript lines to one file; each line is flushed, so a reader
    (the capture script) sees it while the app runs."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.path = directory / f"ari-{stamp}-{os.getpid()}.jsonl"
        self._file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._t0 = time.monotonic()
        self._seq = 0
        self.write({"kind": "start", "format": FORMAT, "pid": os.getpid()})

    def write(self, line: dict[str, Any]) -> int:
        """Writes one line; returns its seq."""
        self._seq += 1
        seq = self._seq
        out = {"seq": seq, "t": round(time.monotonic() - self._t0, 4), **line}
        self._file.write(json.dumps(out, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        return seq

    def event_sink(self, sink: Callable[[Event], None]) -> Callable[[Event], None]:
        """The app's sink, with each event written down before it is handed over."""
        def recording_sink(ev: Event) -> None:
            self.write({"kind": "event", "event": ev})
            sink(ev)
        return recording_sink

    def close(self) -> None:
        self._file.close()


def from_env() -> TranscriptWriter | None:
    directory = os.environ.get(ENV, "").strip()
    return TranscriptWriter(Path(directory)) if directory else None


class RecordingAriClient(AriClient):
    """An AriClient whose every operation is written to a transcript.

    The operations are wrapped by name, so one added to AriClient is recorded
    without a change here."""

    def __init__(self, raw: RawClient | None, writer: TranscriptWriter,
                 reconnect_wait: float = 10.0) -> None:
        super().__init__(raw, reconnect_wait)
        self._writer = writer
        for name, sig in operations().items():
            setattr(self, name, self._recorded(name, sig, getattr(super(), name)))

    def _recorded(self, name: str, sig: inspect.Signature,
                  method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def recorded(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            call_args = {k: v for k, v in bound.arguments.items() if k != "self"}
            seq = self._writer.write({"kind": "op", "op": name, "args": call_args})
            try:
                result = await method(*args, **kwargs)
            except AriError as e:
                self._writer.write({"kind": "error", "of": seq, "status": e.status,
                                    "message": str(e)[:300]})
                raise
            except BaseException as e:
                # a cancelled or crashed request: the transcript says it never answered
                self._writer.write({"kind": "error", "of": seq, "status": None,
                                    "message": f"{type(e).__name__}: {e}"[:300],
                                    "exception": type(e).__name__})
                raise
            self._writer.write({"kind": "result", "of": seq, "result": result})
            return result
        recorded.__name__ = name
        return recorded
