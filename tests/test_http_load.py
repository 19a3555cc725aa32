"""A real-world load: an HTTP server whose handler threads write to SQLite through one worker.

A :class:`http.server.ThreadingHTTPServer` on 127.0.0.1 starts a thread per
request; every handler inserts its row through one :class:`ResourceWorker`
that owns a :mod:`sqlite3` connection opened with the default
``check_same_thread=True`` (a handler touching it directly would fail), with
group commit (``BEGIN`` ... ``COMMIT`` around each batch, so that a 200 means
"committed").  Client threads POST rows with :mod:`urllib`; some rows repeat
a key and must be refused (409); halfway through, the worker is shut down
while the clients keep posting (503).  Afterwards the database holds exactly
the rows whose clients got a 200: none missing, none extra, none twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import threadkit

from .conftest import WAIT

CLIENTS = 8
REQUESTS_PER_CLIENT = 50
# Each client's requests after this one race with (and mostly follow) the shutdown.
SHUTDOWN_AFTER = 30


def _open(path: Path) -> sqlite3.Connection:
    # Autocommit mode: the batch hooks issue BEGIN and COMMIT themselves.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS rows ("
        " client INTEGER, seq INTEGER, value TEXT, PRIMARY KEY (client, seq))"
    )
    return conn


def _insert(conn: sqlite3.Connection, client: int, seq: int, value: str) -> int:
    cur = conn.execute("INSERT INTO rows VALUES (?, ?, ?)", (client, seq, value))
    assert cur.lastrowid is not None
    return cur.lastrowid


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads, so that server_close() joins every one.
    daemon_threads = False
    db: threadkit.ResourceWorker[sqlite3.Connection]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            rowid = self.server.db.call(_insert, body["client"], body["seq"], body["value"])
        except threadkit.WorkerClosed:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "shutting down"})
        except sqlite3.IntegrityError as exc:
            self._reply(HTTPStatus.CONFLICT, {"error": str(exc)})
        else:
            self._reply(HTTPStatus.OK, {"rowid": rowid})

    def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet


def _post(url: str, row: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(row).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            status: int = response.status
            json.load(response)
            return status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def test_the_database_holds_exactly_the_rows_the_clients_were_told_were_stored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "load.db"
    db = threadkit.ResourceWorker(
        lambda: _open(path),
        close=sqlite3.Connection.close,
        name="db",
        max_batch=32,
        begin_batch=lambda c: c.execute("BEGIN"),
        end_batch=lambda c: c.execute("COMMIT"),
    ).start()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.db = db
    url = f"http://127.0.0.1:{server.server_address[1]}/rows"
    serving = threading.Thread(target=server.serve_forever, name="http")
    serving.start()

    outcomes: list[list[tuple[int, int]]] = [[] for _ in range(CLIENTS)]
    halfway = [threading.Event() for _ in range(CLIENTS)]

    def client(c: int) -> None:
        for i in range(REQUESTS_PER_CLIENT):
            if i == SHUTDOWN_AFTER:
                halfway[c].set()
            # Every tenth request repeats the previous key: it must be refused.
            seq = i - 1 if i % 10 == 9 else i
            outcomes[c].append((seq, _post(url, {"client": c, "seq": seq, "value": f"{c}/{i}"})))
        halfway[c].set()

    clients = [
        threading.Thread(target=client, args=(c,), name=f"client-{c}") for c in range(CLIENTS)
    ]
    try:
        for t in clients:
            t.start()
        for event in halfway:
            assert event.wait(WAIT)
        db.shutdown(wait=True)
        for t in clients:
            t.join(WAIT)
        assert not any(t.is_alive() for t in clients)
    finally:
        server.shutdown()
        server.server_close()
        serving.join(WAIT)
        db.shutdown(wait=True)

    stored = {(c, seq) for c in range(CLIENTS) for seq, status in outcomes[c] if status == 200}
    statuses = [status for per_client in outcomes for _, status in per_client]
    assert len(statuses) == CLIENTS * REQUESTS_PER_CLIENT
    # Nothing failed in an unplanned way (no 500: the connection was only
    # ever touched by its owner thread).
    assert set(statuses) <= {200, 409, 503}
    assert statuses.count(409) >= CLIENTS * (SHUTDOWN_AFTER // 10)
    assert statuses.count(503) > 0  # the shutdown really raced the clients
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT client, seq, value FROM rows").fetchall()
    finally:
        conn.close()
    assert len(rows) == len({(c, s) for c, s, _ in rows})
    assert {(c, s) for c, s, _ in rows} == stored
    # Each stored row holds the value of the request that got the 200.
    assert all(value == f"{c}/{s}" for c, s, value in rows)
