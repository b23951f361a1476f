"""Caller priority: configured by number, found by the FastAGI look-up, handed
to Stasis, added to the entity's priority when the caller joins a queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from ari_app.config.loader import load_config
from ari_app.config.queue import EntityQueue, QueueSettings
from ari_app.fastagi.server import AgiServer
from ari_app.queue.states import caller_priority

CONFIG = Path(__file__).resolve().parents[2] / "config/hotline.yaml"


class _Store:
    async def remembered_language(self, caller: str) -> str | None:
        return None


def server(priorities: dict[str, int]) -> AgiServer:
    cfg = load_config(CONFIG)
    cfg = cfg.model_copy(update={"queue": cfg.queue.model_copy(
        update={"priority_callers": priorities})})
    return AgiServer(cfg, _Store())  # type: ignore[arg-type]


async def lookup(srv: AgiServer, caller: str) -> list[str]:
    """The AGI commands the look-up sends for this caller id."""
    listener = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"agi_network_script: lookup\nagi_callerid: {caller}\n\n".encode())
        await w.drain()
        out: list[str] = []
        while line := await asyncio.wait_for(r.readline(), 3):
            out.append(line.decode().strip())
            w.write(b"200 result=1\n")
            await w.drain()
        w.close()
    return out


async def test_lookup_sets_the_priority_of_a_listed_number_in_any_format() -> None:
    srv = server({"+97444000001": 20})
    assert 'SET VARIABLE HOTLINE_PRIORITY "20"' in await lookup(srv, "+974 4400-0001")
    assert 'SET VARIABLE HOTLINE_PRIORITY "20"' in await lookup(srv, "97444000001")
    others = await lookup(srv, "97444000002")
    assert not any("HOTLINE_PRIORITY" in c for c in others)
    assert srv.caller_priority("anonymous") == 0


def test_dialplan_hands_the_priority_to_stasis() -> None:
    conf = (CONFIG.parents[1] / "asterisk-config/extensions.conf").read_text()
    assert "Stasis(@APP_NAME@,${HOTLINE_DIALLED},${HOTLINE_LANGUAGE},${HOTLINE_PRIORITY})" in conf


@pytest.mark.parametrize(("args", "want"), [
    (["109", "en", "20"], 20), (["109", "en", ""], 0), (["109", "en"], 0), (["109"], 0),
    (["109", "en", "-3"], 0), (["109", "en", "100"], 0), (["109", "en", "x"], 0),
])
def test_stasis_argument_is_read_strictly(args: list[str], want: int) -> None:
    assert caller_priority(args) == want


def test_entity_and_caller_priority_add_up_capped() -> None:
    s = QueueSettings(priority=1, entities={"moi": EntityQueue(priority=50)})
    assert s.priority_of("moi", 20) == 70
    assert s.priority_of("phcc", 20) == 21
    assert s.priority_of("moi", 99) == 149
    listed = QueueSettings(priority_callers={"+97455000001": 7})
    assert listed.caller_priority("974 5500 0001") == 7
    assert listed.caller_priority("97455000002") == 0


def test_a_bad_priority_list_is_refused_naming_the_entry() -> None:
    with pytest.raises(ValidationError, match="priority_callers"):
        QueueSettings.model_validate({"priority_callers": {"not-a-number": 5}})
    with pytest.raises(ValidationError, match="priority_callers"):
        QueueSettings.model_validate({"priority_callers": {"97444000001": 0}})
