"""Building the desktop at start-up (called once from ari_app/app.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from ari_app.config.models import HotlineConfig
from ari_app.desktop.accounts import AccountError, Accounts
from ari_app.desktop.auth import DesktopAuth, SessionStore, SigninLimiter
from ari_app.desktop.deps import AgentActions, DesktopDeps, WrapUp
from ari_app.desktop.history import CallerHistory
from ari_app.desktop.routes import Desktop
from ari_app.desktop.screenpop import ScreenPop


def build_desktop(cfg: HotlineConfig, redis: Redis, salt: str, agents: AgentActions, *,
                  https: bool, wrapup: WrapUp | None = None) -> tuple[Desktop, ScreenPop | None]:
    """The desktop's routes, and the screen-pop hook for the queue (None: desktop off).

    A configured credentials file that cannot be read is a start-up error."""
    settings = cfg.desktop
    accounts: Accounts | None = None
    if settings.credentials_file is not None:
        path = cfg.resolve(settings.credentials_file)
        accounts = Accounts(path, [a.id for a in cfg.agents])
        if accounts.problem:
            raise AccountError(f"desktop.credentials_file: {accounts.problem}")
    prefix = cfg.redis.key_prefix
    auth = DesktopAuth(accounts, SessionStore(redis, prefix, settings),
                       SigninLimiter(redis, prefix, settings), secure_cookie=https)
    deps = DesktopDeps(settings=settings, auth=auth, redis=redis, key_prefix=prefix,
                       agents=agents, history=CallerHistory(cfg, salt) if accounts else None,
                       wrapup=wrapup, pause_reasons=cfg.agent_work.pause_reasons)
    pop = ScreenPop(redis, cfg, salt) if accounts is not None else None
    return Desktop(deps), pop
