"""Wiring and lifecycle.

Every client is built once here and handed to what needs it. Start-up and
shutdown follow uvicorn's serve(): capture signals; start; wait on an event;
drain calls with a timeout; cancel what is left.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Coroutine
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ari_app.agents.features import handle_feature
from ari_app.agents.history import AgentHistory
from ari_app.agents.pool import AgentPool, Offer
from ari_app.agents.roster import Roster
from ari_app.agents.sites import SiteWatch
from ari_app.agents.wrapup import WrapUpError, WrapUps
from ari_app.ami.monitor import AmiMonitor
from ari_app.announcements.api import AnnouncementApi
from ari_app.announcements.cache import AnnouncementCache
from ari_app.announcements.play import Announcer
from ari_app.announcements.service import AnnouncementService
from ari_app.announcements.store import AnnouncementStore
from ari_app.ari.client import AriClient, Event
from ari_app.ari.supervisor import AriSupervisor
from ari_app.callback.attempt import new_attempt, publish_ended
from ari_app.callback.service import CallbackService
from ari_app.callback.store import CallbackStore, Ticket
from ari_app.config.models import HotlineConfig, resolve_secret
from ari_app.config.redis_client import redis_client
from ari_app.config.secure import https_context
from ari_app.desktop.deps import WrapUp
from ari_app.desktop.setup import build_desktop
from ari_app.fastagi.server import AgiServer
from ari_app.interactions.machine import State
from ari_app.interactions.model import Interaction
from ari_app.interactions.recovery import Recovery
from ari_app.interactions.router import EventRouter
from ari_app.interactions.runner import InteractionRunner
from ari_app.interactions.store import CallStore
from ari_app.live import CallCounters, DayTotals, LoopLagMonitor, RedisLiveView
from ari_app.live.memory import MemoryTrimmer
from ari_app.logs import get_logger
from ari_app.prompts.catalog import PromptCatalog
from ari_app.queue.dispatch import Dispatcher, OfferBox
from ari_app.queue.estimate import SharedWaitEstimator
from ari_app.queue.service import QueueService
from ari_app.queue.waiting import WaitingQueues
from ari_app.records.events import Recorder
from ari_app.records.stream import RecordStream
from ari_app.supervision.api import SupervisionApi
from ari_app.supervision.console import Console
from ari_app.supervision.service import SupervisionService
from ari_app.web.api import PoolAgentControl
from ari_app.web.deps import WebDeps
from ari_app.web.server import WebServer
from ari_app.wiring import wire_states

log = get_logger("app")


class Hotline:
    def __init__(self, cfg: HotlineConfig) -> None:
        self.cfg = cfg
        src = cfg.source
        ari_password = resolve_secret(cfg.ari.password, src).get_secret_value()
        salt = resolve_secret(cfg.callers.salt, src).get_secret_value()
        # a bounded pool that waits for a free connection rather than failing a call
        # when a burst of calls needs more than it has; after Redis restarts, every
        # pooled connection is stale once: retry it on a fresh one, briefly
        self.redis = redis_client(
            cfg.redis, src, max_connections=cfg.redis.max_connections, pool_timeout=5.0,
            socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError])
        self.store = CallStore(self.redis, cfg.redis.key_prefix, salt)
        self.prompts = PromptCatalog.load(cfg, cfg.resolve(cfg.prompts_dir))
        self.records = RecordStream(self.redis, cfg.redis.key_prefix,
                                    spool_path=cfg.resolve(cfg.records_spool))
        self.router = EventRouter(self._on_new_channel)
        self.supervision = SupervisionService(cfg, self.records.publish_events,
                                              self.prompts.names)
        self.ari = AriSupervisor(cfg.ari, ari_password, self._on_event,
                                 self._on_ari_connected, self._on_ari_lost)
        prefix = cfg.redis.key_prefix
        self.roster = Roster.from_config(cfg)
        self.pool = AgentPool(self.redis, cfg.agents, key_prefix=prefix)
        self.history = AgentHistory(self.redis, key_prefix=prefix)
        self.waiting = WaitingQueues(self.redis, key_prefix=prefix)
        self.box = OfferBox()
        self.dispatcher = Dispatcher(cfg, cfg.queue, self.redis, self.pool, self.waiting,
                                     self.box, instance=cfg.instance_id)
        # the agent desktop (ari_app/desktop) and the feature codes tag calls through it
        self.wrapups = WrapUps(self.pool, self.records, cfg.agent_work,
                               on_available=self.dispatcher.wake_all)
        self.estimator = SharedWaitEstimator(self.redis, key_prefix=prefix)
        self.queue = QueueService(cfg, cfg.queue, self.pool, self.waiting, self.roster, self.box,
                                  self.dispatcher, estimator=self.estimator,
                                  app_name=cfg.ari.app)
        ami_secret = resolve_secret(cfg.ami.secret, src).get_secret_value()
        self.counters = CallCounters(tz=cfg.timezone, sla_seconds=20, today=DayTotals(
            self.redis, key_prefix=prefix, tz=cfg.timezone))
        # this server's AMI knows only its own site's phones
        own = Roster([a for a in cfg.agents if cfg.site is None or a.site == cfg.site])
        self.ami = AmiMonitor(cfg.ami, ami_secret, self.pool, own,
                              on_reconnect=self.counters.ami_reconnected)
        self.sites = SiteWatch(cfg, self.redis, self.pool)
        ann = cfg.announcements
        self.announce_store = AnnouncementStore(self.redis, key_prefix=prefix,
                                                audit_keep=ann.audit_keep)
        ann_dir = cfg.resolve(ann.dir)
        self.announcements = AnnouncementCache(self.announce_store, ann_dir,
                                               ann.asterisk_dir or ann_dir.resolve(),
                                               poll_seconds=ann.poll_seconds)
        announce_api = AnnouncementService(cfg, self.announce_store)
        control = _WakingControl(self.pool, self.dispatcher)
        self.desktop, self.screenpop = build_desktop(
            cfg, self.redis, salt, control, https=cfg.http.tls_cert is not None,
            wrapup=WrapUp(self.wrapups, WrapUpError))
        self.callbacks = CallbackService(
            cfg.callback, CallbackStore(self.redis, key_prefix=prefix, salt=salt), self.queue,
            cfg.instance_id, cfg.timezone, self._start_callback, self._callback_ended)
        self.registry, first = wire_states(
            cfg, self.queue, self.counters, Announcer(self.announcements),
            on_offer=self.screenpop.offered if self.screenpop is not None else None,
            supervision=self.supervision, callbacks=self.callbacks)
        self.runner = InteractionRunner(cfg, self.prompts, self.store, self.records, self.router,
                                        lambda: self.ari.client, first, self.counters)
        self.recovery = Recovery(cfg.instance_id, cfg.ari.app, self.runner, self.registry)
        self.agi = AgiServer(cfg, self.store, self.records)
        self.live = RedisLiveView(self.redis, self.pool, self.waiting, cfg, self.counters)
        token = resolve_secret(cfg.http.token, src).get_secret_value()
        self.web = WebServer(cfg.http.bind, cfg.http.port, WebDeps(
            health=self.health, live=self.live, metrics=self.counters,
            agents=control, token=token,
            refresh=self.live.refresh,
            api_routes=lambda app, auth: AnnouncementApi(announce_api, auth).add_routes(app)),
            ssl_context=https_context(cfg.http, src),
            hsts_max_age=cfg.http.hsts_max_age,
            mounts=[self.desktop.mount, Console(self.supervision.snoop, self.pool, control,
                                                self.redis, prefix).mount])
        SupervisionApi(self.supervision.snoop, self.web.api._authenticate,
                       self.web.api._body).add_routes(self.web.app)
        self.shutdown = asyncio.Event()
        self._services_stop = asyncio.Event()
        self._calls: asyncio.TaskGroup | None = None
        self._call_tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False
        self.started = time.time()

    # -- events ----------------------------------------------------------------
    def _on_event(self, ev: Event) -> None:
        # supervision sees its phones answer and agents hang up before the router
        # hands the event to the interaction (neither ever raises)
        self.supervision.snoop.observe(ev)
        self.router.dispatch(ev)

    def _on_new_channel(self, ev: Event) -> None:
        args = ev.get("args") or []
        kind = args[0] if args else ""
        if kind == "agent":
            # an agent leg whose interaction ended before it was answered
            self._spawn(self._hangup_quietly(str((ev.get("channel") or {}).get("id"))),
                        "hangup-orphan")
            return
        if self._calls is None or (self.draining and kind not in ("feature", "transfer")):
            self._refuse(ev)
            return
        interaction = self.runner.new_interaction(ev)
        if kind in ("feature", "transfer"):
            # a transfer code dialled directly (not REFERred during a call) is no
            # citizen's call: refused with an error tone, and no call record
            self._track(self._spawn(self._feature(interaction, ev),
                                    f"feature-{interaction.id}"))
            return
        self._track(self._spawn(self.runner.run(interaction), f"call-{interaction.id}"))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a task in the calls group that can never take the group down.

        A TaskGroup cancels every task in it when one raises; for calls that
        would mean one call's bug ends every call. So each task catches and logs
        its own failure here, and only cancellation passes through."""
        assert self._calls is not None
        return self._calls.create_task(_contained(coro, name), name=name)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._call_tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._call_done)

    async def _feature(self, interaction: Interaction, ev: Event) -> None:
        try:
            await handle_feature(interaction.session, self.pool, self.roster, ev,
                                 on_change=self.dispatcher.wake_all, wrapups=self.wrapups)
        finally:
            self.router.unregister(interaction.session.channel_id)

    async def _hangup_quietly(self, chan_id: str) -> None:
        await self.runner.janitor.remove("channel", chan_id)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._call_tasks.discard(task)
        if not self._call_tasks:
            self._idle.set()

    def _refuse(self, ev: Event) -> None:
        """While draining, send the call back to the dialplan's fallback."""
        chan_id = str((ev.get("channel") or {}).get("id"))
        client = self.ari.client
        if client is None or self._calls is None:
            return
        self._spawn(self._send_back(client, chan_id), f"refuse-{chan_id}")

    async def _send_back(self, client: AriClient, chan_id: str) -> None:
        await client.set_var(chan_id, "HOTLINE_FALLBACK", "1")
        await client.continue_in_dialplan(chan_id)
        log.info("call.refused_draining", channel=chan_id)

    def _on_ari_connected(self, client: AriClient) -> None:
        if self.ari.connects > 1:
            self.counters.ari_reconnected()
        if self._calls is not None:
            self._spawn(self._recover(client), "recover")

    async def _recover(self, client: AriClient) -> None:
        """Interactions this app was driving before a restart or a lost connection."""
        await self._reconcile(client)
        known = {cid for i in self.router.interactions() for cid in i.channel_ids()}
        try:
            await self.recovery.run(client, known, self._resume)
        finally:
            self.dispatcher.recovered.set()

    def _resume(self, interaction: Interaction, state: State, recorder: Recorder) -> None:
        if self._calls is not None:
            self._track(self._spawn(self.runner.run(interaction, state, recorder),
                                    f"call-{interaction.id}"))

    def _start_callback(self, ticket: Ticket, offer: Offer) -> None:
        if self._calls is not None:
            interaction, state, recorder = new_attempt(self.runner, self.registry, ticket, offer)
            self._track(self._spawn(self.runner.run(interaction, state, recorder),
                                    f"call-{interaction.id}"))

    def _callback_ended(self, ticket: Ticket, result: str) -> None:
        if self._calls is not None:
            self._spawn(publish_ended(self.records, self.cfg, ticket, result), "callback-end")

    def _on_ari_lost(self) -> None:
        log.warning("app.ari_down", calls=len(self._call_tasks))

    async def _reconcile(self, client: AriClient) -> None:
        """After a reconnect, deliver what the websocket gap swallowed.

        A blip leaves channels in Stasis but loses the events sent meanwhile; an
        Asterisk restart takes every channel. Only Asterisk's own lists tell: a
        caller's channel gone is a call over, another leg gone is that leg's
        hang-up, a playback gone is a playback finished."""
        interactions = self.router.interactions()
        if not interactions:
            return
        try:
            alive = set(await client.channel_ids())
            playing = {pb for i in interactions for pb in list(i.session.playbacks)
                       if await client.playback_alive(pb)}
        except Exception as e:  # noqa: BLE001
            log.warning("app.reconcile_failed", error=str(e))
            return
        for interaction in interactions:
            caller = interaction.session.channel_id
            for leg in list(interaction.legs.values()):
                if leg.channel_id in alive or leg.channel_id == caller:
                    continue
                interaction.deliver({"type": "ChannelDestroyed",
                                     "channel": {"id": leg.channel_id}, "hotline_lost": True})
            for pb in list(interaction.session.playbacks):
                if pb not in playing:
                    interaction.deliver({"type": "PlaybackFinished", "playback": {"id": pb},
                                         "hotline_lost": True})
            if caller not in alive:
                interaction.deliver({"type": "StasisEnd", "channel": {"id": caller},
                                     "hotline_lost": True})

    def health(self) -> dict[str, Any]:
        return {
            "ready": self.ari.connected.is_set() and not self.draining,
            "ari": self.ari.connected.is_set(),
            "draining": self.draining,
            "calls": len(self._call_tasks),
            "uptime": round(time.time() - self.started, 1),
        }

    # -- lifecycle -------------------------------------------------------------
    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signal, sig)
        try:
            await self.redis.ping()
            await self.pool.sync()
        except Exception as e:  # noqa: BLE001
            log.warning("app.redis_unreachable_at_start", error=str(e))
        log.info("app.starting", app=self.cfg.ari.app, ari=self.cfg.ari.url)
        async with asyncio.TaskGroup() as services:
            services.create_task(self.ari.run(self._services_stop), name="ari")
            services.create_task(self.agi.serve(self._services_stop), name="agi")
            services.create_task(self.web.serve(self._services_stop), name="web")
            services.create_task(self.ami.run(self._services_stop), name="ami")
            services.create_task(self.dispatcher.run(self._services_stop), name="dispatcher")
            services.create_task(self.wrapups.run_timer(self._services_stop), name="wrapup-timer")
            if self.cfg.callback.enabled:
                services.create_task(self.callbacks.run(self._services_stop), name="callbacks")
            services.create_task(self.sites.run(self._services_stop), name="sites")
            services.create_task(self.records.drain_forever(self._services_stop), name="spool")
            services.create_task(self.runner.janitor.run(self._services_stop), name="janitor")
            services.create_task(self.supervision.run(self._services_stop), name="supervision")
            services.create_task(LoopLagMonitor(self.counters).run(self._services_stop),
                                 name="loop-lag")
            services.create_task(MemoryTrimmer(self.cfg.memory_trim_seconds)
                                 .run(self._services_stop), name="memory-trim")
            services.create_task(self.counters.run_sync(self._services_stop), name="today-sync")
            services.create_task(self.estimator.run_sync(self._services_stop),
                                 name="estimate-sync")
            services.create_task(self.announcements.run(self._services_stop),
                                 name="announcements")
            async with asyncio.TaskGroup() as calls:
                self._calls = calls
                await self.shutdown.wait()
                self.draining = True
                n = len(self._call_tasks)
                log.info("app.draining", calls=n, timeout=self.cfg.shutdown.drain_timeout)
                try:
                    await asyncio.wait_for(self._idle.wait(), self.cfg.shutdown.drain_timeout)
                except TimeoutError:
                    log.warning("app.drain_timeout", cancelling=len(self._call_tasks))
                    for task in list(self._call_tasks):
                        task.cancel()
            self._calls = None
            self._services_stop.set()
        await self.redis.aclose()
        log.info("app.stopped")
        return 0

    def _signal(self, sig: int) -> None:
        if self.shutdown.is_set():
            log.warning("app.second_signal")
            return
        log.info("app.signal", signal=signal.Signals(sig).name)
        self.shutdown.set()


async def _contained(coro: Coroutine[Any, Any, None], name: str) -> None:
    try:
        await coro
    except Exception as e:
        log.exception("task.failed", task=name, error=repr(e)[:300])


class _WakingControl(PoolAgentControl):
    """The agents' API: an agent who becomes free is offered the next caller at once,
    not at the dispatcher's next tick."""

    def __init__(self, pool: AgentPool, dispatcher: Dispatcher) -> None:
        super().__init__(pool)
        self._dispatcher = dispatcher

    async def login(self, agent_id: str) -> str:
        out = await super().login(agent_id)
        await self._dispatcher.wake_all()
        return out

    async def resume(self, agent_id: str) -> str:
        out = await super().resume(agent_id)
        await self._dispatcher.wake_all()
        return out
