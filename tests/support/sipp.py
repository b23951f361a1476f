"""Run the SIPp scenarios in tests/sipp/ against a stack, with their parameters."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.dtmf import write_digit_pcap

SIPP_DIR = Path(__file__).resolve().parent.parent / "sipp"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """An even RTP port whose +1 (RTCP) and +2 are free too; SIPp's -mp uses them."""
    for _ in range(50):
        p = free_udp_port() & ~1
        try:
            socks = []
            for q in (p, p + 1, p + 2, p + 3):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free RTP port pair")


def _fragments() -> dict[str, str]:
    text = (SIPP_DIR / "steps.xml").read_text()
    return {m.group(1): m.group(2) for m in
            re.finditer(r'<step name="(\w+)">\n(.*?)</step>', text, re.S)}


def expand_steps(steps: str, workdir: Path) -> str:
    """'wait:3000,dtmf:2,expect_bye' -> the scenario XML for those steps.

    Each key press gets its own pcap in `workdir` (see tests/support/dtmf.py).
    """
    frags = _fragments()
    out = []
    presses = 0
    for raw in [s.strip() for s in steps.split(",") if s.strip()]:
        kind, _, arg = raw.partition(":")
        if kind not in frags:
            raise ValueError(f"unknown SIPp step {kind!r} in {steps!r}")
        if kind == "dtmf":
            if arg not in "0123456789*#" or len(arg) != 1:
                raise ValueError(f"dtmf step needs one key 0-9, * or #: {raw!r}")
            arg = str(write_digit_pcap(arg, presses, workdir))
            presses += 1
        if kind == "expect_bye" and not arg:
            arg = "60000"
        out.append(frags[kind].replace("@ARG@", arg))
    return "\n".join(out)


def dtmf_steps(keys: str, gap_ms: int = 300) -> str:
    return ",".join(f"dtmf:{k},wait:{gap_ms}" for k in keys)


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    scenario: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_caller(sip_port: int, steps: str, caller: str = "97455500001", number: str = "109",
               timeout: float = 120.0, workdir: Path | None = None) -> SippResult:
    """One call into the stack; returns when SIPp has finished it."""
    exe = shutil.which("sipp")
    if exe is None:
        raise RuntimeError("sipp is not installed: run `make deps` (Debian package sip-tester)")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sipp-"))
    scenario = workdir / "caller.xml"
    template = (SIPP_DIR / "caller.xml").read_text()
    scenario.write_text(template.replace("@STEPS@", expand_steps(steps, workdir)))
    argv = [exe, f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-s", number, "-m", "1",
            "-l", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1",
            "-mp", str(free_port_pair()), "-key", "caller", caller, "-nostdin",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-deadcall_wait", "0", "-trace_err",
            "-error_file", str(workdir / "errors.log"), "-trace_msg",
            "-message_file", str(workdir / "messages.log")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 15,
                          cwd=workdir)
    return SippResult(proc.returncode, proc.stdout[-3000:], _read(workdir / "errors.log"),
                      scenario)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a SIPp process, killing it if it does not go within 5 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def _modes() -> dict[str, str]:
    text = (SIPP_DIR / "agent_modes.xml").read_text()
    return {m.group(1): m.group(2) for m in
            re.finditer(r'<mode name="(\w+)">\n(.*?)</mode>', text, re.S)}


AGENT_MODES = {
    "answer": ("ringing", "answer_common", "wait_bye"),
    "answer_hangup": ("ringing", "answer_common", "send_bye"),
    "refuse": ("refuse",),
    "no_answer": ("ringing", "no_answer"),
    "transfer": ("ringing", "answer_common", "send_refer"),
    # keypad feature codes during the call, then the hotline hangs this phone up
    "keys_then_wait_bye": ("ringing", "answer_common", "ack_only", "keys", "wait_bye_only"),
    # keypad feature codes, then talk and hang up
    "keys_then_hangup": ("ringing", "answer_common", "ack_keep_from", "keys", "bye_after_talk"),
}


def expand_keys(keys: str, workdir: Path) -> str:
    """'p1500,*,2,8,1,1,#' -> pauses (pNNN ms) and one RFC 2833 pcap per key."""
    out = []
    presses = 0
    for tok in [t.strip() for t in keys.split(",") if t.strip()]:
        if tok.startswith("p") and tok[1:].isdigit():
            out.append(f'  <pause milliseconds="{int(tok[1:])}"/>')
            continue
        if len(tok) != 1 or tok not in "0123456789*#":
            raise ValueError(f"agent keys: {tok!r} is neither a key nor a pause pNNN")
        pcap = write_digit_pcap(tok, presses, workdir)
        presses += 1
        out.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
                   '  <pause milliseconds="250"/>')
    return "\n".join(out)


def agent_scenario(mode: str, workdir: Path, ring_ms: int = 300, talk_ms: int = 2000,
                   transfer_to: str = "800", keys: str = "") -> Path:
    blocks = _modes()
    body = "\n".join(blocks[b] for b in AGENT_MODES[mode])
    body = body.replace("@RING_MS@", str(ring_ms)).replace("@TALK_MS@", str(talk_ms))
    body = body.replace("@TRANSFER_TO@", transfer_to)
    if "@KEYS@" in body:
        body = body.replace("@KEYS@", expand_keys(keys, workdir))
    out = workdir / f"agent_{mode}.xml"
    out.write_text((SIPP_DIR / "agent.xml").read_text().replace("@MODE@", body))
    return out


def register_agent(sip_port: int, endpoint: str, password: str, contact_port: int,
                   expires: int = 3600, workdir: Path | None = None,
                   local_port: int | None = None, server: str = "127.0.0.1") -> SippResult:
    """REGISTER from `local_port` (default: the contact port itself, as a phone does;
    Asterisk's rewrite_contact keeps the source address, not the Contact header)."""
    exe = shutil.which("sipp") or "sipp"
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sipp-reg-"))
    argv = [exe, f"{server}:{sip_port}", "-sf", str(SIPP_DIR / "agent_register.xml"),
            "-m", "1", "-i", "127.0.0.1", "-p", str(local_port or contact_port), "-au", endpoint,
            "-ap", password, "-key", "agent", endpoint, "-key", "contact_port",
            str(contact_port), "-key", "expires", str(expires), "-nostdin",
            "-timeout", "15s", "-timeout_error", "-deadcall_wait", "0",
            "-trace_err", "-error_file", str(workdir / "errors.log")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=workdir)
    return SippResult(proc.returncode, proc.stdout[-2000:], _read(workdir / "errors.log"),
                      SIPP_DIR / "agent_register.xml")


class AgentPhone:
    """One agent's phone: registered, and answering (or not) the calls it is offered."""

    def __init__(self, sip_port: int, endpoint: str, password: str, mode: str = "answer",
                 calls: int = 100, ring_ms: int = 300, talk_ms: int = 2000,
                 transfer_to: str = "800", keys: str = "") -> None:
        self.sip_port = sip_port
        self.endpoint = endpoint
        self.password = password
        self.mode = mode
        self.workdir = Path(tempfile.mkdtemp(prefix=f"sipp-{endpoint}-"))
        self.port = free_udp_port()
        self.calls = calls
        self.scenario = agent_scenario(mode, self.workdir, ring_ms, talk_ms, transfer_to, keys)
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        """The answering SIPp, on the port the phone registered from."""
        self.proc = subprocess.Popen(
            [shutil.which("sipp") or "sipp", "-sf", str(self.scenario), "-i", "127.0.0.1",
             "-p", str(self.port), "-mi", "127.0.0.1", "-mp", str(free_port_pair()),
             "-m", str(self.calls), "-nostdin", "-deadcall_wait", "0", "-trace_err", "-aa",
             "-trace_msg", "-message_file", str(self.workdir / "messages.log"),
             "-error_file", str(self.workdir / "errors.log"),
             "-trace_stat", "-stf", str(self.workdir / "stats.csv"), "-fd", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir)

    def register(self, expires: int = 3600) -> SippResult:
        """Register, then answer on the same port; expires=0 unregisters (phone stays off)."""
        self.stop()
        res = register_agent(self.sip_port, self.endpoint, self.password, self.port, expires)
        if not res.ok:
            raise RuntimeError(f"{self.endpoint} could not register: {res.stderr}")
        if expires:
            self._start()
        return res

    def stop(self) -> None:
        stop_process(self.proc)

    def errors(self) -> str:
        return _read(self.workdir / "errors.log")

    def messages(self) -> str:
        """Every SIP message this phone sent and received (SIPp's -trace_msg)."""
        try:
            return (self.workdir / "messages.log").read_text(errors="replace")
        except OSError:
            return ""
