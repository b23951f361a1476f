"""The callback's number plan, its settings, its dialplan and its report figures."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from ari_app.callback.numbers import BadNumber, masked, national
from ari_app.config.callback import CallbackSettings, NumberPlan
from ari_app.deploy.callback import callback_extens
from ari_app.records.archive import Archive
from ari_app.records.model import Callback, CallRecord, Outcome
from ari_app.reports.compute import Period, Query, compute
from tests.unit.conftest import NewArchive

QA = NumberPlan()


@pytest.mark.parametrize(("raw", "want"), [
    ("55123456", "55123456"),  # typed by the caller
    ("97455123456", "55123456"),  # caller id with the country code
    ("+97433123456", "33123456"),
    ("0097466123456", "66123456"),
    ("44123456", "44123456"),  # a fixed line
])
def test_national_numbers_are_accepted(raw: str, want: str) -> None:
    assert national(raw, QA) == want


@pytest.mark.parametrize(("raw", "why"), [
    ("", "anonymous"),
    ("0044207946", "international"),
    ("+442079460000", "international"),
    ("5512345", "7 digits"),
    ("551234567", "9 digits"),
    ("80012345", "starts with 8"),  # toll free
    ("90012345", "starts with 9"),  # premium
    ("12345678", "starts with 1"),
    ("5512a456", "other than digits"),
])
def test_other_numbers_are_refused_with_the_reason(raw: str, why: str) -> None:
    with pytest.raises(BadNumber, match=why):
        national(raw, QA)


def test_masked_shows_the_last_two_digits_only() -> None:
    assert masked("55123456") == "******56"


def test_hours_span_midnight_and_all_day() -> None:
    night = CallbackSettings(hours_start="22:00", hours_end="06:00")
    assert night.open_at(time(23, 0)) and night.open_at(time(5, 59))
    assert not night.open_at(time(12, 0))
    assert CallbackSettings(hours_start="00:00", hours_end="00:00").open_at(time(3, 0))
    day = CallbackSettings()
    assert day.open_at(time(7, 0)) and not day.open_at(time(22, 0))


@pytest.mark.parametrize(("bad", "msg"), [
    ({"hours_start": "25:00"}, "not a time"),
    ({"retry_interval": 3600, "max_attempts": 5, "max_age": 7200}, "longer than max_age"),
    ({"carrier_address": "sip:x;evil"}, "carrier_address"),
    ({"caller_id": "109;Dial"}, "caller_id"),
])
def test_bad_settings_are_refused_naming_the_problem(bad: dict[str, object], msg: str) -> None:
    with pytest.raises(ValidationError, match=msg):
        CallbackSettings.model_validate(bad)


def test_the_dialplan_dials_only_the_number_the_app_named_and_nothing_when_off() -> None:
    on = callback_extens(CallbackSettings(enabled=True), "192.0.2.1:5060")
    assert on.startswith('exten => _[34567]XXXXXXX,1,GotoIf($["${HOTLINE_CALLBACK_NUMBER}" '
                         '!= "${EXTEN}"]?refused,1)')
    assert "Dial(PJSIP/carrier/sip:${EXTEN}@192.0.2.1:5060," in on
    off = callback_extens(CallbackSettings(), None)
    assert "Dial" not in off and "exten => _X.,1,Hangup(1)" in off


def _cb(ticket: str, result: str, dialled: str, n: int, wait: float | None = None) -> CallRecord:
    return CallRecord(
        call_id=f"{ticket}-{n}", dialled=dialled, entity="phcc",
        arrived_at=f"2025-03-0{n}T08:00:00.000Z",
        outcome=Outcome.CALLBACK_REQUESTED if dialled == "109" else Outcome.FAILED,
        callback=Callback(ticket=ticket, number="******56", requested_at="2025-03-01T08:00:00Z",
                          of_call="x", waited=60.0, result=result, seconds_to_callback=wait))


def test_report_counts_callbacks_per_entity_and_leaves_attempts_out_of_calls(
        new_archive: NewArchive) -> None:
    with Archive(new_archive("cb")) as a:
        a.insert([_cb("t1", "requested", "109", 1), _cb("t1", "retry", "callback", 2),
                  _cb("t1", "answered", "callback", 3, wait=300.0),
                  _cb("t2", "requested", "109", 4), _cb("t2", "failed", "callback", 5)])
        d = compute(a.db, Query(period=Period.month("2025-03", "UTC"))).to_dict()
    assert d["callbacks"] == [{"entity": "phcc", "requested": 2, "answered": 1, "failed": 1,
                               "mean_seconds_to_callback": 300.0}]
    assert d["totals"]["calls"] == 2  # the two requests; attempts are not inbound calls
