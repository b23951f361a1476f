"""Live figures: call counters (today's shared in Redis) and the wallboard's view of Redis."""

from ari_app.live.counters import CallCounters, LoopLagMonitor
from ari_app.live.today import DayTotals
from ari_app.live.view import RedisLiveView

__all__ = ["CallCounters", "DayTotals", "LoopLagMonitor", "RedisLiveView"]
