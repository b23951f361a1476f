"""The shipped content (languages, menu tree, entities) and the rules that guard it."""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_app.config import ConfigError, HotlineConfig, load_config
from ari_app.config.loader import dump

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "hotline.yaml"

LANGS = {"ar": "1", "en": "2", "ur": "3", "hi": "4", "ml": "5", "bn": "6", "ne": "7", "ta": "8",
         "si": "9"}  # fmt: skip
# The Unicode script every letter of a name must be in.
SCRIPT = {"ar": "ARABIC", "ur": "ARABIC", "hi": "DEVANAGARI", "ne": "DEVANAGARI",
          "ml": "MALAYALAM", "bn": "BENGALI", "ta": "TAMIL", "si": "SINHALA",
          "en": "LATIN"}  # fmt: skip


@pytest.fixture(scope="module")
def cfg() -> HotlineConfig:
    return load_config(CONFIG)


@pytest.fixture
def raw() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return copy.deepcopy(data)


def test_nine_languages(cfg: HotlineConfig) -> None:
    assert {lang.code: lang.digit for lang in cfg.languages} == LANGS
    assert cfg.default_language == "ar"
    assert cfg.language("en").voice == "en-gb"


def test_thirty_four_entities(cfg: HotlineConfig) -> None:
    ids = [e.id for e in cfg.entities]
    assert len(ids) == 34
    assert {"phcc", "moph", "mehe", "moci", "motc", "other"} <= set(ids)
    assert ids[-1] == "other" and cfg.other_departments.id == "other"
    flat = dump(cfg)["entities"]
    assert len(flat) == 34 and flat[-1]["id"] == "other"
    assert cfg.sector_of("phcc") == "health"


def test_menu_levels(cfg: HotlineConfig) -> None:
    for menu in cfg.menus:
        digits = [o.digit for o in menu.options]
        assert 1 <= len(digits) <= 9, menu.id
        assert len(set(digits)) == len(digits), menu.id
        assert all(d in "123456789" for d in digits), f"{menu.id}: 0 is for other departments"
    top = cfg.menu.options
    assert all(o.menu is not None for o in top), "the top menu offers sectors"
    assert all(o.entity is not None for m in cfg.menus[1:] for o in m.options)


def test_every_name_present_in_its_script(cfg: HotlineConfig) -> None:
    named = [(f"menu {m.id}", m.names) for m in cfg.menus]
    named += [(f"entity {e.id}", e.names) for e in cfg.entities]
    named += [(f"language {lang.code}", {lang.code: lang.name}) for lang in cfg.languages]
    for where, names in named:
        for code in names if where.startswith("language") else LANGS:
            name = names.get(code, "")
            assert name.strip(), f"{where}: no {code} name"
            letters = [ch for ch in name if unicodedata.category(ch).startswith("L")]
            wrong = [ch for ch in letters if SCRIPT[code] not in unicodedata.name(ch, "")]
            assert not wrong, (
                f"{where}: {code} name {name!r} has letters {wrong} outside its script"
            )


def test_numbers(cfg: HotlineConfig) -> None:
    assert cfg.numbers["109"].journey == "full"
    assert cfg.numbers["1091"].entity == "phcc"
    assert cfg.numbers["1092"].language == "en"


def _refused(tmp_path: Path, raw: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> str:
    edit(raw)
    if isinstance(raw.get("agents_file"), str):  # keep pointing at the shipped agents
        raw["agents_file"] = str(CONFIG.parent / raw["agents_file"])
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def _health(raw: dict[str, Any]) -> dict[str, Any]:
    sector: dict[str, Any] = raw["menu"]["options"][0]["menu"]
    assert sector["id"] == "health"
    return sector


def test_two_options_on_one_digit(tmp_path: Path, raw: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        _health(d)["options"][1]["digit"] = "1"

    msg = _refused(tmp_path, raw, edit)
    assert "menu.options.0.menu" in msg
    assert "menu 'health': digit 1 is used by both 'phcc' and 'moph'" in msg


def test_entity_missing_a_name(tmp_path: Path, raw: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        del _health(d)["options"][0]["entity"]["names"]["ta"]

    msg = _refused(tmp_path, raw, edit)
    assert "entity phcc: no name in language(s) ta" in msg


def test_level_with_ten_options(tmp_path: Path, raw: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        names = {code: f"x{code}" for code in LANGS}
        _health(d)["options"] = [
            {"digit": str(i), "entity": {"id": f"extra{i}", "names": names}} for i in range(10)
        ]

    msg = _refused(tmp_path, raw, edit)
    assert "menu.options.0.menu" in msg
    assert "menu 'health' offers 10 options; at most 9" in msg


def test_unknown_voice(tmp_path: Path, raw: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["languages"][2]["voice"] = "urdu"

    msg = _refused(tmp_path, raw, edit)
    assert "languages.2.voice: unknown espeak-ng voice 'urdu'" in msg


def test_number_to_unknown_entity(tmp_path: Path, raw: dict[str, Any]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["numbers"]["1093"] = {"entity": "nosuch"}

    assert "numbers.1093: unknown entity 'nosuch'" in _refused(tmp_path, raw, edit)
