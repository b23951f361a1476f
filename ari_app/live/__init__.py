"""Live figures: in-process call counters and the wallboard's view of Redis state."""

from ari_app.live.counters import CallCounters, LoopLagMonitor
from ari_app.live.view import RedisLiveView

__all__ = ["CallCounters", "LoopLagMonitor", "RedisLiveView"]
