"""pytest-xdist workers' port offsets (tests/support/workers.py): each worker's
stacks and servers on ports no developer's run and no other worker uses."""

from __future__ import annotations

import pytest

from scripts.stack import Ports
from tests.support.workers import (
    MAX_OFFSET,
    WORKER_STRIDE,
    apply_worker_offset,
    worker_index,
    worker_offset,
)

# the stacks one test run starts, above its offset: the integration stack, the TLS
# stack, the two sites, the two encrypted sites (tests/integration/)
STACKS = (100, 160, 300, 320, 400, 420)
# the servers at a fixed port plus the offset: the test Redis, PostgreSQL, the
# Redis cluster's three nodes
SERVERS = (6480, 5532, 7400, 7401, 7402)
# developers and the lead's CI: multiples of 100 up to 1800
BASES = range(0, 1801, 100)


def ports_of(offset: int) -> set[int]:
    out = {port + offset for port in SERVERS}
    for sub in STACKS:
        p = Ports(offset + sub)
        out |= {p.sip, p.sip_tls, p.http, p.ami, p.agi, p.app_http, p.redis}
    return out


def runs() -> dict[tuple[int, int], set[int]]:
    """Every (offset, worker) a run can have, and its ports."""
    out = {}
    for base in BASES:
        for n in range(8):
            try:
                out[(base, n)] = ports_of(worker_offset(base, f"gw{n}"))
            except ValueError:
                break
    return out


def test_worker_index() -> None:
    assert worker_index(None) == 0
    assert worker_index("gw0") == 0
    assert worker_index("gw3") == 3
    with pytest.raises(ValueError, match="gw<n>"):
        worker_index("master")


def test_ci_gets_three_workers_every_developer_two() -> None:
    assert worker_offset(0, "gw2") == 2 * WORKER_STRIDE
    assert worker_offset(100, "gw2") == 100 + 2 * WORKER_STRIDE
    assert worker_offset(1800, "gw1") == 1800 + WORKER_STRIDE
    with pytest.raises(ValueError, match="at offset 1600 use at most 2 workers"):
        worker_offset(1600, "gw2")


def test_apply_sets_the_worker_offset_once() -> None:
    env = {"HOTLINE_PORT_OFFSET": "200", "PYTEST_XDIST_WORKER": "gw1"}
    assert apply_worker_offset(env) == 200 + WORKER_STRIDE
    # a second call (or a worker spawned by a controller that already ran it) keeps it
    assert apply_worker_offset(env) == 200 + WORKER_STRIDE
    assert env["HOTLINE_PORT_OFFSET"] == str(200 + WORKER_STRIDE)
    plain = {"HOTLINE_PORT_OFFSET": "400"}
    assert apply_worker_offset(plain) == 400
    assert apply_worker_offset({}) == 0


def test_workers_never_share_a_port_with_a_developer_or_each_other() -> None:
    """Worker n of any run against worker m != n of any run (worker 0 is the run's own
    offset: the developers). Runs at the same n mirror the developers' own offsets."""
    every = runs()
    for (base, n), ports in every.items():
        for (other, m), theirs in every.items():
            if n < m:
                clash = ports & theirs
                assert not clash, f"gw{n} of the run at {base}, gw{m} of {other}: {clash}"


def test_every_worker_stack_has_valid_ports() -> None:
    """What scripts/stack.py and the deploy settings accept: RTP within 1024-65535, and
    SIP/TLS ports below the default RTP range the two-site tests' servers keep."""
    for base, n in runs():
        for sub in STACKS:
            p = Ports(worker_offset(base, f"gw{n}") + sub)
            lo, hi = p.rtp
            assert 1024 <= lo < hi <= 65535, (base, n, sub, p.rtp)
            assert p.sip_tls < 10000, (base, n, sub)
    assert MAX_OFFSET + 420 + 5061 == 9999


def test_rtp_ranges_of_existing_offsets_are_unchanged() -> None:
    for offset in range(0, 2177):
        assert Ports(offset).rtp == (20000 + offset * 20, 20000 + offset * 20 + 1999)
