"""Port offsets for pytest-xdist workers, so each worker runs its own stacks.

Every port the tests open is derived from HOTLINE_PORT_OFFSET (the integration
stack at 100 + offset, the TLS, two-site and encrypted-site stacks at 160 to
420 + offset, the test Redis at 6480 + offset, PostgreSQL at 5532 + offset, the
Redis cluster at 7400 + offset; stack names and directories carry their offset
too). Under xdist the first worker (gw0) keeps the offset it was given, and
worker n gets `offset + WORKER_STRIDE * n`, set in its environment before any
fixture reads it, so its stacks, names, directories and ports are its own.

The limits, and why 2013:
- Developers' offsets are multiples of 100 from 0 to 1800. One run opens ports
  at several distances above its offset (seven per stack, 4573 to 8109 + offset
  + 100 to 420; the servers at 5532 to 7402 + offset), so two runs can meet on a
  port even when their offsets differ (one's Redis on another's SIP port). With a
  stride of 2013 no worker of any run meets a developer's run or a worker of
  another rank (tests/unit/test_worker_offsets.py checks every pair); multiples
  of 100 need 4000 or more, which the next limit forbids.
- The two-site tests declare their SIP ports in a deploy config whose servers
  keep the default RTP range 10000-20000, which a SIP port may not lie in: a
  worker's offset may be at most MAX_OFFSET (its +420 stack's TLS port is then
  9999). So offset 0 or 100 (CI) can have 3 workers, a developer's offset up to
  2505 can have 2; more is refused with the reason.
- Offsets above 2176 wrap their RTP range (scripts/stack.py `Ports.rtp`) onto
  ranges that other stacks may use too: Asterisk skips an RTP port that is taken.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

WORKER_STRIDE = 2013
MAX_OFFSET = 9999 - 5061 - 420  # the +420 stack's SIP/TLS ports stay below 10000


def worker_index(worker_id: str | None) -> int:
    """0 outside xdist (`worker_id` None) and for gw0; n for `gw<n>`."""
    if not worker_id:
        return 0
    m = re.fullmatch(r"gw(\d+)", worker_id)
    if m is None:
        raise ValueError(f"PYTEST_XDIST_WORKER={worker_id!r} is not of the form gw<n>")
    return int(m.group(1))


def worker_offset(base: int, worker_id: str | None) -> int:
    """The port offset of this worker's stacks and servers."""
    n = worker_index(worker_id)
    off = base + WORKER_STRIDE * n
    if n and off > MAX_OFFSET:
        most = (MAX_OFFSET - base) // WORKER_STRIDE + 1
        raise ValueError(
            f"xdist worker {worker_id} at port offset {off} (HOTLINE_PORT_OFFSET={base} + "
            f"{WORKER_STRIDE} x {n}): its SIP ports would reach the deploy's default RTP "
            f"range (10000-20000); at offset {base} use at most {max(1, most)} workers")
    return off


def apply_worker_offset(environ: MutableMapping[str, str] = os.environ) -> int:
    """Set HOTLINE_PORT_OFFSET for this process (an xdist worker or a plain run),
    keeping the developer's own as HOTLINE_BASE_PORT_OFFSET. Idempotent."""
    base = int(environ.get("HOTLINE_BASE_PORT_OFFSET")
               or environ.get("HOTLINE_PORT_OFFSET") or "0")
    off = worker_offset(base, environ.get("PYTEST_XDIST_WORKER"))
    environ["HOTLINE_BASE_PORT_OFFSET"] = str(base)
    environ["HOTLINE_PORT_OFFSET"] = str(off)
    return off
