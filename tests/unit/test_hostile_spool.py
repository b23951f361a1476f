"""Issue 6: a spool shared by several processes loses no record and repeats none.

Processes append while another drains (rename aside, read, delete) over and
over; every appended line must come out exactly once.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from ari_app.records.spool import Spool

WRITERS = 4
LINES = 150


def _writer(path: str, who: int) -> None:
    sp = Spool(path)
    for i in range(LINES):
        sp.append(f'{{"w": {who}, "i": {i}}}'.encode())


def _drainer(path: str, stop: mp.synchronize.Event, out: str) -> None:  # type: ignore[name-defined]
    sp = Spool(path)
    with open(out, "ab") as f:
        while True:
            done = stop.is_set()
            for p in sp.pending_files():
                for line in Spool.lines(p):
                    f.write(line + b"\n")
                f.flush()
                Spool.done(p)
            if done:
                return


def test_concurrent_writers_and_a_drainer_keep_every_line_once(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    path = str(tmp_path / "records.spool.jsonl")
    out = str(tmp_path / "drained.jsonl")
    stop = ctx.Event()
    drainer = ctx.Process(target=_drainer, args=(path, stop, out))
    drainer.start()
    writers = [ctx.Process(target=_writer, args=(path, w)) for w in range(WRITERS)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    stop.set()
    drainer.join(30)
    assert drainer.exitcode == 0
    got = Path(out).read_bytes().splitlines()
    got += list(Spool.lines(Path(path))) if Path(path).exists() else []
    assert len(got) == len(set(got)), "a line came out twice"
    assert len(got) == WRITERS * LINES, f"{WRITERS * LINES - len(got)} lines lost"
