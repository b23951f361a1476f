"""The screen-pop: what an agent's desktop shows about a call from the moment it rings.

The queue calls `ScreenPop.offered` as it offers a call to an agent (before the
phone rings). It writes the pop under `{prefix}:desk:pop:<agent>` (so a desk
that connects later, or reloads, finds it) and publishes it on
`{prefix}:desk:pops`, so whichever instance's HTTP server holds the agent's
desk pushes it over SSE at once. One round trip; it never raises into the
call, and a Redis that does not answer within `PUBLISH_TIMEOUT` costs the call
that much and no pop.

The pop holds the caller's number masked (the last N digits) and the salted
caller hash (for the desk's server to look the caller's earlier calls up in the
archive; it is never sent to the browser). The number itself is neither
published nor logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from typing import Any

from redis.asyncio import Redis

from ari_app.config.desktop import DesktopSettings
from ari_app.config.models import HotlineConfig
from ari_app.interactions.context import CallContext
from ari_app.interactions.model import Role
from ari_app.logs import get_logger
from ari_app.records.model import CallRecord, parse_iso

log = get_logger("desktop.pop")

POP_TTL = 4 * 3600  # longer than any call; the next offer replaces it
PUBLISH_TIMEOUT = 0.5
MASK = "•"


def caller_hash(salt: str, caller: str) -> str:
    """The salted caller hash, built as the call store builds its language key's."""
    return hashlib.sha256(salt.encode() + caller.encode()).hexdigest()[:32]


def mask_number(number: str, visible: int) -> str:
    """`••••••12`: only the last `visible` digits; anonymous stays anonymous."""
    digits = "".join(c for c in number if c.isdigit())
    if not digits:
        return ""
    shown = digits[-visible:] if visible else ""
    return MASK * (len(digits) - len(shown)) + shown


def pop_key(prefix: str, agent_id: str) -> str:
    return "{" + prefix + "}:desk:pop:" + agent_id


def pop_channel(prefix: str) -> str:
    return "{" + prefix + "}:desk:pops"


def names_of(cfg: HotlineConfig) -> dict[str, dict[str, str]]:
    """Every entity's and menu's names by language, for the pop's labels."""
    out = {m.id: dict(m.names) for m in cfg.menus}
    out.update({e.id: dict(e.names) for e in cfg.entities})
    return out


def build_pop(cfg: HotlineConfig, settings: DesktopSettings, salt: str,
              names: dict[str, dict[str, str]], rec: CallRecord, *, call_id: str,
              agent_id: str, entity: str, language: str, callback: bool,
              now: float) -> dict[str, Any]:
    langs = {lang.code: lang for lang in cfg.languages}
    lang = langs.get(language)
    waited = (max(0.0, now - parse_iso(rec.queue_joined_at).timestamp())
              if rec.queue_joined_at else None)
    transferred = any(q.result == "transferred" for q in rec.queue)
    by = next((o.agent for o in reversed(rec.offers) if o.result == "answered"), None)
    return {
        "call_id": call_id,
        "agent": agent_id,
        "offered_at": round(now * 1000),  # epoch ms, the offer-to-display delay's start
        "caller": mask_number(rec.caller, settings.caller_visible_digits),
        "caller_hash": caller_hash(salt, rec.caller) if rec.caller else None,
        "language": language,
        "language_name": {"own": lang.name, "en": lang.english_name} if lang else
                         {"own": language, "en": language},
        "entity": entity,
        "entity_name": names.get(entity, {"en": entity}),
        "path": [{"id": p, "name": names.get(p, {"en": p})} for p in rec.entity_path],
        "queue_joined_at": rec.queue_joined_at,
        "waited_seconds": round(waited, 1) if waited is not None else None,
        "transferred": transferred,
        "transferred_by": by if transferred else None,
        "callback": callback,
    }


def public(pop: dict[str, Any]) -> dict[str, Any]:
    """What the browser may see: everything but the caller hash."""
    return {k: v for k, v in pop.items() if k != "caller_hash"}


class ScreenPop:
    """`offered` is QueueDeps.on_offer: the queue's typed hook into the desktop."""

    def __init__(self, redis: Redis, cfg: HotlineConfig, salt: str) -> None:
        self.redis = redis
        self.cfg = cfg
        self.settings = cfg.desktop
        self.prefix = cfg.redis.key_prefix
        self._salt = salt
        self.names = names_of(cfg)
        self.published = 0
        self.failed = 0

    async def offered(self, ctx: CallContext, agent_id: str, entity: str) -> None:
        try:
            pop = build_pop(self.cfg, self.settings, self._salt, self.names, ctx.record,
                            call_id=ctx.session.call_id, agent_id=agent_id, entity=entity,
                            language=ctx.language,
                            callback=Role.CALLBACK in ctx.interaction.legs, now=time.time())
            body = json.dumps(pop, ensure_ascii=False, separators=(",", ":"))
            await asyncio.wait_for(self._publish(agent_id, body), PUBLISH_TIMEOUT)
            self.published += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a pop is never worth a call
            self.failed += 1
            log.warning("desktop.pop_failed", agent=agent_id, error=repr(e)[:200])

    async def _publish(self, agent_id: str, body: str) -> None:
        async with self.redis.pipeline(transaction=False) as p:
            p.set(pop_key(self.prefix, agent_id), body, ex=POP_TTL)
            p.publish(pop_channel(self.prefix), body)
            await p.execute()


async def read_pop(redis: Redis, prefix: str, agent_id: str) -> dict[str, Any] | None:
    raw = await redis.get(pop_key(prefix, agent_id))
    if raw is None:
        return None
    with contextlib.suppress(ValueError):
        pop = json.loads(raw)
        if isinstance(pop, dict):
            return pop
    return None
