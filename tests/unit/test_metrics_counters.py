"""CallCounters: Prometheus text, histogram buckets, today's totals and the midnight reset."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ari_app.live.counters import SOA_BUCKETS, CallCounters, LoopLagMonitor

_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$'
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Family:
    kind: str = ""
    help: str = ""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)


def parse_prometheus(text: str) -> dict[str, Family]:
    """A strict little parser for the text format (0.0.4): every sample belongs to a
    family declared by HELP and TYPE before it; names, labels and values must parse."""
    fams: dict[str, Family] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            fams.setdefault(name, Family()).help = h
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            fams.setdefault(name, Family()).kind = kind
            continue
        assert line and not line.startswith("#"), f"unexpected line {line!r}"
        m = _SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        name = m["name"]
        base = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in fams:
                base = name[: -len(suffix)]
        assert base in fams and fams[base].kind, f"sample {name} before its TYPE"
        lbls = frozenset(_LABEL.findall(m["labels"] or ""))
        fams[base].samples[(name, lbls)] = float(m["value"])
    return fams


def value(fams: dict[str, Family], name: str, **labels: str) -> float:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    fam = fams.get(base) or fams[name]
    return fam.samples[(name, frozenset(labels.items()))]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def doha(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo("Asia/Qatar")).timestamp()


def test_histogram_buckets_are_cumulative_with_inclusive_bounds() -> None:
    c = CallCounters()
    waits = (0, 5, 5.01, 10, 19.9, 20, 31, 299, 300, 301, 5000)
    for v in waits:
        c.answered(v)
    fams = parse_prometheus(c.prometheus())
    name = "hotline_speed_of_answer_seconds"
    got = {le: value(fams, name + "_bucket", le=le)
           for le in ("5", "10", "20", "30", "60", "120", "300", "+Inf")}
    assert got == {"5": 2, "10": 4, "20": 6, "30": 6, "60": 7, "120": 7, "300": 9, "+Inf": 11}
    assert len(SOA_BUCKETS) + 1 == len(got)
    assert value(fams, name + "_count") == 11
    assert value(fams, name + "_sum") == pytest.approx(sum(waits))


def test_exposition_is_the_official_clients_on_a_registry_of_its_own() -> None:
    """Two counters objects (two apps in one process) never share figures, and
    nothing lands in prometheus_client's global default registry."""
    from prometheus_client import REGISTRY

    a, b = CallCounters(), CallCounters()
    a.answered(3)
    a.outcome("rejected")
    assert a.registry is not b.registry
    assert a.registry.get_sample_value("hotline_speed_of_answer_seconds_count") == 1
    assert b.registry.get_sample_value("hotline_speed_of_answer_seconds_count") == 0
    assert b.registry.get_sample_value("hotline_calls_total", {"outcome": "rejected"}) is None
    assert REGISTRY.get_sample_value("hotline_calls_total", {"outcome": "rejected"}) is None


def test_prometheus_text_names_types_and_values() -> None:
    c = CallCounters(clock=Clock(doha(2026, 11, 28, 10)))
    for _ in range(3):
        c.menu_entered()
    c.menu_left()
    c.queued_call("phcc")
    c.queued_call("phcc")
    c.queued_call("moi")
    c.answered(4.0)
    c.answered(25.0)
    c.abandoned_in_queue(70.0)
    c.abandoned_in_menu()
    c.outcome("rejected")
    c.set_waiting("phcc", 2, 42.5)
    c.set_waiting('we"ird\\ent', 1)
    c.set_agents({"doha_hq": {"available": 4, "on_call": 9}}, {"doha_hq": 1})
    c.ari_reconnected()
    c.ami_reconnected()
    c.ami_reconnected()
    c.set_loop_lag(0.012)
    fams = parse_prometheus(c.prometheus())

    assert all(n.startswith("hotline_") for n in fams)
    kinds = {n: f.kind for n, f in fams.items()}
    assert kinds["hotline_calls_in_menus"] == "gauge"
    assert kinds["hotline_calls_total"] == "counter"
    assert kinds["hotline_speed_of_answer_seconds"] == "histogram"
    assert kinds["hotline_ari_reconnects_total"] == "counter"
    assert kinds["hotline_event_loop_lag_seconds"] == "gauge"
    assert all(f.help for f in fams.values())

    assert value(fams, "hotline_calls_in_menus") == 2
    assert value(fams, "hotline_calls_queued_total") == 3
    assert value(fams, "hotline_calls_total", outcome="answered") == 2
    assert value(fams, "hotline_calls_total", outcome="abandoned_in_queue") == 1
    assert value(fams, "hotline_calls_total", outcome="abandoned_in_menu") == 1
    assert value(fams, "hotline_calls_total", outcome="rejected") == 1
    assert value(fams, "hotline_queue_waiting", entity="phcc") == 2
    assert value(fams, "hotline_queue_waiting", entity='we\\"ird\\\\ent') == 1
    assert value(fams, "hotline_queue_longest_wait_seconds", entity="phcc") == 42.5
    assert value(fams, "hotline_agents", site="doha_hq", state="on_call") == 9
    assert value(fams, "hotline_agents_unreachable", site="doha_hq") == 1
    assert value(fams, "hotline_speed_of_answer_seconds_bucket", le="5") == 1
    assert value(fams, "hotline_speed_of_answer_seconds_bucket", le="20") == 1
    assert value(fams, "hotline_speed_of_answer_seconds_bucket", le="30") == 2
    assert value(fams, "hotline_speed_of_answer_seconds_bucket", le="+Inf") == 2
    assert value(fams, "hotline_speed_of_answer_seconds_count") == 2
    assert value(fams, "hotline_speed_of_answer_seconds_sum") == 29
    assert value(fams, "hotline_ari_reconnects_total") == 1
    assert value(fams, "hotline_ami_reconnects_total") == 2
    assert value(fams, "hotline_event_loop_lag_seconds") == 0.012
    assert value(fams, "hotline_today_calls", figure="answered") == 2
    assert value(fams, "hotline_today_asa_seconds") == 14.5
    assert value(fams, "hotline_today_service_level_ratio") == pytest.approx(1 / 3, abs=1e-3)
    buckets = [le for (n, lb) in fams["hotline_speed_of_answer_seconds"].samples
               if n.endswith("_bucket") for k, le in lb if k == "le"]
    assert buckets == ["5", "10", "20", "30", "60", "120", "300", "+Inf"]


def test_today_figures_and_reset_at_local_midnight() -> None:
    clock = Clock(doha(2026, 11, 28, 23, 58))
    c = CallCounters(clock=clock, sla_seconds=20)
    c.queued_call("phcc")
    c.queued_call("phcc")
    c.answered(10)
    c.answered(30)
    c.abandoned_in_queue(5)
    c.abandoned_in_menu()
    t = c.today()
    assert t["date"] == "2026-11-28"
    assert (t["offered"], t["answered"], t["abandoned_in_queue"], t["abandoned_in_menu"]) == (
        2, 2, 1, 1)
    assert t["asa_seconds"] == 20.0
    assert t["service_level"] == pytest.approx(1 / 3, abs=1e-3)
    assert t["sla_seconds"] == 20
    # 21:00 UTC is midnight in Doha (UTC+3): a new day starts from zero
    clock.t = doha(2026, 11, 29, 0, 0)
    t = c.today()
    assert t["date"] == "2026-11-29"
    assert (t["offered"], t["answered"], t["asa_seconds"], t["service_level"]) == (0, 0, None, None)
    # the Prometheus counters are monotonic and do not reset
    assert c.outcomes["answered"] == 2
    assert c.registry.get_sample_value("hotline_speed_of_answer_seconds_count") == 2


def test_timezone_is_configurable() -> None:
    ts = doha(2026, 11, 28, 1, 30)  # 22:30 UTC on the 27th
    assert CallCounters(clock=Clock(ts)).today()["date"] == "2026-11-28"
    assert CallCounters(tz="UTC", clock=Clock(ts)).today()["date"] == "2026-11-27"


def test_outcome_refuses_the_dedicated_names() -> None:
    c = CallCounters()
    with pytest.raises(ValueError):
        c.outcome("answered")
    c.menu_left()
    assert c.in_menus == 0  # never negative


def test_loop_lag_p99_over_the_window() -> None:
    c = CallCounters()
    mon = LoopLagMonitor(c, interval=0.5, window=60)
    assert mon.samples.maxlen == 120
    for _ in range(118):
        mon.record(0.001)
    mon.record(0.2)
    mon.record(0.3)
    assert c.loop_lag_p99 == 0.2  # p99 of 120 samples is the 119th smallest
    for _ in range(120):
        mon.record(0.002)
    assert c.loop_lag_p99 == 0.002  # old samples age out


async def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    c = CallCounters()
    mon = LoopLagMonitor(c, interval=0.05, window=5)
    stop = asyncio.Event()
    task = asyncio.create_task(mon.run(stop))
    await asyncio.sleep(0.07)
    time.sleep(0.2)  # block the loop on purpose
    await asyncio.sleep(0.12)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert c.loop_lag_p99 >= 0.1
