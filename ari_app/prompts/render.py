"""Render the prompt catalog to WAV files Asterisk plays natively.

Each (language, name) becomes ``<out>/<code>/hotline/<name>.wav``: 8000 Hz, mono,
16-bit signed PCM, made by ``espeak-ng -v <voice> --stdout | sox ... norm -3``.

Renders are cached by content: the key is the sha256 of the text, the voice, the
espeak-ng version and the sox arguments, so a second run (or another clone on the
same machine sharing the cache) renders nothing. Output files are hard links to
the cache where the filesystem allows, copies otherwise.

    python -m ari_app.prompts.render --config config/hotline.yaml \
        --out build/sounds --cache /var/cache/hotline/prompts
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ari_app.config.loader import ConfigError, config_path, load_config
from ari_app.prompts.catalog import Prompt, PromptCatalog

DEFAULT_CACHE = Path("/var/cache/hotline/prompts")
DEFAULT_OUT = Path("build/sounds")
CACHE_ENV = "HOTLINE_PROMPT_CACHE"
SUBDIR = "hotline"

ESPEAK = "espeak-ng"
SOX = "sox"
ESPEAK_ARGS: tuple[str, ...] = ("-s", "150")  # words per minute: a little slower for phones
SOX_OUT_ARGS: tuple[str, ...] = ("-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer")
SOX_EFFECTS: tuple[str, ...] = ("norm", "-3")
CACHE_FORMAT = 1  # bump to invalidate every cached render
TIMEOUT = 60.0


class RenderError(Exception):
    """A prompt that cannot be rendered; the message names the language and prompt."""


@dataclass(frozen=True, slots=True)
class RenderReport:
    rendered: int  # new renders made by espeak-ng + sox
    cached: int  # taken from the cache
    removed: int  # stale .wav files deleted from the output tree
    files: int  # prompt files now in the output tree
    seconds: float

    def summary(self) -> str:
        return (
            f"prompts: rendered {self.rendered}, cached {self.cached}, removed {self.removed}, "
            f"{self.files} files in {self.seconds:.1f}s"
        )


@dataclass(frozen=True, slots=True)
class Toolchain:
    espeak_version: str
    voices: frozenset[str]


def probe_tools() -> Toolchain:
    """Check espeak-ng and sox are installed; learn the espeak-ng version and voices."""
    for tool in (ESPEAK, SOX):
        if shutil.which(tool) is None:
            raise RenderError(f"{tool} is not installed (apt-get install espeak-ng sox)")
    ver = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
    voices = subprocess.run([ESPEAK, "--voices"], capture_output=True, text=True, timeout=TIMEOUT)
    if ver.returncode != 0 or voices.returncode != 0:
        raise RenderError(f"{ESPEAK} does not run: {(ver.stderr or voices.stderr).strip()}")
    names: set[str] = set()
    for line in voices.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.add(cols[1])  # language column, e.g. "en-gb"
            names.add(cols[4].rsplit("/", 1)[-1])  # file column, e.g. "gmw/en" -> "en"
    return Toolchain(espeak_version=ver.stdout.strip(), voices=frozenset(names))


def cache_key(text: str, voice: str, espeak_version: str) -> str:
    material = json.dumps(
        {
            "format": CACHE_FORMAT,
            "text": text,
            "voice": voice,
            "espeak": espeak_version,
            "espeak_args": ESPEAK_ARGS,
            "sox": [*SOX_OUT_ARGS, *SOX_EFFECTS],
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.wav"


def _render_one(voice: str, text: str, dest: str) -> None:
    """Worker: speak ``text`` into ``dest`` atomically. Raises RuntimeError on failure."""
    speak = subprocess.run(
        [ESPEAK, "-v", voice, *ESPEAK_ARGS, "--stdout"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    if speak.returncode != 0 or len(speak.stdout) <= 44:
        err = speak.stderr.decode("utf-8", "replace").strip() or "no audio produced"
        raise RuntimeError(f"espeak-ng -v {voice}: {err}")
    tmp = f"{dest}.{os.getpid()}.tmp.wav"
    conv = subprocess.run(
        [SOX, "-q", "-t", "wav", "-", *SOX_OUT_ARGS, tmp, *SOX_EFFECTS],
        input=speak.stdout,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    if conv.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise RuntimeError(f"sox: {conv.stderr.decode('utf-8', 'replace').strip()}")
    os.replace(tmp, dest)


def _place(src: Path, dest: Path) -> None:
    """Put the cached render at ``dest``: a hard link if possible, else a copy."""
    try:
        if dest.exists() and os.path.samefile(src, dest):
            return
    except OSError:
        pass
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _out_path(out_dir: Path, p: Prompt) -> Path:
    return out_dir / p.lang / SUBDIR / f"{p.name}.wav"


def render(
    catalog: PromptCatalog,
    out_dir: Path,
    cache_dir: Path = DEFAULT_CACHE,
    jobs: int = 2,
) -> RenderReport:
    """Render every prompt of every language into ``out_dir``; see the module doc."""
    started = time.monotonic()
    if jobs < 1:
        raise RenderError(f"jobs must be at least 1, not {jobs}")
    tools = probe_tools()
    prompts = list(catalog.prompts())
    for lang in catalog.languages:
        voice = catalog.voice(lang)
        if voice not in tools.voices:
            raise RenderError(f"language {lang}: espeak-ng has no voice {voice!r}")
    for p in prompts:
        if not p.text.strip():
            raise RenderError(f"language {p.lang}, prompt {p.name}: the text is empty")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RenderError(
            f"cache {cache_dir}: cannot create ({e.strerror}); pass --cache DIR or set {CACHE_ENV}"
        ) from None

    todo: dict[str, Prompt] = {}  # cache key -> one prompt needing it
    keyed: list[tuple[Prompt, Path]] = []
    for p in prompts:
        key = cache_key(p.text, p.voice, tools.espeak_version)
        cached = _cache_path(cache_dir, key)
        keyed.append((p, cached))
        if not cached.exists():
            todo.setdefault(key, p)

    if todo:
        for key in todo:
            _cache_path(cache_dir, key).parent.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures: list[tuple[Prompt, Future[None]]] = [
                (p, pool.submit(_render_one, p.voice, p.text, str(_cache_path(cache_dir, key))))
                for key, p in todo.items()
            ]
            for p, fut in futures:
                try:
                    fut.result()
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    for _, other in futures:
                        other.cancel()
                    raise RenderError(f"language {p.lang}, prompt {p.name}: {e}") from None

    wanted: set[Path] = set()
    for p, cached in keyed:
        dest = _out_path(out_dir, p)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _place(cached, dest)
        wanted.add(dest)

    removed = 0
    for lang in catalog.languages:
        for old in (out_dir / lang / SUBDIR).rglob("*.wav"):
            if old not in wanted:
                old.unlink()
                removed += 1

    fresh = {_cache_path(cache_dir, key) for key in todo}
    return RenderReport(
        rendered=len(todo),
        cached=sum(1 for _, cached in keyed if cached not in fresh),
        removed=removed,
        files=len(wanted),
        seconds=time.monotonic() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ari_app.prompts.render",
        description="Render the Hotline 109 prompts to 8 kHz WAV with espeak-ng and sox.",
    )
    parser.add_argument(
        "--config", help="product config (default: $HOTLINE_CONFIG or config/hotline.yaml)"
    )
    parser.add_argument(
        "--prompts", type=Path, help="prompt texts directory (default: prompts/ beside the config)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"sound tree to write (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE),
        help=f"render cache (default: ${CACHE_ENV} or {DEFAULT_CACHE})",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel renders (default: 2)")
    args = parser.parse_args(argv)
    try:
        cfg_file = config_path(args.config)
        cfg = load_config(cfg_file)
        prompts_dir = args.prompts or cfg_file.parent / "prompts"
        catalog = PromptCatalog.load(cfg, prompts_dir)
        report = render(catalog, args.out, args.cache, jobs=args.jobs)
    except ConfigError as e:
        print(f"render: {e}", file=sys.stderr)
        return 2
    except RenderError as e:
        print(f"render: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
