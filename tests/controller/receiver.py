"""A webhook receiver for notification tests: a real HTTP server on 127.0.0.1.

It records every POST (path, headers, body) and answers 200, or, while
``fail`` is above zero, 500 (one fewer each time); while ``hold`` is clear, it
keeps each request open until it is set (a receiver that hangs).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        doc = json.loads(self.body)
        assert isinstance(doc, dict)
        return doc


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    fail: int = 0
    hold: threading.Event = field(default_factory=threading.Event)
    # Set when a request arrives (one that is held, too).
    arrived: threading.Event = field(default_factory=threading.Event)

    def delivered(self) -> list[Received]:
        """The requests answered 200 (the ones a sender counts as sent)."""
        return [r for r in self.requests if r.headers.get("x-test-status") == "200"]

    def events(self) -> list[str]:
        return [r.json["key"] for r in self.delivered()]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got = state["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            got.arrived.set()
            got.hold.wait(30)
            with lock:
                status = 500 if got.fail > 0 else 200
                got.fail -= status == 500
                headers["x-test-status"] = str(status)
                got.requests.append(Received(self.path, headers, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state["r"] = got = Receiver(f"http://127.0.0.1:{port}/hook")
    got.hold.set()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        got.hold.set()
        server.shutdown()
        server.server_close()
