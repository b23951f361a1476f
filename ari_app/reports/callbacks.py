"""Callbacks per entity: requested, answered, failed, and the time to callback.

Read from the `callback` column (schema 3): the call that asked carries
result `requested`; each attempt (dialled = "callback") carries its own
result, and a ticket ends with one `answered` or one `failed`/`expired`
attempt. docs/records.md defines each figure.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ari_app.records.backend import Connection

if TYPE_CHECKING:
    from ari_app.reports.compute import Query

FAILED = ("failed", "expired")


def callback_figures(db: Connection, q: Query, where: str,
                     params: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per entity with any callback, largest number requested first."""
    acc: dict[str, dict[str, Any]] = {}
    sql = f"SELECT entity, dialled, callback FROM calls WHERE {where} AND callback <> 'null'"  # noqa: S608
    for entity, dialled, raw in db.execute(sql, params):
        cb = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(cb, dict):
            continue
        row = acc.setdefault(entity or "(none)", {"entity": entity or "(none)", "requested": 0,
                                                  "answered": 0, "failed": 0, "_wait": []})
        result = cb.get("result")
        if dialled != "callback":
            row["requested"] += result == "requested"
        elif result == "answered":
            row["answered"] += 1
            if cb.get("seconds_to_callback") is not None:
                row["_wait"].append(float(cb["seconds_to_callback"]))
        elif result in FAILED:
            row["failed"] += 1
    out = []
    for row in acc.values():
        waits = row.pop("_wait")
        row["mean_seconds_to_callback"] = round(sum(waits) / len(waits), 2) if waits else None
        out.append(row)
    return sorted(out, key=lambda r: (-r["requested"], r["entity"]))
