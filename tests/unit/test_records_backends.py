"""What is particular to choosing the archive by URL: the URL forms, the SQL
translation, credentials (never in the URL, never in a message), text order,
migrations opened by several programs at once, and a PostgreSQL connection
lost under the archiver."""

from __future__ import annotations

import argparse
import io
import json
import threading
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ari_app.records.archive import Archive, ArchiveError
from ari_app.records.archiver import GROUP, Archiver
from ari_app.records.backend import POSTGRESQL, SQLITE, parse_target, redact, to_pg
from ari_app.records.io import export
from ari_app.records.model import CallRecord
from ari_app.records.stream import Published, RecordStream, dead_key, records_key
from ari_app.reports import cli as reports_cli
from tests.unit.conftest import NewArchive, PgCluster

SECRET = "s3cr3t-Pa55"


def test_url_forms_choose_the_backend(tmp_path: Path) -> None:
    assert parse_target("var/archive.sqlite3") == parse_target("sqlite:///var/archive.sqlite3")
    t = parse_target("sqlite:////srv/hotline/archive.sqlite3")
    assert (t.dialect, t.path) == (SQLITE, Path("/srv/hotline/archive.sqlite3"))
    for url in ("postgresql://hotline@db.example:5432/hotline",
                "postgres://hotline@db.example/hotline?sslmode=require"):
        assert parse_target(url).dialect == POSTGRESQL
    with pytest.raises(ArchiveError, match="unknown archive URL scheme"):
        parse_target(f"mysql://root:{SECRET}@h/db")
    with pytest.raises(ArchiveError) as e:
        parse_target(f"mysql://root:{SECRET}@h/db")
    assert SECRET not in str(e.value) and "root" not in str(e.value)
    with pytest.raises(ArchiveError, match="sqlite:///"):
        parse_target("sqlite:/x.db")
    assert redact(f"postgresql://u:{SECRET}@h:5/d?password={SECRET}") == "postgresql://h:5/d"


def test_sqlite_style_sql_is_rewritten_for_psycopg() -> None:
    assert to_pg("SELECT x::text FROM t WHERE a = ? AND b <= :sla AND c LIKE 'a%?:b'") == (
        "SELECT x::text FROM t WHERE a = %s AND b <= %(sla)s AND c LIKE 'a%%?:b'")
    assert to_pg('SELECT 5 % 2, "odd?col" FROM t') == 'SELECT 5 %% 2, "odd?col" FROM t'


def test_a_password_in_the_url_is_refused_and_never_shown() -> None:
    # Refused before any connection is tried: no server needed.
    with pytest.raises(ArchiveError, match="secret file") as e:
        Archive(f"postgresql://hotline:{SECRET}@127.0.0.1:1/hotline")
    assert SECRET not in str(e.value)


def test_ids_sort_bytewise_on_both_backends(new_archive: NewArchive) -> None:
    """The test server's default collation is ICU en-US, which sorts 'a' before 'B';
    the archive's text columns are bytewise ("C") on PostgreSQL, as in SQLite."""
    ids = ["a1", "B", "a-2", "a"]
    with Archive(new_archive("order")) as a:
        a.insert(CallRecord(call_id=i, arrived_at="2025-03-01T10:00:00.000Z") for i in ids)
        out = io.StringIO()
        export(a, "2025-03-01T00:00:00.000Z", "2025-03-02T00:00:00.000Z", "jsonl", out)
    assert [json.loads(x)["call_id"] for x in out.getvalue().splitlines()] == sorted(ids)


def test_programs_opening_a_new_archive_at_once_migrate_it_once(new_archive: NewArchive) -> None:
    spec = new_archive("race")
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_it() -> None:
        start.wait()
        try:
            Archive(spec).close()
        except BaseException as e:  # noqa: BLE001 - collected, asserted below
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with Archive(spec) as a:
        assert a.db.execute("SELECT version FROM schema_version ORDER BY version"
                            ).fetchall() == [(1,), (2,), (3,)]


def test_postgres_password_from_a_file_or_pgpassfile_only(
    postgres: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = postgres.new_archive_url("pw")
    Archive(url).close()  # PGPASSFILE (set by the session) is enough
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("HOME", str(tmp_path))  # and no ~/.pgpass to fall back on
    with pytest.raises(ArchiveError, match="no password supplied") as e:
        Archive(url)
    assert "hotline@" not in str(e.value)  # the URL is shown without its user info
    wrong = tmp_path / "wrong"
    wrong.write_text(SECRET + "\n")
    with pytest.raises(ArchiveError, match="password authentication failed") as e:
        Archive(url, password_file=wrong)
    assert SECRET not in str(e.value)
    right = tmp_path / "right"
    right.write_text(postgres.server.password + "\n")
    with Archive(url, password_file=right) as a:
        assert a.version() == 3

    # the CLI: --db URL with --db-password-file, or the environment's file
    p = argparse.ArgumentParser(prog="hotline")
    p.add_argument("--config")
    reports_cli.register(p.add_subparsers(dest="cmd", required=True))
    base = ["--config", str(tmp_path / "none.yaml"), "report", "--month", "2025-03",
            "--format", "json", "--tz", "UTC", "--db", url]
    args = p.parse_args([*base, "--db-password-file", str(right)])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["calls"] == 0
    monkeypatch.setenv("HOTLINE_ARCHIVE_PASSWORD_FILE", str(wrong))
    args = p.parse_args(base)
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "password authentication failed" in err and SECRET not in err


async def test_archiver_keeps_entries_pending_when_postgres_drops_it(
    postgres: PgCluster, redis_url: str, tmp_path: Path,
) -> None:
    """A connection the server ends is the database's failure, not the entries':
    nothing is acked or dead-lettered, and the next step reconnects and archives."""
    r = aioredis.Redis.from_url(redis_url)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    try:
        stream = RecordStream(r, prefix, spool_path=tmp_path / "s.jsonl")
        with Archive(postgres.new_archive_url("drop")) as archive:
            archiver = Archiver(r, prefix, archive, block_ms=10)
            await archiver.ensure_group()
            for i in range(3):
                rec = CallRecord(call_id=f"d-{i}", arrived_at="2025-03-01T10:00:00.000Z")
                assert await stream.publish(rec) is Published.STREAM
            pid = archive.db.conn.info.backend_pid
            postgres.server.psql(f"SELECT pg_terminate_backend({pid})", postgres.dbname)
            with pytest.raises(archive.transient_errors):
                await archiver.step()
            assert (await r.xpending(records_key(prefix), GROUP))["pending"] == 3
            assert await r.xlen(dead_key(prefix)) == 0
            assert await archiver.step() == 3  # its own pending entries, on a new connection
            assert archive.count() == 3 and archiver.stats.dead == 0
            assert (await r.xpending(records_key(prefix), GROUP))["pending"] == 0
    finally:
        await r.aclose()


def test_a_report_login_with_select_only_opens_an_up_to_date_archive(
    postgres: PgCluster, tmp_path: Path,
) -> None:
    """Sites read reports with a login that may only SELECT: opening the archive
    must need no DDL once it is at the current version."""
    from ari_app.reports.compute import Period, Query, compute

    url = postgres.new_archive_url("ro")
    with Archive(url) as a:
        a.insert([CallRecord(call_id="ro-1", arrived_at="2025-03-02T10:00:00.000Z")])
    schema = url.rsplit("search_path%3D", 1)[1]
    role, pw = f"reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    postgres.server.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{pw}'; "
                         f"GRANT USAGE ON SCHEMA {schema} TO {role}; "
                         f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                         postgres.dbname)
    pwfile = tmp_path / "reader.pw"
    pwfile.write_text(pw + "\n")
    reader_url = url.replace(f"{postgres.server.user}@", f"{role}@")
    with Archive(reader_url, password_file=pwfile) as ro:
        rep = compute(ro.db, Query(period=Period.month("2025-03", "UTC")))
        assert rep.totals.calls == 1
        with pytest.raises(ro.db_errors, match="permission denied"):
            ro.insert([CallRecord(call_id="ro-2", arrived_at="2025-03-02T10:00:00.000Z")])
    # An archive that needs an upgrade is a clear refusal for that login, not a traceback.
    old_url = postgres.new_archive_url("rov1")
    Archive(old_url, upto=1).close()
    old_schema = old_url.rsplit("search_path%3D", 1)[1]
    postgres.server.psql(f"GRANT USAGE ON SCHEMA {old_schema} TO {role}; "
                         f"GRANT SELECT ON ALL TABLES IN SCHEMA {old_schema} TO {role}",
                         postgres.dbname)
    with pytest.raises(ArchiveError, match="cannot open or upgrade the archive: must be owner"):
        Archive(old_url.replace(f"{postgres.server.user}@", f"{role}@"), password_file=pwfile)


def test_a_file_that_is_not_an_archive_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not an SQLite database, just bytes" * 100)
    p = argparse.ArgumentParser(prog="hotline")
    p.add_argument("--config")
    reports_cli.register(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(["report", "--month", "2025-03", "--db", str(junk)])
    assert args.func(args) == 1
    assert "cannot open or upgrade the archive" in capsys.readouterr().err
