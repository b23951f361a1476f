#!/usr/bin/env python3
"""`make demo`: the hotline end to end on this machine, then everything stopped again.

Starts the stack (Asterisk 22, Redis, the app, the archiver) under the name
"demo", registers agent phones at several sites with SIPp and logs them in
through the agents' HTTP API, places callers in several languages (more
callers than agents, so some wait and hear their position), prints what
happened to each call from the call records, prints today's report from the
archive and writes its charts, shows a few log lines of one call, and stops.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ari_app.config.loader import load_config  # noqa: E402
from ari_app.config.models import HotlineConfig  # noqa: E402
from scripts.stack import Stack, ensure_rootfs  # noqa: E402
from tests.support.sipp import AgentPhone, run_caller  # noqa: E402
from tests.support.stackfix import write_test_config  # noqa: E402

OUT = ROOT / "build" / "demo"
DEMO_OVERRIDES = {
    "queue": {"ring_timeout": 10, "wrapup_seconds": 2, "announce_first_after": 3,
              "announce_interval": 15, "max_wait": 120,
              "routing": {"sector_after": 20, "fallback_language_after": 40}},
}
# (language, entity) for each demo caller; the digits are worked out from the config
CALLERS = [("ar", "phcc"), ("en", "moph"), ("hi", "phcc"), ("ml", "moci"),
           ("ur", "mehe"), ("en", "phcc"), ("ta", "motc")]


def path_to(cfg: HotlineConfig, entity: str) -> list[str]:
    """The DTMF keys that reach an entity from the top menu."""
    if entity == cfg.other_departments.id:
        return ["0"]

    def walk(menu, keys):  # type: ignore[no-untyped-def]
        for opt in menu.options:
            if opt.entity is not None and opt.entity.id == entity:
                return [*keys, opt.digit]
            if opt.menu is not None:
                found = walk(opt.menu, [*keys, opt.digit])
                if found:
                    return found
        return None

    keys = walk(cfg.menu, [])
    if keys is None:
        raise SystemExit(f"demo: entity {entity} is not in the menu")
    return keys


def pick_agents(cfg: HotlineConfig) -> list[str]:
    """Fewer agents than callers, at different sites, who between them can serve
    every demo caller (so some callers wait and hear their place in the queue)."""
    from ari_app.agents.roster import Roster, entity_skills

    roster = Roster.from_config(cfg)
    chosen: list[str] = []
    for lang, entity in CALLERS:
        able = roster.serving(entity_skills(cfg, entity), (lang,))
        if any(a.id in chosen for a in able):
            continue
        used_sites = {a.site for a in roster.agents if a.id in chosen}
        fresh = [a for a in able if a.site not in used_sites] or able
        if fresh:
            chosen.append(fresh[0].id)
    return chosen


def api(stack: Stack, method: str, path: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{stack.ports.app_http}{path}", method=method, data=b"{}",
        headers={"Authorization": f"Bearer {stack.secret('api_token')}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"{}")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    cfg_path = write_test_config(OUT / "hotline.yaml")
    raw = cfg_path.read_text(encoding="utf-8")
    import yaml

    data = yaml.safe_load(raw)
    for key, val in DEMO_OVERRIDES.items():
        data[key] = dict(data.get(key) or {}, **val)
    data["timers"] = {"digit_timeout": 4, "tries": 2, "inter_digit_timeout": 3}
    cfg_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    cfg = load_config(cfg_path)

    stack = Stack(name="demo", offset=50, config=cfg_path)
    print(f"== {ensure_rootfs(stack.rootfs)} (Debian sid, in {stack.rootfs})")
    print(f"== prompts installed: {stack.install_sounds()} new files")
    t0 = time.monotonic()
    stack.up()
    print(f"== stack up in {time.monotonic() - t0:.1f}s: 109 on sip:127.0.0.1:{stack.ports.sip}")
    phones: list[AgentPhone] = []
    try:
        for agent_id in pick_agents(cfg):
            agent = next(a for a in cfg.agents if a.id == agent_id)
            pw = (stack.dir / "secrets" / "agents" / f"{agent_id}.secret").read_text().strip()
            phone = AgentPhone(stack.ports.sip, agent.endpoint, pw, mode="answer_hangup",
                               talk_ms=4000, ring_ms=800)
            phone.register()
            phones.append(phone)
            time.sleep(0.3)
            state = api(stack, "POST", f"/api/v1/agents/{agent_id}/login")
            print(f"   agent {agent_id} at {agent.site}, speaks {'/'.join(agent.languages)}: "
                  f"phone registered, logged in through the API -> {state.get('result')}")
        time.sleep(1.0)  # AMI reports the phones reachable

        calls: dict[str, tuple[str, str]] = {}
        run = int(time.time()) % 10_000  # new callers each run: none is remembered yet
        with ThreadPoolExecutor(len(CALLERS)) as ex:
            futures = []
            for i, (lang, entity) in enumerate(CALLERS):
                digit = cfg.language(lang).digit
                keys = [digit, *path_to(cfg, entity)]
                steps = "wait:500," + ",".join(f"dtmf:{k},wait:700" for k in keys)
                caller = f"974{run:04d}{i:04d}"
                calls[caller] = (lang, entity)
                futures.append(ex.submit(run_caller, stack.ports.sip,
                                         steps + ",expect_bye:150000", caller, "109", 170))
                time.sleep(1.5)
            results = [f.result() for f in futures]
        failed = sum(not r.ok for r in results)
        print(f"== {len(results)} SIPp calls placed, {failed} failed")
        show_calls(stack, calls)
        show_report(stack, cfg_path, calls)
        show_log(stack)
        return 1 if failed else 0
    finally:
        for phone in phones:
            phone.stop()
        stack.down()
        print("== demo stack stopped")


def records(stack: Stack) -> list[dict]:
    import redis

    r = redis.Redis(port=stack.ports.redis)
    try:
        from ari_app.records.events import records_in_stream

        return records_in_stream(f for _, f in r.xrange("{hotline}:records"))
    finally:
        r.close()


def show_calls(stack: Stack, calls: dict[str, tuple[str, str]]) -> None:
    by_caller = {r["caller"]: r for r in records(stack)}
    print("\n caller        lang entity  path                 waited  announced  agent  site"
          "         outcome")
    for caller in calls:
        r = by_caller.get(caller)
        if r is None:
            print(f" {caller}  (no record)")
            continue
        soa = f"{r['speed_of_answer']:.1f}s" if r.get("speed_of_answer") is not None else "-"
        announced = "yes" if any("queue-position" in p for p in r["prompts"]) else "no"
        print(f" {caller}  {r['language'] or '-':4} {r['entity'] or '-':7} "
              f"{'>'.join(r['entity_path']):20} {soa:>7}  {announced:9}  "
              f"{r['agent'] or '-':5}  {r['site'] or '-':12} {r['outcome']}")


def show_report(stack: Stack, cfg_path: Path, calls: dict[str, tuple[str, str]]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the archiver catches up within a second or two
        try:
            con = sqlite3.connect(f"file:{stack.archive}?mode=ro", uri=True)
            marks = ",".join("?" * len(calls))
            n = con.execute(f"SELECT count(*) FROM calls WHERE caller IN ({marks})",
                            list(calls)).fetchone()[0]
            con.close()
            if n == len(calls):
                break
        except sqlite3.Error:
            pass
        time.sleep(0.5)
    today = time.strftime("%Y-%m-%d")
    charts = OUT / "charts"
    print(f"\n== hotline report --from {today} --to {today} --charts {charts}")
    subprocess.run([str(ROOT / ".venv/bin/hotline"), "--config", str(cfg_path), "report",
                    "--from", today, "--to", today, "--db", str(stack.archive),
                    "--charts", str(charts)], check=False)


def show_log(stack: Stack) -> None:
    lines = stack.app_log.read_text(encoding="utf-8").splitlines()
    answered = [json.loads(x) for x in lines if '"queue.answered"' in x]
    if not answered:
        return
    call_id = answered[0]["call_id"]
    print(f"\n== the app's JSON log for one call ({call_id}), every line carries its id:")
    for line in lines:
        if call_id in line:
            print("  " + line[:200])


if __name__ == "__main__":
    sys.exit(main())
