"""Runtime announcements over a real Redis and the real TTS (espeak-ng + sox):
checks, rendering per language, the instance cache and its files, the audit."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from redis.asyncio import Redis

from ari_app.announcements.cache import AnnouncementCache
from ari_app.announcements.model import AnnouncementError, UnknownScope
from ari_app.announcements.service import AnnouncementService, Change
from ari_app.announcements.store import AnnouncementStore
from ari_app.config.announcements import AnnouncementSettings
from ari_app.config.loader import load_config
from ari_app.config.models import HotlineConfig

CONFIG = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"


@dataclass
class Kit:
    cfg: HotlineConfig
    svc: AnnouncementService
    store: AnnouncementStore
    cache: AnnouncementCache
    files: Path


@asynccontextmanager
async def kit(redis_url: str, tmp_path: Path, **settings: object) -> AsyncIterator[Kit]:
    cfg = load_config(CONFIG)
    if settings:
        cfg = cfg.model_copy(update={"announcements": AnnouncementSettings(**settings)})
    redis = Redis.from_url(redis_url)
    store = AnnouncementStore(redis, key_prefix=f"t-{uuid.uuid4().hex[:8]}")
    files = tmp_path / "ann"
    cache = AnnouncementCache(store, files, Path("/srv/x/announcements"), poll_seconds=300)
    try:
        yield Kit(cfg, AnnouncementService(cfg, store), store, cache, files)
    finally:
        await redis.aclose()


def change(scope: str = "global", **kw: object) -> Change:
    return Change(scope=scope, by=str(kw.pop("by", "op1")), source="test", **kw)  # type: ignore[arg-type]


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x10\x00\xf0\xff" * int(rate * seconds / 2))
    return buf.getvalue()


async def test_text_is_spoken_per_language_cached_as_files_and_cleared(
        redis_url: str, tmp_path: Path) -> None:
    async with kit(redis_url, tmp_path) as k:
        ann, version = await k.svc.set(change(texts={"en": "The office is closed today.",
                                                     "ar": "المكتب مغلق اليوم."}))
        assert sorted(ann.sounds) == ["ar", "en"] and ann.fallback == []
        assert ann.sounds["ar"] != ann.sounds["en"] and ann.seconds["en"] > 0.5
        assert await k.cache.refresh() is True and k.cache.version == version
        en = k.cache.playable("global", "en")
        assert en is not None and en.announcement.id == ann.id
        assert en.media == f"sound:/srv/x/announcements/ann-{ann.sounds['en'][:32]}"
        with wave.open(str(k.files / f"ann-{ann.sounds['en'][:32]}.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        # no text in Hindi and no fallback configured: Hindi callers hear nothing
        assert k.cache.playable("global", "hi") is None
        assert k.cache.playable("phcc", "en") is None  # global is not an entity's
        assert await k.cache.refresh() is False  # version unchanged: nothing read
        old, _ = await k.svc.clear("global", "op2", "test")
        assert old is not None and old.id == ann.id
        await k.cache.refresh()
        assert k.cache.playable("global", "en") is None
        assert await k.store.audio(ann.sounds["en"]) is None  # unused sounds leave Redis
        audit = await k.store.audit()
        assert [(a["action"], a["by"], a["scope"]) for a in audit] == [
            ("clear", "op2", "global"), ("set", "op1", "global")]
        assert audit[1]["what"]["texts"]["en"] == "The office is closed today."
        assert audit[0]["what"]["cleared"]["id"] == ann.id


async def test_fallback_language_gives_every_language_a_sound(
        redis_url: str, tmp_path: Path) -> None:
    async with kit(redis_url, tmp_path, fallback_language="en") as k:
        ann, _ = await k.svc.set(change("phcc", texts={"en": "Clinics close at noon."}))
        codes = [lang.code for lang in k.cfg.languages]
        assert sorted(ann.sounds) == sorted(codes)
        assert set(ann.fallback) == set(codes) - {"en"}
        assert len(set(ann.sounds.values())) == 1
        await k.cache.refresh()
        hi = k.cache.playable("phcc", "hi")
        assert hi is not None and hi.media == k.cache.playable("phcc", "en").media  # type: ignore[union-attr]


async def test_bad_input_is_refused_with_the_reason(redis_url: str, tmp_path: Path) -> None:
    async with kit(redis_url, tmp_path, max_text_chars=40, max_audio_seconds=2) as k:
        cases: list[tuple[Change, type[Exception], str]] = [
            (change("nosuch", texts={"en": "hi there"}), UnknownScope, "unknown entity 'nosuch'"),
            (change(texts={"en": "  ...  "}), AnnouncementError, "the text for 'en' is empty"),
            (change(texts={"en": "x" * 41}), AnnouncementError, "41 characters; at most 40"),
            (change(texts={"xx": "hello"}), AnnouncementError, "unknown language 'xx'"),
            (change(texts={}), AnnouncementError, "give either texts or recordings"),
            (change(texts={"en": "hello"}, by=" "), AnnouncementError, "'by'"),
            (change(texts={"en": "hello"}, starts="tomorrow"), AnnouncementError,
             "'tomorrow' is not an ISO 8601 time"),
            (change(texts={"en": "hello"}, starts="2030-01-02T00:00", ends="2030-01-01T00:00"),
             AnnouncementError, "must be after starts"),
            (change(texts={"en": "hello"}, ends="2020-01-01T00:00"), AnnouncementError,
             "already past"),
            (change(audio={"en": b"ID3 not a wav at all" * 4}), AnnouncementError,
             "not a WAV file"),
            (change(audio={"en": wav_bytes(3.0)}), AnnouncementError, "at most 2 s"),
            (change(audio={"en": wav_bytes(0.1)}), AnnouncementError, "at least 0.3 s"),
            (change(audio={"en": b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 40}),
             AnnouncementError, "cannot be read as WAV"),
        ]
        for bad, kind, words in cases:
            with pytest.raises(kind) as err:
                await k.svc.set(bad)
            assert words in str(err.value), (bad, str(err.value))
        assert await k.store.current() == {} and await k.store.audit() == []


async def test_uploaded_recording_is_converted_for_asterisk(
        redis_url: str, tmp_path: Path) -> None:
    async with kit(redis_url, tmp_path) as k:
        ann, _ = await k.svc.set(change("moi", audio={"ar": wav_bytes(1.5)}))
        assert ann.kind == "audio" and list(ann.sounds) == ["ar"]
        assert abs(ann.seconds["ar"] - 1.5) < 0.05
        data = await k.store.audio(ann.sounds["ar"])
        assert data is not None
        with wave.open(io.BytesIO(data)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)


async def test_a_window_in_the_future_is_not_played_yet(
        redis_url: str, tmp_path: Path) -> None:
    async with kit(redis_url, tmp_path) as k:
        ann, _ = await k.svc.set(change(texts={"en": "Happy holidays."},
                                        starts="2099-12-18T00:00+03:00"))
        await k.cache.refresh()
        assert k.cache.playable("global", "en") is None
        assert ann.starts is not None
        assert k.cache.playable("global", "en", now=ann.starts + 1) is not None
        listed = (await k.svc.listing())["announcements"]
        assert [(a["scope"], a["state"], a["active"]) for a in listed] == [
            ("global", "scheduled", False)]


async def test_a_running_instance_sees_a_change_by_pubsub_without_polling(
        redis_url: str, tmp_path: Path) -> None:
    async with kit(redis_url, tmp_path) as k:
        stop = asyncio.Event()
        task = asyncio.create_task(k.cache.run(stop))  # polls only every 300 s
        try:
            deadline = time.monotonic() + 10
            while k.cache.version < 0:
                assert time.monotonic() < deadline, "the cache never loaded"
                await asyncio.sleep(0.02)
            while (await k.store.redis.pubsub_numsub(k.store.channel))[0][1] < 1:
                assert time.monotonic() < deadline, "the listener never subscribed"
                await asyncio.sleep(0.02)
            await k.svc.set(change("phcc", texts={"en": "Clinics close at noon."}))
            while k.cache.playable("phcc", "en") is None:
                assert time.monotonic() < deadline, "the change never reached the cache"
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)


def test_cli_set_list_clear_and_its_refusals(
        redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import yaml

    from ari_app.announcements import cli
    from ari_app.cli import main

    def to_stderr(level: str) -> None:
        # the CLI's own set-up caches loggers on the stream pytest closes after this
        # test; uncached, each line goes to whatever stderr is at the time
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
                            cache_logger_on_first_use=False)

    monkeypatch.setattr(cli, "setup_logging", to_stderr)

    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    raw["redis"] = {"url": redis_url, "key_prefix": f"t-{uuid.uuid4().hex[:8]}"}
    raw["prompts_dir"] = str(CONFIG.parent / "prompts")
    if raw.get("agents_file"):
        raw["agents_file"] = str(CONFIG.parent / raw["agents_file"])
    raw["announcements"] = {"dir": str(tmp_path / "ann")}
    cfg = tmp_path / "hotline.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            rc = main(["--config", str(cfg), "announce", *args])
        finally:
            structlog.reset_defaults()  # the CLI set up logging for itself
        out = capsys.readouterr()
        return rc, out.out, out.err

    rc, _, err = run("set", "nosuch", "--text", "en=hello")
    assert rc == 1 and "unknown entity 'nosuch'" in err
    rc, _, err = run("set", "global", "--text", "en")
    assert rc == 1 and "--text 'en': expected LANG=TEXT" in err
    rc, _, err = run("set", "global", "--audio", f"en={tmp_path / 'none.wav'}")
    assert rc == 1 and "No such file or directory" in err
    rc, out, _ = run("set", "mol", "--text", "en=Offices close early today.", "--by", "op7")
    assert rc == 0 and out.startswith("set mol (text, id ")
    assert "callers in these languages hear nothing" in out
    rc, out, _ = run("list")
    assert rc == 0 and out.startswith("mol ") and "en: Offices close early today." in out
    rc, out, _ = run("clear", "mol", "--by", "op8")
    assert rc == 0 and out.startswith("cleared mol")
    rc, _, err = run("clear", "mol", "--by", "op8")
    assert rc == 1 and "no announcement is set for 'mol'" in err
    rc, out, _ = run("list", "--audit")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 3
    assert "clear mol" in lines[0] and "by op8" in lines[0]
    assert "set   mol" in lines[2] and "by op7" in lines[2] and "Offices close early" in lines[2]
