"""The Ray how-to's example: a SQLite counter owned by a Ray actor.

Run by tests/test_ray.py (in the ``ray`` nox session), so it stays true;
the docs build only shows it (it does not install Ray).
"""

import sqlite3
import tempfile
import threading
from pathlib import Path

from threadkit.ray import RayWorker


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)  # made in the actor, used there only
    db.execute("CREATE TABLE IF NOT EXISTS hits (page TEXT PRIMARY KEY, n INTEGER)")
    return db


def hit(db: sqlite3.Connection, page: str) -> int:
    db.execute("INSERT INTO hits VALUES (?, 1) ON CONFLICT (page) DO UPDATE SET n = n + 1", (page,))
    return int(db.execute("SELECT n FROM hits WHERE page = ?", (page,)).fetchone()[0])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "hits.db")
        # The one line that changes: RayWorker instead of threadkit.ResourceWorker.
        with RayWorker(lambda: open_db(path), close=sqlite3.Connection.close, name="hits") as db:
            threads = [
                threading.Thread(target=lambda: [db.call(hit, "/") for _ in range(25)])
                for _ in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(db.call(hit, "/"))  # 4 x 25 hits, and this one


if __name__ == "__main__":
    main()
