"""`Stack.leftovers()`: an ARI it cannot read is an error, never "nothing left behind"."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts.stack import AriUnreachable, Stack


class _Ari(BaseHTTPRequestHandler):
    status = 200
    body: object = []

    def do_GET(self) -> None:
        raw = json.dumps(type(self).body).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ari(tmp_path: Path) -> Iterator[tuple[Stack, type[_Ari]]]:
    handler = type("Ari", (_Ari,), {})
    server = HTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    s = Stack(name="unit-leftovers")
    s.dir = tmp_path
    s.ports = SimpleNamespace(http=server.server_address[1])  # type: ignore[assignment]
    try:
        yield s, handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_reachable_ari_with_nothing_left(ari: tuple[Stack, type[_Ari]]) -> None:
    s, _ = ari
    assert s.leftovers() == {"channels": [], "bridges": []}


def test_what_is_left_is_reported(ari: tuple[Stack, type[_Ari]]) -> None:
    s, handler = ari
    handler.body = [{"id": "x1", "name": "PJSIP/carrier-0001"}]
    assert s.leftovers()["channels"] == [{"id": "x1", "name": "PJSIP/carrier-0001"}]


@pytest.mark.parametrize("status", [401, 503])
def test_an_ari_refusing_the_request_is_an_error(ari: tuple[Stack, type[_Ari]],
                                                 status: int) -> None:
    s, handler = ari
    handler.status = status
    with pytest.raises(AriUnreachable, match=f"answered {status}"):
        s.leftovers()


def test_an_ari_nobody_listens_on_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nobody listens
    s = Stack(name="unit-leftovers")
    s.dir = tmp_path
    s.ports = SimpleNamespace(http=port)  # type: ignore[assignment]
    with pytest.raises(AriUnreachable, match="unreachable"):
        s.leftovers()
