"""Port offsets for pytest-xdist workers, so each worker runs its own stacks.

Every port the tests open is derived from HOTLINE_PORT_OFFSET (the integration
stack at 100 + offset, the two-site and TLS stacks at 160 to 420 + offset, the
test Redis at 6480 + offset, PostgreSQL at 5532 + offset, the Redis cluster at
7400 + offset; stack names and directories carry their offset too). Under xdist
the first worker keeps the offset it was given, and worker n gets
`offset + WORKER_STRIDE * n`, set in its environment before any fixture reads it,
so its stacks, names, directories and ports are its own.

Why 4000: developers' offsets are multiples of 100 from 0 to 1800, and one run
opens ports at several distances above its offset (seven per stack at 4573 to
8109 + offset + 100 to 420, the servers at 5532 to 17402 + offset), so two runs
whose offsets differ by a multiple of 100 can still meet on a port (the Redis of
one on the SIP port of another). 4000 is the smallest stride (in hundreds) for
which no worker 1 to 3 of any developer's run meets any developer's run or another
worker (tests/unit/test_worker_offsets.py checks it), and with at most 4 workers
every fixed port stays below 32768, out of the kernel's range for outgoing
connections. Offsets above 2176 wrap their RTP range (scripts/stack.py
`Ports.rtp`) onto ranges that other stacks may use too: Asterisk skips an RTP
port that is taken.
"""

from __future__ import annotations

import os
import re

WORKER_STRIDE = 4000
MAX_WORKERS = 4  # the machine has 2 CPUs; more would also need ports above 32767


def worker_index(worker_id: str | None) -> int:
    """0 outside xdist (`worker_id` None) and for gw0; n for `gw<n>`."""
    if not worker_id:
        return 0
    m = re.fullmatch(r"gw(\d+)", worker_id)
    if m is None:
        raise ValueError(f"PYTEST_XDIST_WORKER={worker_id!r} is not of the form gw<n>")
    n = int(m.group(1))
    if n >= MAX_WORKERS:
        raise ValueError(f"xdist worker {worker_id}: at most {MAX_WORKERS} workers "
                         f"(worker offsets are {WORKER_STRIDE} apart; more would open ports in the "
                         "kernel's range for outgoing connections)")
    return n


def worker_offset(base: int, worker_id: str | None) -> int:
    """The port offset of this worker's stacks and servers."""
    return base + WORKER_STRIDE * worker_index(worker_id)


def apply_worker_offset(environ: os._Environ[str] | dict[str, str] = os.environ) -> int:
    """Set HOTLINE_PORT_OFFSET for this process (an xdist worker or a plain run),
    keeping the developer's own as HOTLINE_BASE_PORT_OFFSET. Idempotent."""
    base = int(environ.get("HOTLINE_BASE_PORT_OFFSET")
               or environ.get("HOTLINE_PORT_OFFSET") or "0")
    off = worker_offset(base, environ.get("PYTEST_XDIST_WORKER"))
    environ["HOTLINE_BASE_PORT_OFFSET"] = str(base)
    environ["HOTLINE_PORT_OFFSET"] = str(off)
    return off
