"""pytest-xdist workers' port offsets (tests/support/workers.py): each worker's
stacks and servers on ports no developer's run and no other worker uses."""

from __future__ import annotations

import pytest

from scripts.stack import Ports
from tests.support.workers import (
    MAX_WORKERS,
    WORKER_STRIDE,
    apply_worker_offset,
    worker_index,
    worker_offset,
)

# the stacks one test run starts, above its offset: the integration stack, the TLS
# stack, the two sites, the two encrypted sites (tests/integration/)
STACKS = (100, 160, 300, 320, 400, 420)
# the servers at a fixed port plus the offset: the test Redis, PostgreSQL, the
# Redis cluster's three nodes and their bus ports
SERVERS = (6480, 5532, 7400, 7401, 7402, 17400, 17401, 17402)
# developers and the lead's CI: multiples of 100 up to 1800
BASES = range(0, 1801, 100)


def ports_of(offset: int) -> set[int]:
    out = {port + offset for port in SERVERS}
    for sub in STACKS:
        p = Ports(offset + sub)
        out |= {p.sip, p.sip_tls, p.http, p.ami, p.agi, p.app_http, p.redis}
    return out


def test_worker_index() -> None:
    assert worker_index(None) == 0
    assert worker_index("gw0") == 0
    assert worker_index("gw3") == 3
    with pytest.raises(ValueError, match="gw<n>"):
        worker_index("master")
    with pytest.raises(ValueError, match="at most"):
        worker_index(f"gw{MAX_WORKERS}")


def test_apply_sets_the_worker_offset_once() -> None:
    env = {"HOTLINE_PORT_OFFSET": "1600", "PYTEST_XDIST_WORKER": "gw2"}
    assert apply_worker_offset(env) == 1600 + 2 * WORKER_STRIDE
    # a second call (or a worker spawned by a controller that already ran it) keeps it
    assert apply_worker_offset(env) == 1600 + 2 * WORKER_STRIDE
    assert env["HOTLINE_PORT_OFFSET"] == str(1600 + 2 * WORKER_STRIDE)
    plain = {"HOTLINE_PORT_OFFSET": "400"}
    assert apply_worker_offset(plain) == 400
    assert apply_worker_offset({}) == 0


def test_workers_never_share_a_port_with_a_developer_or_each_other() -> None:
    """Worker n of any run against worker m != n of any run (worker 0 is the run's own
    offset: the developers). Runs at the same n mirror the developers' own offsets."""
    runs = {(base, n): ports_of(worker_offset(base, f"gw{n}"))
            for base in BASES for n in range(MAX_WORKERS)}
    for (base, n), ports in runs.items():
        for (other, m), theirs in runs.items():
            if n < m:
                clash = ports & theirs
                assert not clash, f"gw{n} of the run at {base}, gw{m} of {other}: {clash}"


def test_fixed_ports_stay_out_of_the_outgoing_range() -> None:
    top = max(max(ports_of(worker_offset(base, f"gw{MAX_WORKERS - 1}"))) for base in BASES)
    assert top < 32768


def test_every_worker_stack_has_valid_ports() -> None:
    for base in BASES:
        for n in range(MAX_WORKERS):
            for sub in STACKS:
                p = Ports(worker_offset(base, f"gw{n}") + sub)
                lo, hi = p.rtp
                assert 1024 <= lo < hi <= 65535, (base, n, sub, p.rtp)


def test_rtp_ranges_of_existing_offsets_are_unchanged() -> None:
    for offset in range(0, 2177):
        assert Ports(offset).rtp == (20000 + offset * 20, 20000 + offset * 20 + 1999)
