"""bench/load.py's steps: place calls at a rate through one system, then read
what happened from the SIPp logs, /proc, Redis and ARI."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from load_probes import (
    LagScraper,
    PhoneGroup,
    agent_invites,
    caller_calls,
    cpu_seconds,
    others_cores,
    own_cpu_seconds,
    pcap_span,
    read_messages,
    redis_commands,
)
from load_report import StepResult, pct
from provenance import busy_pct, machine_ticks

from scripts.stack import Stack
from tests.support.dtmf import write_digit_pcap
from tests.support.sipp import free_port_pair, free_udp_port

BENCH = Path(__file__).resolve().parent
LOAD_DIR = BENCH / "load"
FIRST_MS = 1000      # answer -> first key (2: English)
GAP_MS = 500         # first key -> second key (0: other departments)
RUN_ID = f"{int(time.time()) % 1000:03d}"
APP_NUMBER = "109"
BASE_NUMBER = "1099"


# --------------------------------------------------------------------- steps --

class Run:
    """What every step of one run shares: the stack, the phones, the keys' pcaps."""

    def __init__(self, stack: Stack, work: Path, phones: list[PhoneGroup],
                 profile_out: Path, py_spy: Path) -> None:
        self.stack = stack
        self.py_spy = py_spy
        self.work = work
        self.phones = phones
        self.profile_out = profile_out
        pdir = work / "pcaps"
        pdir.mkdir(parents=True, exist_ok=True)
        self.pcaps = (write_digit_pcap("2", 0, pdir), write_digit_pcap("0", 1, pdir))
        # the last key's time after the ACK: the scenario's pauses + the pcap's span to
        # its end-of-event packets, when Asterisk reports the digit
        self.last_key = (FIRST_MS + GAP_MS) / 1000 + pcap_span(self.pcaps[1])
        self.step_no = 0

    def pids(self) -> dict[str, int | None]:
        return {w: self.stack._pid(w) for w in ("asterisk", "app", "archiver")}

    def own(self) -> float:
        """CPU seconds so far of everything the bench runs (stack, phones, callers)."""
        pids = [*self.pids().values(), self.stack._pid("redis")]
        return own_cpu_seconds(pids + [g.proc.pid if g.proc else None for g in self.phones])

    def idle(self, seconds: float) -> dict[str, float]:
        """Background cost with no call, scraped as during a step: what every
        per-call figure below includes at (idle rate / offered rate) per call."""
        pids = self.pids()
        cpu0 = {w: cpu_seconds(p) for w, p in pids.items()}
        cmds0 = redis_commands(self.stack.ports.redis)
        ticks0, own0 = machine_ticks(), self.own()
        lag = LagScraper(self.stack.ports.app_http)
        lag.start()
        time.sleep(seconds)
        lag.stop_flag.set()
        lag.join(2)
        cpu1 = {w: cpu_seconds(p) for w, p in pids.items()}
        cmds1 = redis_commands(self.stack.ports.redis)
        out = {f"{w}_cpu_ms_per_s": round((cpu1[w] - cpu0[w]) * 1000 / seconds, 2)
               for w in pids}
        out["redis_cmds_per_s"] = round((cmds1 - cmds0) / seconds, 1)
        ticks1 = machine_ticks()
        out["machine_busy_pct"] = busy_pct(ticks0, ticks1) or 0.0
        out["others_cores"] = others_cores(ticks0, ticks1, self.own() - own0) or 0.0
        out["seconds"] = seconds
        return out

    def step(self, system: str, rate: float, n: int, profile: bool = False,
             label: str = "") -> StepResult:
        self.step_no += 1
        stack = self.stack
        number = BASE_NUMBER if system == "baseline" else APP_NUMBER
        d = self.work / f"step{self.step_no:02d}-{system}-{rate:g}{label}"
        d.mkdir(parents=True, exist_ok=True)
        # unique across runs too: a number the app has seen would get its remembered
        # language (WelcomeBack) and a different menu path
        prefix = f"9{RUN_ID}{self.step_no:02d}{0 if system == 'baseline' else 1}"
        numbers = [f"{prefix}{i:05d}" for i in range(n)]
        (d / "callers.csv").write_text("SEQUENTIAL\n" + "".join(f"{x};\n" for x in numbers))
        scen = (LOAD_DIR / "caller.xml").read_text()
        scen = (scen.replace("@FIRST_MS@", str(FIRST_MS)).replace("@GAP_MS@", str(GAP_MS))
                .replace("@PCAP1@", str(self.pcaps[0])).replace("@PCAP2@", str(self.pcaps[1]))
                .replace("@BYE_TIMEOUT_MS@", "40000"))
        (d / "caller.xml").write_text(scen)
        for g in self.phones:
            g.msg_offset = g.messages.stat().st_size if g.messages.exists() else 0

        pids = self.pids()
        cpu0 = {w: cpu_seconds(p) for w, p in pids.items()}
        cmds0 = redis_commands(stack.ports.redis)
        ticks0, own0 = machine_ticks(), self.own()
        lag = LagScraper(stack.ports.app_http)
        lag.start()
        spies: list[subprocess.Popen[bytes]] = []
        spy = self.py_spy
        if profile and pids["app"] and spy.exists():
            for fmt, dest in (("flamegraph", ".svg"), ("raw", ".txt")):
                spies.append(subprocess.Popen(
                    [str(spy), "record", "-f", fmt, "-o", str(self.profile_out) + dest,
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
        for s in spies:
            s.wait(60)
        cpu1 = {w: cpu_seconds(p) for w, p in pids.items()}
        cmds1 = redis_commands(stack.ports.redis)
        res = self._result(system, rate, n, d, proc, wall, left, lag.values,
                           {w: (cpu1[w] - cpu0[w]) * 1000 / n for w in pids},
                           (cmds1 - cmds0) / n)
        ticks1 = machine_ticks()
        res.machine_busy_pct = busy_pct(ticks0, ticks1)
        res.others_cores = others_cores(ticks0, ticks1, self.own() - own0)
        return res

    def _result(self, system: str, rate: float, n: int, d: Path,
                proc: subprocess.CompletedProcess[bytes], wall: float,
                left: dict[str, list[Any]], lags: list[float], cpu_ms: dict[str, float],
                cmds: float) -> StepResult:
        sipp_failed = _sipp_failed(d / "stats.csv", proc.returncode)
        calls = caller_calls(read_messages(d / "messages.log")[0])
        invites: dict[str, float] = {}
        for g in self.phones:
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
                d2a.append((ring - (c.ack + self.last_key)) * 1000)
        missing = n - len(calls)
        failed = len({cid for cid, c in calls.items()
                      if c.bye is None or c.number not in invites}) + missing
        failed = max(failed, sipp_failed)
        app = system == "app"
        res = StepResult(
            system=system, rate=rate, calls=n, wall_seconds=round(wall, 1),
            sipp_failed=sipp_failed, no_bye=no_bye + missing, no_agent=no_agent + missing,
            failed=failed,
            answer_ms_p50=pct(answer_ms, 0.5), answer_ms_p95=pct(answer_ms, 0.95),
            digit_to_agent_ms_p50=pct(d2a, 0.5), digit_to_agent_ms_p95=pct(d2a, 0.95),
            digit_to_agent_ms_max=pct(d2a, 1.0),
            asterisk_cpu_ms_per_call=round(cpu_ms["asterisk"], 2),
            app_cpu_ms_per_call=round(cpu_ms["app"], 2) if app else None,
            archiver_cpu_ms_per_call=round(cpu_ms["archiver"], 2) if app else None,
            loop_lag_p99_ms_max=round(max(lags) * 1000, 1) if app and lags else None,
            redis_cmds_per_call=round(cmds, 1),
            left_channels=len(left["channels"]), left_bridges=len(left["bridges"]))
        res.clean = res.failed == 0 and not res.left_channels and not res.left_bridges
        if not app:
            res.notes.append(f"app idle during this step: {cpu_ms['app'] * n:.0f} ms")
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


