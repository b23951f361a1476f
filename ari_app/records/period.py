"""A span of whole days in a time zone, and its bounds in the archive's UTC text:
how exports and reports both cut the archive, so a day is the ministry's day."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ari_app.records.model import iso


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive
    tz: str = "UTC"

    @classmethod
    def month(cls, ym: str, tz: str = "UTC") -> Period:
        y, m = (int(x) for x in ym.split("-"))
        return cls(date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1]), tz)

    def utc_bounds(self) -> tuple[str, str]:
        """Half-open [start, end) in the archive's ISO UTC text form."""
        z = ZoneInfo(self.tz)
        start = datetime.combine(self.first, time(), z)
        end = datetime.combine(self.last + timedelta(days=1), time(), z)
        return iso(start), iso(end)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]
