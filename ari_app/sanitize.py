"""Caller-supplied text made safe to keep: no control characters, bounded length.

Caller ids arrive from the public network and may hold newlines, quotes, escape
sequences or hundreds of characters; records and logs keep a printable,
bounded form and never the raw bytes.
"""

from __future__ import annotations

import unicodedata


def clean_text(value: str, limit: int) -> str:
    out = []
    for ch in value:
        if ch in "\r\n\t" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)[:limit]
