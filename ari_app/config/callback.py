"""Queued callback (virtual hold), as the contact-center manager tunes it.

Meant to sit in HotlineConfig as `callback: CallbackSettings`. Off unless
`enabled`: a callback dials out over the carrier trunk, which costs money and
must be switched on deliberately. docs/callback.md explains every field.
"""

from __future__ import annotations

import re
from datetime import time as clock

from pydantic import Field, field_validator, model_validator

from ari_app.config.base import Strict

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class NumberPlan(Strict):
    """Which numbers a callback may dial: national numbers only.

    A number is `length` digits starting with one of `first_digits`. A caller
    id in international form (`country_code` + national number, with or
    without `+` or `00`) is brought back to its national form; anything else
    with a leading 0 or +, or a toll-free/premium/short number, is refused.
    For Qatar: 8 digits; mobiles start 3, 5, 6, 7, fixed lines 4; 800 (toll
    free) and 900 (premium) numbers start 8 and 9, so they are refused."""

    country_code: str = Field("974", pattern=r"^[1-9][0-9]{0,3}$")
    length: int = Field(8, ge=4, le=15)
    first_digits: str = Field("34567", pattern=r"^[0-9]{1,10}$")


class CallbackSettings(Strict):
    enabled: bool = False
    # offer the callback once the caller has waited this long (seconds) ...
    offer_after: float = Field(90.0, ge=0, le=3600)
    # ... or earlier, as soon as the expected wait passes this (seconds; None: never)
    offer_when_expected_over: float | None = Field(180.0, ge=0, le=7200)
    # how long the app waits for each key of the callback menu
    digit_timeout: float = Field(6.0, gt=0, le=60)
    # how long the citizen's phone rings on each attempt
    ring_timeout: float = Field(30.0, ge=5, le=120)
    # no answer or busy: try again after this many seconds, up to max_attempts in all
    retry_interval: float = Field(300.0, ge=1, le=86400)
    max_attempts: int = Field(3, ge=1, le=10)
    # a pending callback older than this (seconds since the request) is failed
    max_age: float = Field(4 * 3600.0, ge=60, le=7 * 86400)
    # local hours (config timezone) in which callbacks are offered and dialled;
    # end before start spans midnight; equal means all day
    hours_start: str = "07:00"
    hours_end: str = "22:00"
    number_plan: NumberPlan = NumberPlan()
    # the caller id the citizen (and the agent's phone) sees on a callback
    caller_id: str = Field("109", pattern=r"^[0-9]{2,15}$")
    # where the carrier takes our outbound calls, host:port (rendered into the
    # dialplan's callback context by `hotline config render`; the dev/test rig
    # uses 127.0.0.1 at its SIP port + 2000)
    carrier_address: str | None = Field(None, pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")

    @field_validator("hours_start", "hours_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time HH:MM (00:00 to 23:59)")
        return v

    @model_validator(mode="after")
    def _attempts(self) -> CallbackSettings:
        if self.max_attempts > 1 and self.retry_interval * (self.max_attempts - 1) > self.max_age:
            raise ValueError("retry_interval x (max_attempts - 1) is longer than max_age: "
                             "the last attempts could never be made")
        return self

    def open_at(self, local: clock) -> bool:
        """Are callbacks offered and dialled at this local time of day?"""
        start, end = _parse(self.hours_start), _parse(self.hours_end)
        if start == end:
            return True
        if start < end:
            return start <= local < end
        return local >= start or local < end


def _parse(hhmm: str) -> clock:
    h, m = hhmm.split(":")
    return clock(int(h), int(m))
