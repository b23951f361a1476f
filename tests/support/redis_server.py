"""A real redis-server on loopback for the test session, with its own data dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.stack import _redis_ping


def port_offset() -> int:
    """Lets two test runs (or a test run beside `make run`) use disjoint ports."""
    return int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))




@contextmanager
def redis_server(datadir: Path, port: int, *, timeout: float = 10.0) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed: run `make deps` "
                           "(Debian package redis-server)")
    datadir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(datadir),
         "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
         "--logfile", str(datadir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    try:
        while not _redis_ping(port):
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}; "
                                   f"see {datadir}/redis.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} not ready after {timeout}s")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
