"""Expected wait, and how to say it without promising more than the data supports.

The estimate is position x mean handle time / agents serving, which is what a
caller at that place in line would wait if agents free up at their recent
average rate. Handle time is an exponentially weighted mean so one long call
moves it a little, not a lot; and per caller the spoken figure is smoothed so
it does not jump between announcements. With too few samples, or nobody
logged in to serve, there is no estimate at all: silence is better than a
number we cannot stand behind.

State is per app instance (fed from that instance's calls); with several
instances each estimates from its own share, which is the same population.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Series:
    mean: float | None = None
    count: int = 0

    def add(self, x: float, alpha: float) -> None:
        self.mean = x if self.mean is None else (1 - alpha) * self.mean + alpha * x
        self.count += 1


@dataclass
class WaitEstimator:
    alpha: float = 0.1
    min_samples: int = 5
    max_seconds: float = 3600.0
    smoothing: float = 0.5
    _handle: dict[str, _Series] = field(default_factory=dict)
    _answer: dict[str, _Series] = field(default_factory=dict)

    def record_handle_time(self, entity: str, seconds: float) -> None:
        """Talk + wrap-up of one answered call of this entity."""
        if seconds > 0:
            self._handle.setdefault(entity, _Series()).add(
                min(seconds, self.max_seconds), self.alpha
            )

    def record_answer_wait(self, entity: str, seconds: float) -> None:
        """How long an answered caller waited; a check on the model, see `estimate`."""
        if seconds >= 0:
            self._answer.setdefault(entity, _Series()).add(
                min(seconds, self.max_seconds), self.alpha
            )

    def handle_time(self, entity: str) -> float | None:
        s = self._handle.get(entity)
        return s.mean if s and s.count >= self.min_samples else None

    def estimate(
        self,
        entity: str,
        position: int,
        serving_agents: int,
        available_agents: int = 0,
        previous: float | None = None,
    ) -> float | None:
        """Seconds this caller can expect to wait, or None when we cannot say.

        `serving_agents`: logged in (not paused) and able to take this caller;
        `available_agents`: of those, idle now. `previous`: the last figure
        given to this caller, to smooth toward."""
        aht = self.handle_time(entity)
        if aht is None or serving_agents <= 0 or position <= 0:
            return None
        ahead = max(0, position - available_agents)
        model = ahead * aht / serving_agents
        seen = self._answer.get(entity)
        if seen and seen.mean is not None and seen.count >= self.min_samples and position == 1:
            # At the head of the line the recent answer waits are direct evidence.
            model = max(model, min(seen.mean, aht))
        est = (
            model if previous is None else (1 - self.smoothing) * previous + self.smoothing * model
        )
        return max(0.0, min(est, self.max_seconds))


SpokenWait = tuple[str, int | None]

LESS_THAN_MINUTE = "less_than_minute"
ABOUT_MINUTES = "about_minutes"
MORE_THAN_MINUTES = "more_than_minutes"
CEILING_MINUTES = 30


def spoken_wait(seconds: float | None) -> SpokenWait | None:
    """The phrase (prompt key, minutes) a person would use for this wait.

    Under a minute: "less than a minute". Then whole minutes 1-5, rounded to
    the nearest (a half rounds up: a caller minds a short figure more than a
    long one), then to the nearest 5 up to 30; beyond 30 minutes only "more
    than 30 minutes", because no estimate is good that far out. None: say
    nothing.
    """
    if seconds is None or seconds != seconds or seconds < 0:
        return None
    if seconds < 60:
        return (LESS_THAN_MINUTE, None)
    minutes = seconds / 60.0
    n = int(minutes + 0.5)
    if n > 5:
        n = 5 * int(minutes / 5 + 0.5)
    if n > CEILING_MINUTES:
        return (MORE_THAN_MINUTES, CEILING_MINUTES)
    return (ABOUT_MINUTES, max(1, n))
