"""Session fixtures that start the real servers (never mocks) and wait on readiness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import port_offset, redis_server
from tests.support.workers import apply_worker_offset


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test PYTEST_WORKERS=N`) each worker gets its own port
    offset before any fixture reads it, hence its own stacks, stack names and ports."""
    del config
    apply_worker_offset()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh real Redis for pure-Redis tests (not the one the stack's app uses)."""
    d: Path = tmp_path_factory.mktemp("redis")
    with redis_server(d, 6480 + port_offset()) as url:
        yield url
