"""Fixtures of the unit tests.

The archive's two backends: every archive, report, import
and export test takes `new_archive` (or `backend`) and runs once on SQLite and
once on a real PostgreSQL server, a throwaway cluster this session starts
(scripts/stack.py: initdb on a loopback port, pg_isready, dropped at the end).

A PostgreSQL that cannot start FAILS those tests. Skipping is allowed only
outside `make` (no MAKELEVEL) and outside CI, when asked with
HOTLINE_PG_SKIP=1, and the skip says why.

Each archive is its own PostgreSQL schema (the URL's `options=-c search_path=`),
so tests never see each other's tables and no database is created per test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from ari_app.config.loader import load_config
from ari_app.config.models import HotlineConfig
from ari_app.prompts.catalog import PromptCatalog
from ari_app.records.backend import POSTGRESQL, SQLITE
from scripts.stack import Postgres
from tests.support.redis_server import port_offset
from tests.support.stackfix import write_test_config

BACKENDS = [SQLITE, POSTGRESQL]
PG_BASE_PORT = 5532  # + HOTLINE_PORT_OFFSET; clear of the rig's other ports for offsets of 100s


@dataclass
class PgCluster:
    server: Postgres
    dbname: str
    pgpass: Path

    def schema_url(self, schema: str) -> str:
        opts = quote(f"-c search_path={schema}", safe="")
        return f"{self.server.url(self.dbname)}?options={opts}"

    def new_archive_url(self, name: str) -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}_{name}"
        self.server.psql(f"CREATE SCHEMA {schema}", self.dbname)
        return self.schema_url(schema)


def _unavailable(why: str) -> None:
    allowed = (os.environ.get("HOTLINE_PG_SKIP") == "1" and not os.environ.get("MAKELEVEL")
               and not os.environ.get("CI"))
    if allowed:
        pytest.skip(f"PostgreSQL unavailable, skipped on request (HOTLINE_PG_SKIP=1): {why}")
    pytest.fail(f"PostgreSQL unavailable: {why}. The PostgreSQL archive tests need the real "
                "server (`make deps` installs Debian's postgresql); outside `make test` "
                "HOTLINE_PG_SKIP=1 skips them instead.", pytrace=False)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """One real PostgreSQL server for the session, reached with a password from
    PGPASSFILE, as a deployment would (never a password in the URL)."""
    try:
        server = Postgres(PG_BASE_PORT + port_offset())
        server.start()
    except (RuntimeError, OSError) as e:
        _unavailable(str(e))
        raise  # not reached: _unavailable fails or skips
    pgpass = tmp_path_factory.mktemp("pgpass") / "pgpass"
    pgpass.write_text(f"127.0.0.1:{server.port}:*:{server.user}:{server.password}\n")
    pgpass.chmod(0o600)
    before = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(pgpass)
    try:
        server.psql("CREATE DATABASE hotline")
        yield PgCluster(server, "hotline", pgpass)
    finally:
        if before is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = before
        server.stop()


def archive_maker(
    request: pytest.FixtureRequest, backend: str, tmp: Path
) -> Callable[[str], str]:
    """name -> a fresh, empty archive's path or URL on `backend`."""
    if backend == SQLITE:
        return lambda name: str(tmp / f"{name}.sqlite3")
    cluster: PgCluster = request.getfixturevalue("postgres")
    return cluster.new_archive_url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_archive(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> Callable[[str], str]:
    return archive_maker(request, backend, tmp_path)


NewArchive = Callable[[str], str]


# -- the config and prompts the ARI transcripts were captured with --

@pytest.fixture(scope="session")
def capture_cfg(tmp_path_factory: pytest.TempPathFactory) -> HotlineConfig:
    """The config the transcripts were captured with (the integration tests' one)."""
    return load_config(write_test_config(tmp_path_factory.mktemp("cfg") / "hotline.yaml"))


@pytest.fixture(scope="session")
def capture_prompts(capture_cfg: HotlineConfig) -> PromptCatalog:
    return PromptCatalog.load(capture_cfg, capture_cfg.resolve(capture_cfg.prompts_dir))
