"""The simulator against Erlang C: one skill, one queue, nobody hangs up."""

from __future__ import annotations

import math

import pytest

from ari_app.config import load_config
from ari_app.simulate import erlang
from ari_app.simulate.cli import erlang_check


def test_erlang_c_textbook_values() -> None:
    # 30 agents, 25 Erlangs: about a quarter of callers wait
    assert erlang.erlang_c(30, 25.0) == pytest.approx(0.2499, abs=5e-4)
    assert erlang.asa(30, 25.0, 180.0) == pytest.approx(0.2499 * 180 / 5, rel=2e-3)
    assert erlang.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang.asa(25, 25.0, 180.0) == math.inf
    assert erlang.agents_for_asa(25.0, 180.0, 11.0) == 30


def test_simulated_asa_and_service_level_match_erlang_c() -> None:
    cfg = load_config("config/hotline.yaml")
    r = erlang_check(cfg, 30, 25.0, aht=180.0, calls=200_000, seed=7)
    assert r["calls"] >= 200_000
    assert r["sim_asa"] == pytest.approx(r["erlang_c_asa"], rel=0.05)
    assert r["sim_sl20"] == pytest.approx(r["erlang_c_sl20"], abs=0.015)
    assert r["sim_occupancy"] == pytest.approx(25 / 30, abs=0.01)
