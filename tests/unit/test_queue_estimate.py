"""Expected wait and the words for it."""

from __future__ import annotations

import pytest

from ari_app.queue.estimate import WaitEstimator, spoken_wait


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, None),
        (-1, None),
        (float("nan"), None),
        (0, ("less_than_minute", None)),
        (59.9, ("less_than_minute", None)),
        (60, ("about_minutes", 1)),
        (89, ("about_minutes", 1)),
        (90, ("about_minutes", 2)),
        (149, ("about_minutes", 2)),
        (150, ("about_minutes", 3)),
        (4 * 60 + 29, ("about_minutes", 4)),
        (5 * 60 + 29, ("about_minutes", 5)),
        (5 * 60 + 31, ("about_minutes", 5)),
        (7 * 60 + 29, ("about_minutes", 5)),
        (7 * 60 + 30, ("about_minutes", 10)),
        (12 * 60, ("about_minutes", 10)),
        (13 * 60, ("about_minutes", 15)),
        (32 * 60 + 29, ("about_minutes", 30)),
        (32 * 60 + 30, ("more_than_minutes", 30)),
        (3 * 3600, ("more_than_minutes", 30)),
    ],
)
def test_spoken_wait(seconds: float | None, expected: tuple[str, int | None] | None) -> None:
    assert spoken_wait(seconds) == expected


def test_no_data_no_estimate() -> None:
    e = WaitEstimator(min_samples=3)
    assert e.estimate("phcc", 3, 5) is None
    e.record_handle_time("phcc", 200)
    e.record_handle_time("phcc", 200)
    assert e.estimate("phcc", 3, 5) is None
    e.record_handle_time("phcc", 200)
    assert e.estimate("phcc", 3, 0) is None
    assert e.estimate("moi", 3, 5) is None


def test_model_and_bounds() -> None:
    e = WaitEstimator(min_samples=1, max_seconds=1800)
    for _ in range(5):
        e.record_handle_time("phcc", 240)
    assert e.estimate("phcc", 5, 4) == pytest.approx(300)
    assert e.estimate("phcc", 5, 4, available_agents=5) == 0
    assert e.estimate("phcc", 500, 1) == 1800


def test_smoothing() -> None:
    e = WaitEstimator(min_samples=1, alpha=0.5, smoothing=0.5)
    e.record_handle_time("x", 100)
    e.record_handle_time("x", 300)
    assert e.handle_time("x") == pytest.approx(200)
    assert e.estimate("x", 2, 1, previous=600) == pytest.approx(500)


def test_head_of_line_uses_observed_waits() -> None:
    e = WaitEstimator(min_samples=1)
    e.record_handle_time("x", 300)
    e.record_answer_wait("x", 90)
    assert e.estimate("x", 1, 10) == pytest.approx(90)
