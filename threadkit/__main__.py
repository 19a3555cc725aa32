"""``python -m threadkit``: a short, real demonstration in a temporary directory.

It follows the Python tutorial's Multi-threading chapter (:data:`TUTORIAL`),
and ends by naming this file, so that a reader can see how it is done.

1. The Python tutorial's background zip (``AsyncZip``): a data file is zipped
   in a background thread, a :class:`ResourceWorker` owning the
   :class:`zipfile.ZipFile`, while the foreground goes on with work of its own;
   then the archive is verified.
2. Several threads write to one SQLite database whose connection was made with
   the default ``check_same_thread=True``: they go through a
   :class:`ResourceWorker`, so only its owner thread ever touches the connection.
   Every request records the thread it ran in, and the rows are counted
   afterwards with a fresh connection.

The entry point is :func:`main`, an :mod:`argparse` program, so that more
subcommands can join ``demo`` (the default).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import threadkit

__all__ = ["main"]

#: The chapter of the Python tutorial that the first demonstration follows.
TUTORIAL = "https://docs.python.org/3/tutorial/stdlib2.html#multi-threading"
#: threadkit's own tutorial, which rebuilds that chapter's example step by step.
THREADKIT_TUTORIAL = "https://threadkit.readthedocs.io/en/latest/tutorial.html"


def _say(text: str = "") -> None:
    print(text, flush=True)


# -- 1. the tutorial's background zip --------------------------------------------------


def _write_data(path: Path, megabytes: int) -> int:
    # Words in a seeded random order: text that deflate has real work to do on.
    words = b"the quick brown fox jumps over lazy dog threads queue lock owner zip".split()
    rng = random.Random(2)
    with path.open("wb") as f:
        for _ in range(megabytes * 4):
            f.write(b" ".join(rng.choices(words, k=2**18 // 5)))
    return path.stat().st_size


def _zip_into(archive: zipfile.ZipFile, path: Path, owner: list[int]) -> tuple[int, float]:
    owner.append(threading.get_ident())
    t0 = time.perf_counter()
    archive.write(path, arcname=path.name)
    return archive.getinfo(path.name).compress_size, time.perf_counter() - t0


def demo_zip(folder: Path, megabytes: int) -> None:
    _say("1. Background zip (the tutorial's AsyncZip; a ResourceWorker owns the ZipFile)")
    data = folder / "mydata.txt"
    archive_path = folder / "myarchive.zip"
    size = _write_data(data, megabytes)
    _say(f"   wrote {data.name}: {size / 2**20:.1f} MiB")

    owner: list[int] = []
    zipper: threadkit.ResourceWorker[zipfile.ZipFile] = threadkit.ResourceWorker(
        lambda: zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED),
        close=lambda z: z.close(),
        name="zipper",
    )
    t0 = time.perf_counter()
    with zipper:
        compressed = zipper.submit(_zip_into, data, owner)
        _say("   The main program continues to run in foreground:")
        # The foreground's own work: a checksum of the same file, quarter by quarter.
        digest = hashlib.sha256()
        quarter = -(-size // 4)
        with data.open("rb") as f:
            for i in range(1, 5):
                digest.update(f.read(quarter))
                state = "done" if compressed.done() else "still running"
                _say(f"     foreground: hashed {i}/4 of {data.name} (zip {state})")
        t_foreground = time.perf_counter()
        compressed_size, zip_time = compressed.result()
    # The wait ends when the with block has shut the worker down: the archive
    # is closed (written out) then, not when the future resolves.
    t_end = time.perf_counter()
    _say(f"   foreground work, while the zip ran: {t_foreground - t0:.2f} s")
    _say(f"   main program waited until background was done: {t_end - t_foreground:.2f} s")
    _say(f"   the zip itself, timed in the owner thread: {zip_time:.2f} s")

    with zipfile.ZipFile(archive_path) as z:
        bad = z.testzip()
        contents = hashlib.sha256(z.read(data.name)).hexdigest()
        members = len(z.namelist())
    verified = bad is None and contents == digest.hexdigest()
    _say(
        f"   archive verified: {members} member, CRC {'ok' if bad is None else 'BAD'}, "
        f"contents {'match' if contents == digest.hexdigest() else 'DIFFER'}, "
        f"{compressed_size / size:.0%} of the original size"
    )
    _say(
        f"   the ZipFile was used by {len(set(owner))} thread: the owner "
        f"{'(not the main thread)' if threading.get_ident() not in owner else '(main?!)'}"
    )
    if not verified:
        raise RuntimeError("the background zip produced a bad archive")


# -- 2. many threads, one SQLite connection ---------------------------------------------


def _create(conn: sqlite3.Connection, touched: Counter[int]) -> None:
    touched[threading.get_ident()] += 1
    conn.execute("CREATE TABLE visits (writer INTEGER, n INTEGER, page TEXT)")


def _insert(
    conn: sqlite3.Connection, touched: Counter[int], writer: int, n: int, page: str
) -> None:
    touched[threading.get_ident()] += 1
    conn.execute("INSERT INTO visits VALUES (?, ?, ?)", (writer, n, page))


def _commit(conn: sqlite3.Connection, touched: Counter[int]) -> None:
    touched[threading.get_ident()] += 1
    conn.commit()


def demo_sqlite(folder: Path, writers: int, rows: int) -> None:
    _say(f"2. {writers} threads writing to one SQLite database through a ResourceWorker")
    path = folder / "app.db"
    # touched is updated only inside requests, i.e. only by the owner thread,
    # and read after shutdown: it needs no lock, which is the point.
    touched: Counter[int] = Counter()
    writer_idents: set[int] = set()
    idents_lock = threading.Lock()
    db: threadkit.ResourceWorker[sqlite3.Connection] = threadkit.ResourceWorker(
        lambda: sqlite3.connect(path),  # check_same_thread=True, the default
        close=lambda conn: conn.close(),
        name="sqlite-owner",
    )

    def write(writer: int) -> None:
        with idents_lock:
            writer_idents.add(threading.get_ident())
        futures = [db.submit(_insert, touched, writer, n, f"/page/{n % 7}") for n in range(rows)]
        for future in futures:
            future.result()

    t0 = time.perf_counter()
    with db:
        db.call(_create, touched)
        threads = [
            threading.Thread(target=write, args=(i,), name=f"writer-{i}") for i in range(writers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        db.call(_commit, touched)
        owner = db.thread
        assert owner is not None
        # Why the worker is needed: the same connection, used from here, refuses.
        conn = db.call(lambda c: c)
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError as exc:
            refusal = f"sqlite3.ProgrammingError: {str(exc).split('.')[0]}"
        else:  # pragma: no cover - sqlite3 always checks the thread by default
            refusal = "no error (unexpected)"
        del conn
    elapsed = time.perf_counter() - t0

    check = sqlite3.connect(path)
    try:
        (count,) = check.execute("SELECT count(*) FROM visits").fetchone()
        (distinct_writers,) = check.execute("SELECT count(DISTINCT writer) FROM visits").fetchone()
    finally:
        check.close()

    _say(f"   {writers} writer threads x {rows} rows = {writers * rows} rows requested")
    _say(f"   rows in the table (counted afterwards, new connection): {count}")
    _say(f"   distinct writers in the table: {distinct_writers}")
    only_owner = set(touched) == {owner.ident}
    _say(
        f"   threads that touched the connection: {len(touched)}, "
        f"{'only' if only_owner else 'NOT only'} the owner thread {owner.name!r} "
        f"({sum(touched.values())} requests); writer threads among them: "
        f"{len(writer_idents & touched.keys())}"
    )
    _say(f"   touching the connection from the main thread instead: {refusal}")
    _say(
        f"   the {writers * rows} requests from {writers} threads, with the worker's "
        f"start and shutdown: {elapsed:.2f} s"
    )


# -- the command line ---------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m threadkit",
        description="threadkit: thread-coordination helpers. "
        "Without a command, runs the demonstration.",
    )
    parser.add_argument("--version", action="version", version=threadkit.__version__)
    commands = parser.add_subparsers(dest="command", metavar="command")
    demo = commands.add_parser(
        "demo", help="run the demonstration in a temporary directory (the default)"
    )
    for p in (parser, demo):
        p.add_argument("--writers", type=int, default=4, help="SQLite writer threads (default 4)")
        p.add_argument(
            "--rows", type=int, default=250, help="rows written by each writer (default 250)"
        )
        p.add_argument("--megabytes", type=int, default=4, help="size of the zipped file (MiB)")
    dump = commands.add_parser(
        "dump",
        help="ask a running program (which called threadkit.install_dump_handler()) "
        "for its threadkit report, and print it",
    )
    dump.add_argument("pid", type=int, help="the process id of the program")
    dump.add_argument(
        "--signal", default="SIGUSR1", help="the signal its handler listens on (default SIGUSR1)"
    )
    dump.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the report (default 5)"
    )
    return parser


def request_dump(pid: int, signame: str, timeout: float) -> int:
    """Signal *pid* and print the report its dump handler writes."""
    signum = getattr(signal, signame.upper(), None)
    if not isinstance(signum, int):
        _say(f"python -m threadkit dump: unknown signal {signame!r}")
        return 2
    path = threadkit.dump_path(pid)
    before = path.stat().st_mtime_ns if path.exists() else None
    try:
        os.kill(pid, signum)
    except OSError as exc:
        _say(f"python -m threadkit dump: cannot signal process {pid}: {exc.strerror}")
        return 1
    # Another process writes the report: a file is the only thing to watch,
    # so this command (never the library) polls, briefly and bounded.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns != before:
            sys.stdout.write(path.read_text(encoding="utf-8"))
            return 0
        time.sleep(0.05)
    _say(
        f"python -m threadkit dump: no report from process {pid} within {timeout} s; "
        "did it call threadkit.install_dump_handler()?"
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m threadkit`` with *argv* (default: the process's arguments).

    Returns:
        The exit status: 0 on success.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "dump":
        return request_dump(args.pid, args.signal, args.timeout)
    for option in ("writers", "rows", "megabytes"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be >= 1, got {getattr(args, option)}")
    _say(
        f"threadkit {threadkit.__version__} demonstration "
        "(its files go to a temporary folder, removed at the end)"
    )
    with tempfile.TemporaryDirectory(prefix="threadkit-demo-") as tmp:
        folder = Path(tmp)
        _say()
        demo_zip(folder, args.megabytes)
        _say()
        demo_sqlite(folder, args.writers, args.rows)
    _say()
    _say(f"How it is done: {Path(__file__).resolve()}")
    _say(f"The chapter it follows: {TUTORIAL}")
    _say(f"That chapter's example rebuilt with threadkit, step by step: {THREADKIT_TUTORIAL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
