"""Issue 6/7: locked-down defaults of a running stack.

Loopback-only listeners, least-privilege AMI, no committed secret, no secret in
any log, agents must authenticate, no context places an outside call (toll
fraud), the agents' API refuses unauthenticated and malformed requests and
limits failed logins.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ari_app.agents.render import REALM
from scripts.stack import ROOT
from tests.integration.test_hostile_journey import run_scenario
from tests.support.sipp import SIPP_DIR
from tests.support.stackfix import Agents, StackUnderTest

# ------------------------------------------------------------------ listeners --


def _stack_pids(sut: StackUnderTest) -> dict[int, str]:
    out = {}
    for what in ("redis", "asterisk", "app", "archiver"):
        pid = sut.stack._pid(what)
        if pid is not None:
            out[pid] = what
    return out


def _sockets(pids: dict[int, str]) -> list[tuple[str, str, str, int]]:
    """(what, proto, local address, fd) of every listening/unconnected socket of `pids`."""
    ss = subprocess.run(["ss", "-lntupH"], capture_output=True, text=True, check=True).stdout
    out = []
    for line in ss.splitlines():
        for pid, fd in re.findall(r"pid=(\d+),fd=(\d+)", line):
            if int(pid) in pids:
                cols = line.split()
                out.append((pids[int(pid)], cols[0], cols[4], int(fd)))
    return out


def _wildcard(addr: str) -> bool:
    return not addr.startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:"))


def test_every_listener_binds_to_loopback_only(stack: StackUnderTest) -> None:
    pids = _stack_pids(stack)
    assert {"redis", "asterisk", "app"} <= set(pids.values()), pids
    mine = _sockets(pids)
    p = stack.stack.ports
    ports = {int(m[2].rsplit(":", 1)[1]) for m in mine}
    assert {p.sip, p.http, p.ami, p.agi, p.app_http, p.redis} <= ports, mine
    assert [m for m in mine if m[1] == "tcp" and _wildcard(m[2])] == []
    # UDP: pjproject's DNS resolver keeps one IPv4 and one IPv6 client socket on a
    # wildcard ephemeral port from start-up (the chroot's resolv.conf names a server).
    # Those are query sockets, not services; anything else on a wildcard fails.
    udp_wild = [m for m in mine if m[1] == "udp" and _wildcard(m[2])]
    assert len(udp_wild) <= 2 and all(m[0] == "asterisk" for m in udp_wild), udp_wild
    assert all(int(m[2].rsplit(":", 1)[1]) not in (p.sip,) for m in udp_wild)
    resolver_fds = {m[3] for m in udp_wild}
    # during a call, RTP binds to the SIP transport's address, not to every interface
    rtp_lo, rtp_hi = p.rtp

    def rtp_of(socks: list[tuple[str, str, str, int]]) -> list[tuple[str, str, str, int]]:
        return [m for m in socks if rtp_lo <= int(m[2].rsplit(":", 1)[1]) <= rtp_hi
                and m[3] not in resolver_fds]

    ex = ThreadPoolExecutor(1)
    fut = ex.submit(stack.call, "wait:2500,hangup")
    during: list[tuple[str, str, str, int]] = []
    while not rtp_of(during) and not fut.done():  # until the call's RTP socket is bound
        during = _sockets(pids)
        time.sleep(0.05)
    fut.result()
    ex.shutdown()
    rtp = rtp_of(during)
    assert rtp, f"no RTP socket seen during the call: {during}"
    assert [m for m in rtp if _wildcard(m[2])] == [], f"RTP on every interface: {rtp}"


# ------------------------------------------------------------------------ AMI --

def test_ami_user_has_only_the_system_class(stack: StackUnderTest) -> None:
    """The app needs PJSIPShowContacts (privilege system) and ContactStatus (class system)."""
    conf = (stack.stack.inst / "etc/manager.conf").read_text()
    user = conf.split("[hotline]", 1)[1]
    read = re.search(r"^read\s*=\s*(.*)$", user, re.M).group(1).strip()  # type: ignore[union-attr]
    write = re.search(r"^write\s*=\s*(.*)$", user, re.M).group(1).strip()  # type: ignore[union-attr]
    assert read == "system" and write == "system", (read, write)
    priv = stack.stack.asterisk_cli("manager show command PJSIPShowContacts")
    assert "system" in re.sub(r"\x1b\[[0-9;]*m", "", priv)
    # and the app logged in and synced contacts with it
    assert stack.log_lines(event="ami.contacts_synced")


def test_ami_contact_events_still_reach_the_app(stack: StackUnderTest, agents: Agents) -> None:
    """With read = system only, a registering phone still flips the agent to reachable."""
    agents.login("a031")
    assert agents.status("a031").reachable is False
    agents.phone("a031", "answer")  # waits until the pool says reachable (ContactStatus)
    assert stack.log_lines(event="ami.contact", agent="a031", reachable=True)


# -------------------------------------------------------------------- secrets --

def _all_rig_secrets() -> dict[str, str]:
    out = {}
    for f in (ROOT / ".stack").glob("*/secrets/**/*"):
        if f.is_file():
            val = f.read_text(errors="replace").strip()
            if len(val) >= 12:
                out[str(f.relative_to(ROOT))] = val
    return out


def _stack_secrets(sut: StackUnderTest) -> dict[str, str]:
    d = sut.stack.dir / "secrets"
    return {str(f.relative_to(d)): f.read_text().strip() for f in d.rglob("*") if f.is_file()}


def test_no_rig_secret_is_committed() -> None:
    secrets = _all_rig_secrets()
    assert secrets, "no rig secrets found to look for"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    hits = []
    for name in filter(None, files):
        p = ROOT / name
        if not p.is_file() or p.stat().st_size > 5_000_000:
            continue
        data = p.read_bytes().decode("utf-8", "replace")
        hits += [(name, which) for which, val in secrets.items() if val in data]
        assert "/.stack/" not in f"/{name}"
    assert hits == []


def test_no_secret_appears_in_any_log(stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer")
    agents.login("a014")
    res, first = stack.call("wait:400,dtmf:2,wait:3000,hangup", number="1091")
    assert res.ok, res.stderr
    res, second = stack.call("wait:400,dtmf:2,wait:800,hangup")
    assert res.ok
    # a failed API login with a near-miss token must not echo it either
    token = _stack_secrets(stack)["api_token"]
    since = stack.stack.app_log.stat().st_size
    # the last character changed to one it is not: "x" alone would be the right token
    # one time in 64 (token_urlsafe), and the right token is not refused
    near_miss = token[:-1] + ("y" if token.endswith("x") else "x")
    status, _, _ = _api(stack, "GET", "/api/v1/agents/a001", token=near_miss)
    assert status == 401, status
    s = stack.stack
    # every log has what these produced once both records landed and the refusal is logged
    stack.record_for(first)
    stack.record_for(second)
    deadline = time.monotonic() + 10
    while not stack.log_lines(since, event="api.auth_failed"):
        assert time.monotonic() < deadline, "the refused API login was never logged"
        time.sleep(0.1)
    logs = [s.app_log, s.dir / "archiver.log", s.dir / "asterisk.out", s.dir / "redis.log",
            s.inst / "log/messages.log"]
    secrets = _stack_secrets(stack)
    for log in logs:
        if not log.exists():
            continue
        text = log.read_text(errors="replace")
        leaked = [k for k, v in secrets.items() if len(v) >= 8 and v in text]
        assert leaked == [], f"{log.name} holds {leaked}"
        near = token[:-1]
        assert near not in text, f"{log.name} echoes a presented token"


# --------------------------------------------------------------- SIP auth ------

REGISTER_NO_AUTH = (SIPP_DIR / "register_no_auth.xml").read_text()

# an agent's phone placing a call, answering the digest challenge like a real phone
AGENT_INVITE = (SIPP_DIR / "agent_dial.xml").read_text()


def _register_answers(sut: StackUnderTest, agent: str, expect: int
                      ) -> tuple[int, list[int], str]:
    """SIPp's exit code and every SIP status Asterisk answered a credential-less REGISTER
    with; the scenario requires `expect`, so any other answer (200 above all) fails SIPp."""
    work = Path(tempfile.mkdtemp(prefix="sipp-reg-noauth-"))
    xml = REGISTER_NO_AUTH.replace("@AGENT@", agent)
    xml = xml.replace('<recv response="401"/>', f'<recv response="{expect}"/>')
    assert f'<recv response="{expect}"/>' in xml
    proc = run_scenario(sut.sip_port, xml, timeout=10, workdir=work,
                        extra=["-trace_msg", "-message_file", str(work / "messages.log")])
    trace = (work / "messages.log").read_text(errors="replace")
    codes = [int(c) for c in re.findall(r"^SIP/2\.0 (\d{3}) ", trace, re.M)]
    return proc.returncode, codes, trace


def test_register_without_credentials_is_challenged_or_refused(stack: StackUnderTest) -> None:
    # an agent's AOR: challenged (401); the trunk and an unknown name have no registrable
    # AOR at all: refused outright (403), never challenged into a 200
    for agent, expect in (("agent-a001", 401), ("agent-a014", 401), ("carrier", 403),
                          ("nobody", 403)):
        rc, codes, trace = _register_answers(stack, agent, expect)
        assert codes and set(codes) == {expect}, (agent, codes)
        assert rc == 0, (agent, codes)
        if expect == 401:  # the realm the rendered md5_cred was hashed with
            assert f'realm="{REALM}"' in trace, trace[-600:]


def test_register_with_a_wrong_password_is_refused(stack: StackUnderTest) -> None:
    from tests.support.sipp import free_udp_port, register_agent

    res = register_agent(stack.sip_port, "agent-a001", "wrong-password", free_udp_port())
    assert not res.ok


class ChannelWatch:
    """Every channel name Asterisk holds while the block runs (ARI polled every 20 ms).

    A watcher that cannot see is no witness: any failed poll (ARI unreachable or
    refusing), or no successful poll after the block's work ended, fails the test.
    """

    def __init__(self, sut: StackUnderTest) -> None:
        self.sut = sut
        self.names: set[str] = set()
        self.polls = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, chans = self.sut.stack.ari("GET", "channels")
            except OSError as e:
                self.failures.append(f"ARI unreachable: {e}")
            else:
                if status == 200 and isinstance(chans, list):
                    self.names |= {c["name"] for c in chans}
                    self.polls += 1
                else:
                    self.failures.append(f"ARI GET channels answered {status}")
            time.sleep(0.02)

    def settle(self, timeout: float = 5.0) -> None:
        """Until two more polls complete: one of them began after the work ended."""
        want, deadline = self.polls + 2, time.monotonic() + timeout
        while self.polls < want and not self.failures:
            assert time.monotonic() < deadline, f"channel watcher stalled: {self.failures}"
            time.sleep(0.01)

    def __enter__(self) -> ChannelWatch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(2)
        if exc[0] is None:
            assert not self.failures, f"the channel watcher was blind: {self.failures[:3]}"
            assert self.polls, "the channel watcher never saw Asterisk's channel list"


@pytest.mark.parametrize("number", ["900123456789", "00441234", "+441234567890", "0097455501234",
                                    "109", "8000"])
def test_an_authenticated_agent_cannot_call_out(stack: StackUnderTest, number: str) -> None:
    """Toll fraud: the agents context reaches feature codes and transfers only."""
    pw = (stack.stack.dir / "secrets/agents/a001.secret").read_text().strip()
    scen = AGENT_INVITE.replace("@AGENT@", "agent-a001").replace("@CODE@", "404")
    with ChannelWatch(stack) as watch:
        proc = run_scenario(stack.sip_port, scen, service=number, timeout=15,
                            extra=["-au", "agent-a001", "-ap", pw])
        watch.settle()
    assert proc.returncode == 0, proc.stdout[-800:]
    others = [n for n in watch.names if not n.startswith("PJSIP/agent-a001-")]
    assert others == [], f"an outgoing channel was created: {others}"


def test_the_carrier_cannot_call_out(stack: StackUnderTest) -> None:
    """The trunk's context refuses anything but the hotline numbers (no channel at all)."""
    from tests.integration.test_hostile_journey import invite_expecting

    with ChannelWatch(stack) as watch:
        proc = run_scenario(stack.sip_port, invite_expecting(404), service="900123456789",
                            timeout=15)
        watch.settle()
    assert proc.returncode == 0, proc.stdout[-800:]
    assert [n for n in watch.names if not n.startswith("PJSIP/carrier-")] == []


# ------------------------------------------------------------------ HTTP API --

def _api(sut: StackUnderTest, method: str, path: str, token: str | None = None,
         body: bytes | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], object]:
    url = f"http://127.0.0.1:{sut.stack.ports.app_http}{path}"
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return r.status, dict(r.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed: object = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, dict(e.headers), parsed


def test_api_refuses_unauthenticated_and_malformed_requests(stack: StackUnderTest) -> None:
    token = _stack_secrets(stack)["api_token"]
    status, hdrs, body = _api(stack, "GET", "/api/v1/agents/a001")
    assert status == 401 and hdrs["WWW-Authenticate"].startswith("Bearer")
    assert body == {"error": "missing bearer token", "status": 401}
    assert _api(stack, "POST", "/api/v1/agents/a001/login")[0] == 401
    assert _api(stack, "GET", "/api/v1/agents/a001",
                headers={"Authorization": f"Basic {token}"})[0] == 401
    # malformed, with the right token
    st, _, b = _api(stack, "POST", "/api/v1/agents/a001/pause", token, body=b"{not json")
    assert st == 400 and "JSON" in b["error"]  # type: ignore[index]
    st, _, b = _api(stack, "POST", "/api/v1/agents/a001/pause", token, body=b"[1, 2]")
    assert st == 400
    st, _, _ = _api(stack, "POST", "/api/v1/agents/a001/pause", token,
                    body=json.dumps({"reason": "x\n" * 10}).encode())
    assert st == 400
    st, _, b = _api(stack, "GET", "/api/v1/agents/..%2F..%2Fetc%2Fpasswd", token)
    assert st == 404
    st, _, b = _api(stack, "GET", "/api/v1/agents/nobody", token)
    assert st == 404 and b["error"].startswith("unknown agent")  # type: ignore[index]
    st, _, b = _api(stack, "DELETE", "/api/v1/agents/a001", token)
    assert st == 405
    st, _, b = _api(stack, "POST", "/api/v1/agents/a001/pause", token, body=b"x" * 200_000)
    assert st == 413
    # and the app is still healthy
    assert stack.stack.app_ready()


def test_api_limits_failed_logins_then_recovers_on_restart(stack: StackUnderTest) -> None:
    token = _stack_secrets(stack)["api_token"]
    stack.stack.start_app()  # a fresh limiter: earlier tests' failures count too
    try:
        codes = [_api(stack, "GET", "/api/v1/agents/a001", token=f"guess{i}")[0]
                 for i in range(12)]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
        status, hdrs, _ = _api(stack, "GET", "/api/v1/agents/a001", token=token)
        assert status == 429 and int(hdrs["Retry-After"]) >= 1  # even the right token
        # the calls themselves are not affected
        res, caller = stack.call("wait:400,dtmf:2,wait:500,hangup")
        assert res.ok and stack.record_for(caller)["outcome"] == "abandoned_in_menu"
    finally:
        stack.stack.start_app()  # later tests need the API (the limiter is in memory)
    assert _api(stack, "GET", "/api/v1/agents/a001", token=token)[0] == 200


def test_asterisk_http_has_session_limits(stack: StackUnderTest) -> None:
    conf = (stack.stack.inst / "etc/http.conf").read_text()
    assert re.search(r"^sessionlimit\s*=\s*\d+", conf, re.M)
    assert re.search(r"^session_inactivity\s*=\s*\d+", conf, re.M)
    # ARI without credentials is refused
    url = f"http://127.0.0.1:{stack.stack.ports.http}/ari/channels"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=5)
    assert e.value.code == 401


def test_manager_conf_template_is_least_privilege() -> None:
    text = (ROOT / "asterisk-config/manager.conf").read_text()
    assert re.search(r"^read = system$", text, re.M) and re.search(r"^write = system$", text, re.M)
    assert "permit = 127.0.0.1/255.255.255.255" in text
