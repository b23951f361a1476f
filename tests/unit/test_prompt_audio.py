"""The rendered sound tree: every prompt the catalog names, for every language,
is a non-silent 8 kHz mono 16-bit WAV of a sane length.

Render first (`make prompts`, i.e. `python -m ari_app.prompts.render`); the tree
is taken from $HOTLINE_SOUNDS_DIR, default build/sounds.
"""

from __future__ import annotations

import math
import os
import sys
import wave
from array import array
from pathlib import Path

import pytest

from ari_app.config.loader import load_config
from ari_app.prompts.catalog import NUMBER_PREFIX, PromptCatalog

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "hotline.yaml"
SOUNDS = Path(os.environ.get("HOTLINE_SOUNDS_DIR") or REPO / "build" / "sounds")
LANGS = [lang.code for lang in load_config(CONFIG).languages]

RATE = 8000
MIN_SECONDS = 0.2
MAX_SECONDS = 12.0
MAX_NUMBER_SECONDS = 5.0
# the callback's offer reads out three choices and its refusal the number rule: in
# the slower voices (Arabic, Urdu, Hindi) they run to 18 s; still bounded, so a
# render that loops or pads is caught
LONG_PROMPTS = {"callback-offer": 20.0, "callback-offer-other": 20.0,
                "callback-bad-number": 20.0}
MIN_RMS = 300.0  # of 32767; rendered speech is normalised to -3 dBFS peak


@pytest.fixture(scope="module")
def catalog() -> PromptCatalog:
    return PromptCatalog.load(load_config(CONFIG), CONFIG.parent / "prompts")


def _rms(frames: bytes) -> float:
    samples = array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def _problem(path: Path, name: str) -> str | None:
    if not path.is_file():
        return f"{path}: missing"
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
            nframes = w.getnframes()
    except (wave.Error, EOFError) as e:
        return f"{path}: not a PCM WAV ({e})"
    if (rate, channels, width) != (RATE, 1, 2):
        return (
            f"{path}: {rate} Hz, {channels} channel(s), {8 * width}-bit; want 8000 Hz mono 16-bit"
        )
    seconds = nframes / rate
    top = MAX_NUMBER_SECONDS if name.startswith(NUMBER_PREFIX) else \
        LONG_PROMPTS.get(name, MAX_SECONDS)
    if not MIN_SECONDS <= seconds <= top:
        return f"{path}: lasts {seconds:.2f}s; want {MIN_SECONDS}-{top}s"
    rms = _rms(frames)
    if rms < MIN_RMS:
        return f"{path}: nearly silent (RMS {rms:.0f} < {MIN_RMS:.0f})"
    return None


@pytest.mark.parametrize("lang", LANGS)
def test_every_prompt_rendered(lang: str, catalog: PromptCatalog) -> None:
    if not SOUNDS.is_dir():
        pytest.fail(f"no sound tree at {SOUNDS}: run `make prompts` first")
    base = SOUNDS / lang / "hotline"
    if not base.is_dir():
        pytest.fail(f"no {base}: run `make prompts` first")
    names = sorted(catalog.names(lang))
    assert len(names) > 1000  # the prompts plus num/0 .. num/999
    problems = [p for n in names if (p := _problem(base / f"{n}.wav", n))]
    assert not problems, f"{len(problems)} bad prompt file(s):\n" + "\n".join(problems[:25])
