"""Pure menu logic: what a key means at a level. No I/O, so it is unit-tested directly."""

from __future__ import annotations

from dataclasses import dataclass

from ari_app.config.models import HotlineConfig, Menu


@dataclass(frozen=True)
class Choice:
    kind: str  # entity | menu | other | back | repeat | invalid
    target: str | None = None


def menu_at(cfg: HotlineConfig, path: list[str]) -> Menu:
    """The menu reached by following sub-menu ids from the top."""
    menu = cfg.menu
    for menu_id in path[1:]:
        for opt in menu.options:
            if opt.menu is not None and opt.menu.id == menu_id:
                menu = opt.menu
                break
        else:
            raise KeyError(f"no sub-menu {menu_id!r} under {menu.id!r}")
    return menu


def interpret(cfg: HotlineConfig, menu: Menu, key: str) -> Choice:
    if key == "*":
        return Choice("back")
    if key == "#":
        return Choice("repeat")
    if key == "0" and menu.id == cfg.menu.id:
        return Choice("other", cfg.other_departments.id)
    for opt in menu.options:
        if opt.digit == key:
            if opt.entity is not None:
                return Choice("entity", opt.entity.id)
            assert opt.menu is not None
            return Choice("menu", opt.menu.id)
    return Choice("invalid")


def menu_prompts(cfg: HotlineConfig, menu: Menu) -> list[str]:
    names = ["menu-intro"]
    for opt in menu.options:
        node = opt.entity or opt.menu
        assert node is not None
        names.append(f"option-{node.id}")
    if menu.id == cfg.menu.id:
        names.append("option-other")
    names.append("back-repeat")
    return names


def transfer_target(cfg: HotlineConfig, code: str) -> str | None:
    """The entity an agent's transfer code names: 8 and then the keys a caller
    would press in the menus (811: sector 1, entity 1); 80 or 800 is other
    departments. None when the code names no entity."""
    if not code.startswith("8") or not code[1:].isdigit():
        return None
    keys = code[1:]
    if keys.strip("0") == "":
        return cfg.other_departments.id
    menu = cfg.menu
    for i, key in enumerate(keys):
        choice = interpret(cfg, menu, key)
        if choice.kind == "entity" and i == len(keys) - 1:
            return choice.target
        if choice.kind != "menu" or choice.target is None:
            return None
        menu = menu_at_child(menu, choice.target)
    return None


def menu_at_child(menu: Menu, child_id: str) -> Menu:
    for opt in menu.options:
        if opt.menu is not None and opt.menu.id == child_id:
            return opt.menu
    raise KeyError(child_id)


def language_for_key(cfg: HotlineConfig, key: str) -> str | None:
    for lang in cfg.languages:
        if lang.digit == key:
            return lang.code
    return None
