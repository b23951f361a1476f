"""Session fixtures that start the real servers (never mocks) and wait on readiness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import port_offset, redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh real Redis for pure-Redis tests (not the one the stack's app uses)."""
    d: Path = tmp_path_factory.mktemp("redis")
    with redis_server(d, 6480 + port_offset()) as url:
        yield url
