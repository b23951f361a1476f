"""Sounds for announcements, in the format the prompts use (8 kHz mono 16-bit WAV).

Text goes through the prompts' own TTS (ari_app.prompts.render: espeak-ng with
the language's voice, then sox), so an announcement sounds like the menus. An
uploaded recording is checked (a WAV file, not too big, not too long) and
converted by sox to the same format.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

from ari_app.announcements.model import AnnouncementError
from ari_app.prompts.render import (
    SOX,
    SOX_EFFECTS,
    SOX_OUT_ARGS,
    TIMEOUT,
    RenderError,
    _render_one,
    probe_tools,
)

MIN_SECONDS = 0.3  # a shorter recording is a mistake (or silence)


@dataclass(frozen=True)
class Sound:
    data: bytes  # a whole WAV file
    seconds: float

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return float(w.getnframes()) / float(w.getframerate())


def speak(voice: str, text: str) -> Sound:
    """One text in one voice (blocking: espeak-ng and sox run as processes)."""
    with tempfile.TemporaryDirectory(prefix="hotline-announce-") as tmp:
        dest = Path(tmp) / "out.wav"
        try:
            _render_one(voice, text, str(dest))
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            raise RenderError(f"text to speech failed for voice {voice!r}: {e}") from None
        data = dest.read_bytes()
    return Sound(data, wav_seconds(data))


def check_tools(voices: list[str]) -> None:
    """espeak-ng and sox are here and know every voice needed (RenderError if not)."""
    tools = probe_tools()
    missing = [v for v in voices if v not in tools.voices]
    if missing:
        raise RenderError(f"espeak-ng has no voice {missing[0]!r}")


def convert(lang: str, raw: bytes, max_bytes: int, max_seconds: float) -> Sound:
    """An uploaded recording, refused with the reason or converted for Asterisk."""
    if len(raw) > max_bytes:
        raise AnnouncementError(
            f"the recording for {lang!r} is {len(raw)} bytes; at most {max_bytes}")
    if len(raw) < 44 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise AnnouncementError(
            f"the recording for {lang!r} is not a WAV file (RIFF/WAVE header missing)")
    with tempfile.TemporaryDirectory(prefix="hotline-announce-") as tmp:
        src, dest = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        src.write_bytes(raw)
        try:
            conv = subprocess.run([SOX, "-q", str(src), *SOX_OUT_ARGS, str(dest), *SOX_EFFECTS],
                                  capture_output=True, timeout=TIMEOUT, check=False)
        except (OSError, subprocess.SubprocessError) as e:
            raise RenderError(f"sox cannot run: {e}") from None
        if conv.returncode != 0 or not dest.exists():
            err = conv.stderr.decode("utf-8", "replace").strip().splitlines()
            raise AnnouncementError(f"the recording for {lang!r} cannot be read as WAV: "
                                    f"{err[-1] if err else 'sox failed'}")
        data = dest.read_bytes()
    seconds = wav_seconds(data)
    if seconds < MIN_SECONDS:
        raise AnnouncementError(f"the recording for {lang!r} is {seconds:.2f} s long; "
                                f"at least {MIN_SECONDS} s")
    if seconds > max_seconds:
        raise AnnouncementError(f"the recording for {lang!r} is {seconds:.1f} s long; "
                                f"at most {max_seconds:g} s")
    return Sound(data, seconds)
