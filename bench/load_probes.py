"""bench/load.py's probes: process CPU, Redis command counts, the app's event-loop
lag, SIPp message logs (when each call was answered, reached an agent, ended),
and the agents' SIPp phones.

Imported after load.py has put the tree under test first on sys.path, so
`tests.support` and `ari_app` here are that tree's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
import subprocess
import threading
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scripts.stack import Stack

from provenance import CLK_TCK

AGENTS_PER_PHONE = 20  # agents registered on one SIPp UAS process


# ------------------------------------------------------------------- probes --

def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK  # utime, stime
    except OSError:
        return 0.0


def own_cpu_seconds(pids: list[int | None]) -> float:
    """CPU of the bench's own side: these processes (the stack, the agents' phones),
    this driver and its finished children (the callers' SIPp)."""
    import resource

    own = sum(cpu_seconds(p) for p in pids)
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        own += ru.ru_utime + ru.ru_stime
    return own


def others_cores(t0: tuple[int, int], t1: tuple[int, int], own_s: float) -> float | None:
    """CPUs' worth of work by everything else on the machine between two
    machine_ticks() readings, given the bench's own CPU seconds meanwhile."""
    d_busy, d_total = t1[0] - t0[0], t1[1] - t0[1]
    if d_total <= 0:
        return None
    wall = d_total / CLK_TCK / (os.cpu_count() or 1)
    return round(max(0.0, (d_busy / CLK_TCK - own_s) / wall), 2)


def redis_commands(port: int) -> int:
    import redis

    r = redis.Redis(port=port)
    try:
        stats = r.info("commandstats")
        return sum(int(v["calls"]) for v in stats.values())
    finally:
        r.close()


def loop_lag(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("hotline_event_loop_lag_seconds"):
            return float(line.split()[-1])
    return None


class LagScraper(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.values: list[float] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(1.0):
            v = loop_lag(self.port)
            if v is not None:
                self.values.append(v)


# --------------------------------------------------------- SIPp message logs --

_SEP = re.compile(r"^-{20,} (\S+)\s+(\S+)\s*$")
_FROM_NUM = re.compile(r"^From:.*?sip:(\+?\d+)@", re.M | re.I)
_CALLID = re.compile(r"^Call-ID:\s*(\S+)", re.M | re.I)


def _ts(a: str, b: str) -> float:
    try:
        return datetime.strptime(f"{a} {b}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
    except ValueError:
        return float(a)


Message = tuple[float, str, str]


def read_messages(path: Path, offset: int = 0) -> tuple[list[Message], int]:
    """(time, 'sent' or 'received', message) from a SIPp -trace_msg file, from a byte offset."""
    out: list[tuple[float, str, str]] = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
            end = offset + len(data)
    except OSError:
        return out, offset
    text = data.decode(errors="replace")
    cur_t: float | None = None
    buf: list[str] = []

    def flush() -> None:
        if cur_t is not None and buf:
            head = buf[0]
            direction = "sent" if "sent" in head else "received"
            out.append((cur_t, direction, "\n".join(buf[1:]).strip()))

    for line in text.splitlines():
        m = _SEP.match(line)
        if m:
            flush()
            cur_t, buf = _ts(m.group(1), m.group(2)), []
        else:
            buf.append(line)
    flush()
    return out, end


@dataclass
class CallerCall:
    number: str = ""
    invite: float | None = None
    answered: float | None = None
    ack: float | None = None
    bye: float | None = None


def caller_calls(messages: list[tuple[float, str, str]]) -> dict[str, CallerCall]:
    calls: dict[str, CallerCall] = {}
    for t, d, msg in messages:
        m = _CALLID.search(msg)
        if not m:
            continue
        c = calls.setdefault(m.group(1), CallerCall())
        first = msg.split("\n", 1)[0]
        if d == "sent" and first.startswith("INVITE"):
            c.invite = t
            f = _FROM_NUM.search(msg)
            c.number = f.group(1) if f else ""
        elif d == "received" and first.startswith("SIP/2.0 200") and "INVITE" in msg \
                and c.answered is None:
            c.answered = t
        elif d == "sent" and first.startswith("ACK"):
            c.ack = c.ack or t
        elif d == "received" and first.startswith("BYE"):
            c.bye = t
    return calls


def agent_invites(messages: list[tuple[float, str, str]]) -> dict[str, float]:
    """Calling number -> time of the first INVITE an agent's phone received for it."""
    out: dict[str, float] = {}
    for t, d, msg in messages:
        if d == "received" and msg.startswith("INVITE"):
            f = _FROM_NUM.search(msg)
            if f and f.group(1) not in out:
                out[f.group(1)] = t
    return out


def pcap_span(path: Path) -> float:
    """Seconds from a pcap's first packet to its last (the DTMF end packets)."""
    import struct

    data = path.read_bytes()
    pos, first, last = 24, None, None
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        t = sec + usec / 1e6
        first = t if first is None else first
        last = t
        pos += 16 + incl
    return (last or 0.0) - (first or 0.0)


# ------------------------------------------------------------------- agents --

@dataclass
class PhoneGroup:
    port: int
    endpoints: list[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    msg_offset: int = 0

    @property
    def messages(self) -> Path:
        return self.workdir / "messages.log"


def start_phones(stack: Stack, agents: list[Any], workdir: Path, ring_ms: int,
                 talk_ms: int, groups: list[PhoneGroup]) -> None:
    """Every agent registered on a SIPp UAS (AGENTS_PER_PHONE per process) that
    rings `ring_ms`, answers, talks `talk_ms` and hangs up. Fills the caller's
    `groups` as it goes, so an interrupted start can still be stopped."""
    from tests.support.sipp import agent_scenario, free_port_pair, free_udp_port, register_agent

    for i in range(0, len(agents), AGENTS_PER_PHONE):
        chunk = agents[i:i + AGENTS_PER_PHONE]
        d = workdir / f"phone{i // AGENTS_PER_PHONE:02d}"
        d.mkdir(parents=True, exist_ok=True)
        groups.append(PhoneGroup(free_udp_port(), [a.endpoint for a in chunk], d))

    def register(g: PhoneGroup) -> None:
        for ep, agent in zip(g.endpoints, [a for a in agents if a.endpoint in g.endpoints],
                             strict=True):
            pw = (stack.dir / "secrets/agents" / f"{agent.id}.secret").read_text().strip()
            res = register_agent(stack.ports.sip, ep, pw, g.port, expires=3600, workdir=g.workdir)
            if not res.ok:
                raise RuntimeError(f"{ep} could not register: {res.stderr}")
        scen = agent_scenario("answer_hangup", g.workdir, ring_ms=ring_ms, talk_ms=talk_ms)
        g.proc = subprocess.Popen(
            [shutil.which("sipp") or "sipp", "-sf", str(scen), "-i", "127.0.0.1",
             "-p", str(g.port), "-mi", "127.0.0.1", "-mp", str(free_port_pair()),
             "-m", "10000000", "-l", "100000", "-nostdin", "-deadcall_wait", "0", "-aa",
             "-trace_err", "-error_file", str(g.workdir / "errors.log"),
             "-trace_msg", "-message_file", str(g.messages)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=g.workdir)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(register, groups))


def pool_ready(stack: Stack, config: Path) -> dict[str, int]:
    """Log every bench agent in (or resume them) through the real AgentPool."""
    import redis.asyncio as aioredis

    from ari_app.agents.pool import AgentPool
    from ari_app.config.loader import load_config

    cfg = load_config(config)

    async def go() -> dict[str, int]:
        r = aioredis.from_url(f"redis://127.0.0.1:{stack.ports.redis}/0")
        try:
            pool = AgentPool(r, cfg.agents)
            await pool.sync()
            counts: dict[str, int] = {}
            for a in cfg.agents:
                st = await pool.status(a.id)
                state = str(st.state) if st else "logged_out"
                if state in ("on_call", "offered", "wrapup"):
                    # left over from a step that went wrong: free them for the next
                    await pool.release(a.id, 0)
                    await pool.resume(a.id)
                if state == "paused":
                    await pool.resume(a.id)
                elif state == "logged_out":
                    await pool.login(a.id, reachable=True)
                counts[state] = counts.get(state, 0) + 1
            return counts
        finally:
            await r.aclose()

    return asyncio.run(go())




def stop_phones(phones: list[PhoneGroup]) -> None:
    for g in phones:
        if g.proc is not None and g.proc.poll() is None:
            g.proc.terminate()
            try:
                g.proc.wait(5)
            except subprocess.TimeoutExpired:
                g.proc.kill()
