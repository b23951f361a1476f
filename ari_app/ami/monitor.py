"""Agents' phone reachability from AMI, kept true across AMI reconnects.

panoramisk reconnects by itself; after every login the monitor pulls the full
contact list again, because events missed while disconnected are gone. Its
callbacks only enqueue: panoramisk runs coroutine callbacks as tasks nobody
awaits, so an exception there would vanish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from panoramisk import Manager

from ari_app.agents.pool import AgentPool
from ari_app.agents.roster import Roster
from ari_app.config.models import AmiSettings
from ari_app.logs import get_logger

log = get_logger("ami")
UP = frozenset({"created", "reachable", "updated", "nonqualified", "unknown"})


class AmiMonitor:
    def __init__(self, settings: AmiSettings, secret: str, pool: AgentPool,
                 roster: Roster, on_reconnect: Callable[[], None] | None = None) -> None:
        self._on_reconnect = on_reconnect
        self.settings = settings
        self._secret = secret
        self.pool = pool
        self.roster = roster
        self.connects = 0
        self.connected = False
        self.synced = asyncio.Event()
        # live contact URIs per AOR: a re-registering phone's new contact is
        # created before its old one is removed, so one event can't decide
        self.contacts: dict[str, set[str]] = {}
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def _manager(self) -> Manager:
        q = self._queue
        m = Manager(host=self.settings.host, port=self.settings.port,
                    username=self.settings.username, secret=self._secret,
                    ping_delay=10, ping_interval=10, reconnect_timeout=2,
                    loop=asyncio.get_running_loop(),
                    on_login=lambda _m: q.put_nowait(("login", None)),
                    on_disconnect=lambda _m, exc: q.put_nowait(("lost", str(exc))))
        m.log = _Quiet()
        m.register_event("ContactStatus", lambda _m, ev: q.put_nowait(("contact", dict(ev))))
        return m

    async def run(self, stop: asyncio.Event) -> None:
        manager = self._manager()
        connecting = manager.connect()
        try:
            while not stop.is_set():
                try:
                    kind, data = await asyncio.wait_for(self._queue.get(), 1.0)
                except TimeoutError:
                    continue
                try:
                    await self._handle(manager, kind, data)
                except Exception as e:  # noqa: BLE001 - keep monitoring
                    log.warning("ami.handler_failed", kind=kind, error=str(e))
        finally:
            connecting.cancel()
            manager.close()

    async def _handle(self, manager: Manager, kind: str, data: Any) -> None:
        if kind == "login":
            self.connects += 1
            self.connected = True
            log.info("ami.connected", connects=self.connects)
            if self.connects > 1 and self._on_reconnect is not None:
                self._on_reconnect()
            await self.resync(manager)
        elif kind == "lost":
            self.connected = False
            log.warning("ami.disconnected", reason=data)
        elif kind == "contact":
            await self._contact(data)

    async def resync(self, manager: Manager) -> None:
        resp = await asyncio.wait_for(manager.send_action({"Action": "PJSIPShowContacts"}), 10)
        items = resp if isinstance(resp, list) else [resp]
        contacts: dict[str, set[str]] = {}
        for item in items:
            ev = dict(item)
            if ev.get("Event") == "ContactList" and \
                    str(ev.get("Status", "")).lower() in UP:
                # ObjectName is "<aor>;@<hash>"; ContactList events carry no Aor field
                aor = str(ev.get("ObjectName", "")).split(";@", 1)[0]
                contacts.setdefault(aor, set()).add(str(ev.get("Uri", "")))
        self.contacts = contacts
        up = set(contacts)
        for agent in self.roster.agents:
            await self.pool.set_reachable(agent.id, agent.endpoint in up)
        self.synced.set()
        log.info("ami.contacts_synced", reachable=len(up & set(self.roster.by_endpoint)))

    async def _contact(self, ev: dict[str, Any]) -> None:
        aor = str(ev.get("AOR", ""))
        agent = self.roster.by_endpoint.get(aor)
        if agent is None:
            return
        status = str(ev.get("ContactStatus", "")).lower()
        live = self.contacts.setdefault(aor, set())
        uri = str(ev.get("URI", ""))
        if status in UP:
            live.add(uri)
        else:
            live.discard(uri)
        reachable = bool(live)
        await self.pool.set_reachable(agent.id, reachable)
        log.info("ami.contact", agent=agent.id, status=status, reachable=reachable)


class _Quiet:
    """panoramisk logs every reconnect attempt at error level; the monitor logs state changes."""

    def __getattr__(self, name: str) -> Any:
        def _drop(*args: Any, **kwargs: Any) -> None:
            with contextlib.suppress(Exception):
                return None

        return _drop
