"""RFC 2833 DTMF pcaps for SIPp with rising RTP sequence numbers and timestamps.

Debian's /usr/share/sip-tester/dtmf_2833_K.pcap files were recorded one after
another, so their RTP sequence numbers rise with K: playing 2 then 1 sends
an older sequence number, and Asterisk drops the second digit as stale. Each
step of a scenario gets its own copy of Debian's packets, with the sequence
number and timestamp moved forward past the previous step's.
"""

from __future__ import annotations

import struct
from pathlib import Path

SOURCE = Path("/usr/share/sip-tester")
NAMES = {"*": "star", "#": "pound"}
PCAP_HEADER = 24
RTP_OFFSET = 14 + 20 + 8  # Ethernet, IPv4 without options, UDP


def write_digit_pcap(key: str, index: int, dest: Path) -> Path:
    """The pcap for pressing `key` as the `index`-th key of a call."""
    src = SOURCE / f"dtmf_2833_{NAMES.get(key, key)}.pcap"
    data = bytearray(src.read_bytes())
    seq_base = 1000 + index * 50
    ts_base = 8000 + index * 16000
    off = PCAP_HEADER
    first_seq: int | None = None
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = off + 16
        seq, _ts = struct.unpack_from("!HI", data, pkt + RTP_OFFSET + 2)
        if first_seq is None:
            first_seq = seq
        struct.pack_into("!HI", data, pkt + RTP_OFFSET + 2, seq_base + (seq - first_seq), ts_base)
        off = pkt + incl
    out = dest / f"dtmf_{index:02d}_{NAMES.get(key, key)}.pcap"
    out.write_bytes(bytes(data))
    return out
