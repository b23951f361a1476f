"""A real TLS+SRTP softphone for the tests: Debian's baresip (package baresip-core).

Each phone gets its own config dir: SIP over TLS to the stack's transport-tls
(verifying Asterisk's certificate against the stack's throwaway CA), SRTP
mandatory or off, auto-answer, and an audio bridge (aubridge) for sound card:
what it receives it plays into a device it also records from, so it echoes.
Its console output is the log the tests read (call results such as a 488).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.sipp import free_port_pair

MODULES = "/usr/lib/baresip/modules"


def available() -> str | None:
    """Why baresip cannot run here, or None."""
    if shutil.which("baresip") is None:
        return "baresip is not installed (Debian package baresip-core)"
    for mod in ("srtp.so", "g711.so", "aubridge.so", "account.so", "menu.so"):
        if not (Path(MODULES) / mod).exists():
            return f"baresip module {mod} is missing from {MODULES}"
    return None


class Baresip:
    def __init__(self, workdir: Path, *, endpoint: str, password: str, tls_port: int,
                 ca_file: Path, srtp: bool = True, dial: str | None = None,
                 lifetime: int = 120) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log = self.dir / "baresip.log"
        rtp = free_port_pair()
        modules = ["g711.so", "aubridge.so", *(["srtp.so"] if srtp else [])]
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll",
            "net_interface 127.0.0.1",  # else it puts eth0's address in its SDP
            "sip_listen 127.0.0.1:0",
            f"sip_cafile {ca_file}",
            "call_local_timeout 60",
            "call_max_calls 2",
            "audio_player aubridge,echo",
            "audio_source aubridge,echo",
            "audio_alert aubridge,echo",
            f"rtp_ports {rtp}-{rtp + 3}",
            "rtcp_mux no",
            f"module_path {MODULES}",
            *(f"module {m}" for m in modules),
            "module_app account.so",
            "module_app menu.so",  # answermode=auto is carried out by menu
            ""]))
        params = [f"auth_pass={password}",
                  f'outbound="sip:127.0.0.1:{tls_port};transport=tls"',
                  "answermode=auto", "regint=600", "audio_codecs=PCMU,PCMA"]
        if srtp:
            params.append("mediaenc=srtp-mand")  # an offer or answer without SRTP fails
        (self.dir / "accounts").write_text(
            f"<sip:{endpoint}@127.0.0.1;transport=tls>;{';'.join(params)}\n")
        argv = ["baresip", "-f", str(self.dir), "-t", str(lifetime)]
        if dial:
            argv += ["-e", f"/dial {dial}"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.output()
            if text in out:
                return out
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"baresip never printed {text!r}:\n{out[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: baresip unregisters and hangs up before it exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            (self.dir / "accounts").unlink()  # it holds the agent's password
