#!/usr/bin/env python3
"""Load bench: plain Asterisk (dialplan + app_queue) against the app's full journey.

One Asterisk 22 (the rig's chroot, stack "bench", port offset 700), one Redis,
the app and its archiver, SIPp callers and SIPp agents' phones. Per rate step
(calls/s) a fixed number of calls runs first through the baseline (number 1099:
Answer, two Read() menus with the app's prompts, Queue(bench) leastrecent to the
same agents) and then through the app (number 109: language menu, main menu,
queue for `other`, agent chosen in Redis, bridged, call record written), so both
see the same machine load at the same moment.

Each caller presses 2 (English) FIRST_MS after the answer and 0 (other
departments) GAP_MS later, then waits for the BYE; every agent's phone rings
RING_MS, answers, talks TALK_MS and hangs up.

    .venv/bin/python bench/load.py [--rates 5,10,15,25,50,100,150,200] [--agents 200]
                                   [--profile-rate 25] [--redis-max-connections 1000]
                                   [--name load] [--keep]

Writes bench/out/load.json, bench/out/load.md, bench/out/load-chart.png (copied
to docs/img/load-chart.png) and, with --profile-rate, py-spy's flame graph
bench/out/profile.svg and raw stacks bench/out/profile.txt of the app during
that app step (top functions summarised into load.json). A system's higher
steps are skipped after two dirty steps in a row. How each figure is measured:
bench/README.md, "Load".
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from scripts.stack import Stack, ensure_rootfs  # noqa: E402
from tests.support.dtmf import write_digit_pcap  # noqa: E402
from tests.support.sipp import agent_scenario, free_port_pair, free_udp_port, register_agent  # noqa: E402

OUT = ROOT / "bench/out"
WORK = OUT / "load"
LOAD_DIR = ROOT / "bench/load"
CLK_TCK = os.sysconf("SC_CLK_TCK")

FIRST_MS = 1000      # answer -> first key (2: English)
GAP_MS = 500         # first key -> second key (0: other departments)
RING_MS = 200        # agent phone rings this long before answering
TALK_MS = 2000       # then talks this long and hangs up
AGENTS_PER_PHONE = 20  # agents registered on one SIPp UAS process
ENTITY = "other"
RUN_ID = f"{int(time.time()) % 1000:03d}"
APP_NUMBER = "109"
BASE_NUMBER = "1099"


def log(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ config --

def write_bench_config(n_agents: int, dest_dir: Path) -> Path:
    """The shipped config, with short timers, wrap-up 0 and `n_agents` bench agents
    (English, skill `other`, all at one site) in place of the real roster."""
    raw = yaml.safe_load((ROOT / "config/hotline.yaml").read_text(encoding="utf-8"))
    raw["timers"] = {"digit_timeout": 3, "tries": 2, "inter_digit_timeout": 2}
    raw["callers"] = dict(raw.get("callers") or {}, anonymous="allow", blocklist=[])
    raw["queue"] = dict(raw.get("queue") or {}, ring_timeout=5, wrapup_seconds=0,
                        announce_first_after=600, announce_interval=600, max_wait=300)
    site = raw["sites"][0]["id"]
    agents = [{"id": f"b{i:03d}", "name": f"Bench Agent {i}", "site": site,
               "endpoint": f"bench-b{i:03d}", "languages": ["en"], "skills": [ENTITY]}
              for i in range(1, n_agents + 1)]
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / "agents.yaml").write_text(yaml.safe_dump({"agents": agents}, sort_keys=False))
    raw["agents_file"] = str((dest_dir / "agents.yaml").resolve())
    raw["prompts_dir"] = str((ROOT / "config" / raw.get("prompts_dir", "prompts")).resolve())
    cfg = dest_dir / "hotline.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return cfg


def main_menu_prompts(config: Path) -> str:
    from ari_app.config.loader import load_config
    from ari_app.journey.menus import menu_prompts

    cfg = load_config(config)
    return "&".join(f"hotline/{n}" for n in menu_prompts(cfg, cfg.menu))


class BenchStack(Stack):
    """The rig's stack, plus the bench-only baseline dialplan and queue in its etc dir."""

    def __init__(self, config: Path, agent_endpoints: list[str], redis_max_connections: int = 0,
                 **kw: Any) -> None:
        super().__init__(name="bench", offset=700, config=config, **kw)
        self.agent_endpoints = agent_endpoints
        self.redis_max_connections = redis_max_connections

    def write_app_config(self) -> None:
        """The rig's app config; optionally a bigger redis-py connection pool (the
        default of 100 is exhausted by QueueService's per-agent status fan-out)."""
        super().write_app_config()
        if self.redis_max_connections:
            raw = yaml.safe_load(self.app_config.read_text(encoding="utf-8"))
            raw["redis"]["url"] += f"?max_connections={self.redis_max_connections}"
            self.app_config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                                       encoding="utf-8")

    def render_asterisk(self) -> None:
        super().render_asterisk()
        etc = self.inst / "etc"
        tpl = (ROOT / "asterisk-config/extensions_bench.conf").read_text(encoding="utf-8")
        active = "\n".join(line[len(";bench; "):] if line.startswith(";bench; ") else
                           ("" if line.startswith(";bench;") else line)
                           for line in tpl.splitlines())
        active = active.replace("{{MAIN_MENU}}", main_menu_prompts(self.base_config))
        (etc / "extensions_bench.conf").write_text(active + "\n", encoding="utf-8")
        members = "\n".join(f"member => PJSIP/{ep},0,{ep}" for ep in self.agent_endpoints)
        (etc / "queues_bench.conf").write_text(
            "; written by bench/load.py\n[bench]\nstrategy = leastrecent\ntimeout = 5\n"
            "retry = 1\nwrapuptime = 0\nringinuse = no\njoinempty = yes\n"
            "leavewhenempty = no\nannounce-frequency = 0\nperiodic-announce-frequency = 0\n"
            "announce-position = no\nannounce-holdtime = no\nautopause = no\n"
            "musicclass = default\n" + members + "\n", encoding="utf-8")


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


def start_phones(stack: Stack, agents: list[Any], workdir: Path) -> list[PhoneGroup]:
    groups: list[PhoneGroup] = []
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
        scen = agent_scenario("answer_hangup", g.workdir, ring_ms=RING_MS, talk_ms=TALK_MS)
        g.proc = subprocess.Popen(
            [shutil.which("sipp") or "sipp", "-sf", str(scen), "-i", "127.0.0.1",
             "-p", str(g.port), "-mi", "127.0.0.1", "-mp", str(free_port_pair()),
             "-m", "10000000", "-l", "100000", "-nostdin", "-deadcall_wait", "0", "-aa",
             "-trace_err", "-error_file", str(g.workdir / "errors.log"),
             "-trace_msg", "-message_file", str(g.messages)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=g.workdir)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(register, groups))
    return groups


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


# --------------------------------------------------------------------- steps --

@dataclass
class StepResult:
    system: str
    rate: float
    calls: int
    wall_seconds: float
    sipp_failed: int
    no_bye: int
    no_agent: int
    failed: int
    answer_ms_p50: float | None
    answer_ms_p95: float | None
    digit_to_agent_ms_p50: float | None
    digit_to_agent_ms_p95: float | None
    digit_to_agent_ms_max: float | None
    asterisk_cpu_ms_per_call: float
    app_cpu_ms_per_call: float | None
    archiver_cpu_ms_per_call: float | None
    loop_lag_p99_ms_max: float | None
    redis_cmds_per_call: float
    left_channels: int
    left_bridges: int
    clean: bool = False
    notes: list[str] = field(default_factory=list)


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p * (len(xs) - 1)))], 1)


def run_step(stack: Stack, system: str, rate: float, n: int, step_no: int,
             pcaps: tuple[Path, Path], last_key_offset: float, phones: list[PhoneGroup],
             profile: bool) -> StepResult:
    number = BASE_NUMBER if system == "baseline" else APP_NUMBER
    d = WORK / f"step{step_no:02d}-{system}-{rate:g}"
    d.mkdir(parents=True, exist_ok=True)
    # unique across runs too: a number the app has seen would get its remembered
    # language (WelcomeBack) and a different menu path
    prefix = f"9{RUN_ID}{step_no:02d}{0 if system == 'baseline' else 1}"
    numbers = [f"{prefix}{i:05d}" for i in range(n)]
    (d / "callers.csv").write_text("SEQUENTIAL\n" + "".join(f"{x};\n" for x in numbers))
    scen = (LOAD_DIR / "caller.xml").read_text()
    scen = (scen.replace("@FIRST_MS@", str(FIRST_MS)).replace("@GAP_MS@", str(GAP_MS))
            .replace("@PCAP1@", str(pcaps[0])).replace("@PCAP2@", str(pcaps[1]))
            .replace("@BYE_TIMEOUT_MS@", "40000"))
    (d / "caller.xml").write_text(scen)
    for g in phones:
        g.msg_offset = g.messages.stat().st_size if g.messages.exists() else 0

    pids = {w: stack._pid(w) for w in ("asterisk", "app", "archiver")}
    cpu0 = {w: cpu_seconds(p) for w, p in pids.items()}
    cmds0 = redis_commands(stack.ports.redis)
    lag = LagScraper(stack.ports.app_http)
    lag.start()
    spies: list[subprocess.Popen[bytes]] = []
    if profile and pids["app"] and shutil.which("py-spy", path=str(ROOT / ".venv/bin")):
        for fmt, dest in (("flamegraph", "profile.svg"), ("raw", "profile.txt")):
            spies.append(subprocess.Popen(
                [str(ROOT / ".venv/bin/py-spy"), "record", "-f", fmt, "-o", str(OUT / dest),
                 "--pid", str(pids["app"]), "-d", str(int(n / rate) + 4), "-r", "100"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    t0 = time.monotonic()
    argv = [shutil.which("sipp") or "sipp", f"127.0.0.1:{stack.ports.sip}", "-sf",
            str(d / "caller.xml"), "-inf", str(d / "callers.csv"), "-s", number,
            "-r", f"{rate:g}", "-rp", "1000", "-m", str(n), "-l", "5000",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1",
            "-mp", str(free_port_pair()), "-nostdin", "-timeout", "100s",
            "-timeout_error", "-deadcall_wait", "0", "-trace_err",
            "-error_file", str(d / "errors.log"), "-trace_msg",
            "-message_file", str(d / "messages.log"), "-trace_stat", "-stf",
            str(d / "stats.csv"), "-fd", "1"]
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=240, cwd=d)
    # let the last hang-ups land, then wait (bounded) for Asterisk to drain
    deadline = time.monotonic() + 20
    left = stack.leftovers()
    while (left["channels"] or left["bridges"]) and time.monotonic() < deadline:
        time.sleep(0.25)
        left = stack.leftovers()
    wall = time.monotonic() - t0
    cleanup(stack, left)
    lag.stop_flag.set()
    lag.join(2)
    for spy in spies:
        spy.wait(60)
    cpu1 = {w: cpu_seconds(p) for w, p in pids.items()}
    cmds1 = redis_commands(stack.ports.redis)

    sipp_failed = _sipp_failed(d / "stats.csv", proc.returncode)
    calls = caller_calls(read_messages(d / "messages.log")[0])
    invites: dict[str, float] = {}
    for g in phones:
        invites.update(agent_invites(read_messages(g.messages, g.msg_offset)[0]))
    answer_ms, d2a = [], []
    no_bye = no_agent = 0
    for c in calls.values():
        if c.invite and c.answered:
            answer_ms.append((c.answered - c.invite) * 1000)
        if c.bye is None:
            no_bye += 1
        ring = invites.get(c.number)
        if ring is None:
            no_agent += 1
        elif c.ack is not None:
            d2a.append((ring - (c.ack + last_key_offset)) * 1000)
    missing = n - len(calls)
    failed = len({cid for cid, c in calls.items()
                  if c.bye is None or c.number not in invites}) + missing
    failed = max(failed, sipp_failed)
    app_calls = system == "app"
    res = StepResult(
        system=system, rate=rate, calls=n, wall_seconds=round(wall, 1),
        sipp_failed=sipp_failed, no_bye=no_bye + missing, no_agent=no_agent + missing,
        failed=failed,
        answer_ms_p50=_pct(answer_ms, 0.5), answer_ms_p95=_pct(answer_ms, 0.95),
        digit_to_agent_ms_p50=_pct(d2a, 0.5), digit_to_agent_ms_p95=_pct(d2a, 0.95),
        digit_to_agent_ms_max=_pct(d2a, 1.0),
        asterisk_cpu_ms_per_call=round((cpu1["asterisk"] - cpu0["asterisk"]) * 1000 / n, 2),
        app_cpu_ms_per_call=round((cpu1["app"] - cpu0["app"]) * 1000 / n, 2) if app_calls
        else None,
        archiver_cpu_ms_per_call=round((cpu1["archiver"] - cpu0["archiver"]) * 1000 / n, 2)
        if app_calls else None,
        loop_lag_p99_ms_max=round(max(lag.values) * 1000, 1) if app_calls and lag.values
        else None,
        redis_cmds_per_call=round((cmds1 - cmds0) / n, 1),
        left_channels=len(left["channels"]), left_bridges=len(left["bridges"]))
    res.clean = res.failed == 0 and not res.left_channels and not res.left_bridges
    if not app_calls:
        res.notes.append(f"app idle during this step: {(cpu1['app'] - cpu0['app']) * 1000:.0f} ms")
    if proc.returncode not in (0, 1):
        res.notes.append(f"sipp exit {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return res


def cleanup(stack: Stack, left: dict[str, list[Any]]) -> None:
    """Hang up and destroy what a step left behind, so the next step starts clean
    (the step's result has already counted them)."""
    for ch in left["channels"]:
        stack.ari("DELETE", f"channels/{ch['id']}")
    for br in left["bridges"]:
        stack.ari("DELETE", f"bridges/{br['id']}")


def _sipp_failed(stats: Path, rc: int) -> int:
    try:
        lines = [x for x in stats.read_text().splitlines() if x.strip()]
        head, last = lines[0].split(";"), lines[-1].split(";")
        return int(last[head.index("FailedCall(C)")])
    except (OSError, ValueError, IndexError):
        return -1 if rc else 0


# ------------------------------------------------------------------ outputs --

COLS = [
    ("system", "system"), ("rate", "calls/s"), ("calls", "calls"), ("failed", "failed"),
    ("answer_ms_p50", "answer p50 ms"), ("answer_ms_p95", "answer p95 ms"),
    ("digit_to_agent_ms_p50", "key→agent p50 ms"), ("digit_to_agent_ms_p95", "key→agent p95 ms"),
    ("asterisk_cpu_ms_per_call", "Asterisk CPU ms/call"), ("app_cpu_ms_per_call",
                                                             "app CPU ms/call"),
    ("loop_lag_p99_ms_max", "loop lag p99 ms (max)"), ("redis_cmds_per_call", "Redis cmds/call"),
    ("left_channels", "left ch"), ("left_bridges", "left br"), ("clean", "clean"),
]


def table(results: list[StepResult]) -> str:
    out = ["| " + " | ".join(h for _, h in COLS) + " |",
           "| " + " | ".join("---" if k == "system" else "---:" for k, _ in COLS) + " |"]
    for r in results:
        row = asdict(r)
        cells = []
        for k, _ in COLS:
            v = row[k]
            cells.append("" if v is None else ("yes" if v is True else "NO" if v is False
                                               else f"{v:g}" if isinstance(v, float) else str(v)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def headline(results: list[StepResult]) -> dict[str, Any]:
    def best(system: str) -> float | None:
        """Highest rate with this step and every lower step clean."""
        top = None
        for r in sorted((x for x in results if x.system == system), key=lambda x: x.rate):
            if not r.clean:
                break
            top = r.rate
        return top

    b, a = best("baseline"), best("app")
    at50 = next((r.app_cpu_ms_per_call for r in results if r.system == "app" and r.rate == 50),
                None)
    return {"baseline_clean_rate": b, "app_clean_rate": a,
            "ratio": round(a / b, 2) if a and b else None, "app_cpu_ms_per_call_at_50": at50,
            "targets": {"app_clean_rate": ">= 100", "ratio": ">= 0.67",
                        "app_cpu_ms_per_call_at_50": "<= 4"}}


def chart(results: list[StepResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for system, style in (("baseline", "o-"), ("app", "s-")):
        rs = sorted((r for r in results if r.system == system), key=lambda r: r.rate)
        x = [r.rate for r in rs]
        axes[0].plot(x, [r.failed / r.calls * 100 for r in rs], style, label=system)
        axes[1].plot(x, [r.digit_to_agent_ms_p95 or float("nan") for r in rs], style,
                     label=f"{system} p95")
        axes[1].plot(x, [r.digit_to_agent_ms_p50 or float("nan") for r in rs], style,
                     alpha=0.4, label=f"{system} p50")
        axes[2].plot(x, [r.asterisk_cpu_ms_per_call for r in rs], style,
                     label=f"Asterisk ({system})")
        if system == "app":
            axes[2].plot(x, [r.app_cpu_ms_per_call or float("nan") for r in rs], "^--",
                         label="app process")
    axes[0].set_title("failed calls (%)")
    axes[1].set_title("last key → agent INVITE (ms)")
    axes[1].set_yscale("log")
    axes[2].set_title("CPU per call (ms)")
    for ax in axes:
        ax.set_xlabel("offered calls/s")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Hotline 109 load: plain Asterisk + app_queue vs the app (same Asterisk, "
                 "alternating steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def profile_top(path: Path, n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's raw (collapsed) stacks: share of samples per function, by self time
    and inclusive (any frame in the stack), the app's own functions for the latter."""
    selfs: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";")]
        if frames:
            selfs[frames[-1]] = selfs.get(frames[-1], 0) + k
        for f in set(frames):
            if "ari_app/" in f or "redis/" in f or "httpx" in f or "asyncio/" in f:
                incl[f] = incl.get(f, 0) + k
    if not total:
        return {}

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, round(c / total, 3)) for f, c in sorted(d.items(), key=lambda x: -x[1])[:n]]

    return {"self": top(selfs), "inclusive": top(incl), "samples": [("total", float(total))]}


def write_outputs(results: list[StepResult], meta: dict[str, Any], name: str = "load") -> None:
    head = headline(results)
    meta["profile"] = profile_top(OUT / "profile.txt")
    doc = {"meta": meta, "headline": head, "steps": [asdict(r) for r in results]}
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1))
    if name != "load":  # a side run (e.g. a smaller roster): no chart, no docs/img
        (OUT / f"{name}.md").write_text(table(results) + "\n\nHeadline: " + json.dumps(head))
        return
    md = [f"# Load bench ({meta['date']})", "", table(results), "",
          "Headline: " + json.dumps(head), ""]
    (OUT / "load.md").write_text("\n".join(md))
    chart(results, OUT / "load-chart.png")
    (ROOT / "docs/img").mkdir(parents=True, exist_ok=True)
    shutil.copy(OUT / "load-chart.png", ROOT / "docs/img/load-chart.png")


# --------------------------------------------------------------------- main --

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="5,10,15,25,50,100,150,200")
    ap.add_argument("--seconds", type=float, default=8.0, help="offered seconds per step")
    ap.add_argument("--min-calls", type=int, default=50)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--profile-rate", type=float, default=25.0,
                    help="py-spy record the app during this app step (0: none)")
    ap.add_argument("--stop-after-dirty", type=int, default=2,
                    help="skip a system's higher steps after this many dirty steps in a row")
    ap.add_argument("--redis-max-connections", type=int, default=1000,
                    help="app's redis-py pool size via the URL (0: as shipped, 100)")
    ap.add_argument("--name", default="load",
                    help="output name under bench/out/ (other than 'load': no chart)")
    ap.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    args = ap.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",")]

    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    config = write_bench_config(args.agents, WORK)
    from ari_app.config.loader import load_config

    agents = load_config(config).agents
    stack = BenchStack(config, [a.endpoint for a in agents],
                       redis_max_connections=args.redis_max_connections)
    version = ensure_rootfs(stack.rootfs)
    stack.install_sounds()
    log(f"{version}: bench stack up (offset 700)")
    shutil.rmtree(stack.dir / "redis", ignore_errors=True)  # the bench's own Redis: start empty
    stack.up(app=True)
    phones: list[PhoneGroup] = []
    results: list[StepResult] = []
    try:
        qs = stack.asterisk_cli("queue show bench")
        if "bench" not in qs:
            raise RuntimeError(f"baseline queue missing: {qs}")
        phones = start_phones(stack, agents, WORK)
        log(f"{len(agents)} agents registered on {len(phones)} SIPp phones")
        time.sleep(2)
        pdir = WORK / "pcaps"
        pdir.mkdir()
        pcaps = (write_digit_pcap("2", 0, pdir), write_digit_pcap("0", 1, pdir))
        last_key = (FIRST_MS + GAP_MS) / 1000 + pcap_span(pcaps[1])
        dirty = {"baseline": 0, "app": 0}
        step_no = 0
        for rate in rates:
            n = max(args.min_calls, int(rate * args.seconds))
            for system in ("baseline", "app"):
                if dirty[system] >= args.stop_after_dirty:
                    continue  # this system already failed twice in a row
                if system == "app":
                    log(f"pool: {pool_ready(stack, config)}")
                step_no += 1
                r = run_step(stack, system, rate, n, step_no, pcaps, last_key, phones,
                             profile=system == "app" and rate == args.profile_rate)
                results.append(r)
                dirty[system] = 0 if r.clean else dirty[system] + 1
                log(f"{system:8} {rate:5g}/s n={n}: failed={r.failed} "
                    f"key→agent p50={r.digit_to_agent_ms_p50} p95={r.digit_to_agent_ms_p95} "
                    f"ast={r.asterisk_cpu_ms_per_call} app={r.app_cpu_ms_per_call} "
                    f"lag={r.loop_lag_p99_ms_max} left={r.left_channels}/{r.left_bridges} "
                    f"wall={r.wall_seconds}")
                time.sleep(2)
            if min(dirty.values()) >= args.stop_after_dirty:
                log("both systems dirty: stopping")
                break
        meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "asterisk": version,
                "agents": len(agents), "agents_per_sipp_phone": AGENTS_PER_PHONE,
                "first_key_ms": FIRST_MS, "gap_ms": GAP_MS, "ring_ms": RING_MS,
                "talk_ms": TALK_MS, "last_key_offset_s": round(last_key, 3),
                "cpus": os.cpu_count(),
                "redis_max_connections": args.redis_max_connections or 100,
                "loadavg_end": os.getloadavg()}
        write_outputs(results, meta, args.name)
        print(table(results))
        print(json.dumps(headline(results), indent=1))
    finally:
        for g in phones:
            if g.proc is not None and g.proc.poll() is None:
                g.proc.terminate()
                try:
                    g.proc.wait(5)
                except subprocess.TimeoutExpired:
                    g.proc.kill()
        if not args.keep:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
