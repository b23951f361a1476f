"""Issue 8: the agent pool and the records stream on a three-master Redis Cluster,
and on a single Redis, with the same assertions."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from ari_app.agents.pool import AgentPool, CandidateQuery
from ari_app.config.loader import load_config
from ari_app.queue.waiting import WaitingQueues
from ari_app.records.archive import Archive
from ari_app.records.archiver import Archiver
from ari_app.records.model import CallRecord, Outcome, utcnow
from ari_app.records.stream import RecordStream

CFG = load_config("config/hotline.yaml")


@pytest.fixture(scope="module")
def cluster_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Three masters on loopback, no replicas, created with redis-cli --cluster."""
    base = 7400 + int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))
    root: Path = tmp_path_factory.mktemp("cluster")
    procs = []
    for port in (base, base + 1, base + 2):
        d = root / str(port)
        d.mkdir()
        procs.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(port),
             "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d),
             "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    try:
        for port in (base, base + 1, base + 2):
            _until(lambda p=port: _cli(p, "PING") == "PONG", f"node {port}")
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in (base, base + 1, base + 2)),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)
        _until(lambda: "cluster_state:ok" in _cli(base, "CLUSTER", "INFO"), "cluster ok")
        yield base
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                         text=True, timeout=5)
    return out.stdout.strip()


def _until(pred: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"{what}: not ready in {timeout}s"
        time.sleep(0.05)


@pytest.fixture(params=["single", "cluster"])
async def client(request: pytest.FixtureRequest, redis_url: str,
                 cluster_port: int) -> AsyncIterator[Any]:
    if request.param == "single":
        # a database of its own on the session's Redis, emptied for these tests
        r: Any = aioredis.from_url(redis_url.rsplit("/", 1)[0] + "/7")
        await r.flushdb()
    else:
        r = RedisCluster(host="127.0.0.1", port=cluster_port)
        await r.initialize()
    try:
        yield r
    finally:
        await r.aclose()


async def test_every_key_shares_one_slot(client: Any) -> None:
    pool = AgentPool(client, CFG.agents[:20])
    await pool.sync()
    await pool.login(CFG.agents[0].id)
    q = WaitingQueues(client)
    await q.join("phcc", "c-slot", "en")
    if isinstance(client, RedisCluster):
        # every node's keys: they all live on the one node serving {hotline}'s slot
        keys = [k.decode() for k in
                await client.keys("*", target_nodes=RedisCluster.ALL_NODES)]
        assert {client.keyslot(k) for k in keys} == {client.keyslot("{hotline}")}
    else:
        keys = [k.decode() for k in await client.keys("*")]
    assert len(keys) > 3 and all(k.startswith("{hotline}:") for k in keys)


async def test_agent_pool_never_hands_one_agent_to_two_takers(client: Any) -> None:
    agents = [a for a in CFG.agents if "en" in a.languages][:30]
    pool = AgentPool(client, agents)
    await pool.sync()
    for a in agents:
        await pool.logout(a.id)
        await pool.login(a.id, reachable=True)
    skills = tuple(sorted({s for a in agents for s in a.skills}))
    query = CandidateQuery(skills, ("en",))

    async def taker(n: int) -> list[str]:
        got = []
        for i in range(10):
            offer = await pool.take(query, f"call-{n}-{i}")
            if offer is not None:
                got.append(offer.agent.id)
        return got

    results = await asyncio.gather(*(taker(n) for n in range(8)))
    taken = [a for r in results for a in r]
    assert len(taken) == len(agents)  # every agent taken, once
    assert len(set(taken)) == len(taken)
    snap = await pool.snapshot()
    assert sum(n.get("offered", 0) for n in snap.by_site.values()) == len(agents)


async def test_records_stream_reaches_the_archive(client: Any, tmp_path: Path) -> None:
    stream = RecordStream(client, "hotline", spool_path=tmp_path / "spool.jsonl")
    ids = [f"cl-{i}-{time.time_ns()}" for i in range(25)]
    for cid in ids:
        await stream.publish(CallRecord(call_id=cid, arrived_at=utcnow(), ended_at=utcnow(),
                                        outcome=Outcome.ANSWERED, entity="phcc"))
    await stream.publish(CallRecord(call_id=ids[0], arrived_at=utcnow()))  # a duplicate
    archive = Archive(tmp_path / "archive.sqlite3")
    archiver = Archiver(client, "hotline", archive, block_ms=100)
    await archiver.ensure_group()
    for _ in range(10):
        if not await archiver.step():
            break
    rows = archive.db.execute(
        f"SELECT count(*) FROM calls WHERE call_id IN ({','.join('?' * len(ids))})", ids
    ).fetchone()[0]
    assert rows == len(ids)  # all arrived, the duplicate counted once
