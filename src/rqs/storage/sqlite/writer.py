"""The single SQLite writer: its own process, group commit, one savepoint per job.

Why a process: SQLite releases the GIL around every statement, and a thread that has to
take the GIL back from a busy event loop thread waits up to the switch interval each time.
Measured here, a writer thread fell from ~120k to ~2k rows/s while another thread ran
Python. A child process has its own GIL, so inserts run at full speed in parallel with HTTP.

Every write goes through here. Jobs are module-level functions ``fn(conn, *args)`` (they
are pickled to the child). Jobs that arrive while a transaction is being written are taken
together into the next one, so concurrent requests share one fsync; each job runs inside
its own savepoint, so a failing job is rolled back alone and the others still commit. A
job's future resolves only after COMMIT returned.

Transport: a socket pair with 4 MiB buffers. In the parent, one thread sends the jobs (so
the event loop never blocks on a full socket while the writer is inside a transaction)
and one collects the answers. A job is a pickle (protocol 5) preceded by its count of
out-of-band buffers, then those buffers: a packed batch crosses without being copied into
the pickle. The writer reads on its main thread only: a reading thread there was measured
slower, competing with SQLite's calls for the writer's GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import apsw

from rqs.errors import RqsError, StorageUnavailable
from rqs.storage.sqlite.connection import CHECKPOINT_PAGES, connect

log = logging.getLogger("rqs.storage.sqlite")

T = TypeVar("T")
MAX_JOBS_PER_COMMIT = 64
_OUT_OF_BAND = 64 * 1024
_SOCKET_BUFFER = 4 * 1024 * 1024
_STOP = b""  # a job message is never empty: it starts with its count of buffers
_ctx = multiprocessing.get_context("forkserver")
_ctx.set_forkserver_preload(["rqs.storage.sqlite.writer", "rqs.storage.sqlite.store"])


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class Writer:
    """The parent's handle on the writer process."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._proc: multiprocessing.process.BaseProcess | None = None
        # Cleared when the answers stop (the process exited): cheaper than polling the
        # process on every submit; a job sent after the exit fails in the sending thread.
        self._alive = False
        self._conn: Connection | None = None
        self._threads: list[threading.Thread] = []
        self._outbox: queue.SimpleQueue[tuple[int, list[Any]] | None] = queue.SimpleQueue()
        self._pending: dict[int, tuple[asyncio.Future[Any], asyncio.AbstractEventLoop]] = {}
        self._ids = itertools.count()

    def start(self) -> None:
        parent, child = _ctx.Pipe()
        _widen(parent)
        proc = _ctx.Process(target=_serve, args=(str(self._path), self._synchronous, child),
                            name="rqs-sqlite-writer", daemon=True)
        proc.start()
        child.close()
        try:
            status, detail = parent.recv()
        except EOFError:
            raise StorageUnavailable("the SQLite writer process failed to start") from None
        if status != "ready":
            proc.join()
            raise detail
        self._proc, self._conn = proc, parent
        self._alive = True
        self._outbox = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._send, args=(parent, self._outbox),
                             name="rqs-sqlite-jobs", daemon=True),
            threading.Thread(target=self._receive, args=(parent,),
                             name="rqs-sqlite-results", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        if self._conn is not None and self._proc is not None:
            self._outbox.put(None)  # after every job already submitted
            self._proc.join(timeout=60)
            for thread in self._threads:
                thread.join(timeout=10)
            self._conn.close()
        self._proc = self._conn = None
        self._alive = False
        self._threads = []

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` inside a write transaction; resolves after COMMIT.

        ``fn`` and ``args`` are pickled to the writer process: ``fn`` must be a module-level
        function (or a ``functools.partial`` of one).
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        if self._conn is None or not self._alive:
            fut.set_exception(StorageUnavailable("the SQLite writer process is not running"))
            return fut
        job_id = next(self._ids)
        # Large bytes arguments (a packed batch) travel out of band, after the pickle,
        # instead of being copied into it and out again.
        args = tuple(pickle.PickleBuffer(a) if type(a) is bytes and len(a) > _OUT_OF_BAND
                     else a for a in args)
        buffers: list[Any] = []
        header = pickle.dumps((job_id, fn, args), protocol=5, buffer_callback=buffers.append)
        self._pending[job_id] = (fut, loop)
        # A thread does the writing: the pipe fills while the writer process is inside a
        # transaction, and the event loop must go on parsing the next requests meanwhile.
        self._outbox.put((job_id, [bytes((len(buffers),)) + header, *buffers]))
        return fut

    def _send(self, conn: Connection, outbox: queue.SimpleQueue[tuple[int, list[Any]] | None]
              ) -> None:
        broken = False
        while (item := outbox.get()) is not None:
            job_id, parts = item
            if not broken:
                try:
                    for part in parts:
                        conn.send_bytes(part)
                    continue
                except OSError:
                    broken = True
            self._fail(job_id, StorageUnavailable("the SQLite writer process is not running"))
        if not broken:
            with contextlib.suppress(OSError):
                conn.send_bytes(_STOP)

    def _fail(self, job_id: int, err: RqsError) -> None:
        found = self._pending.pop(job_id, None)
        if found is not None:
            fut, loop = found
            loop.call_soon_threadsafe(_resolve, fut, False, err)

    def _receive(self, conn: Connection) -> None:
        while True:
            try:
                job_id, ok, value = conn.recv()
            except (EOFError, OSError):
                break
            fut, loop = self._pending.pop(job_id)
            loop.call_soon_threadsafe(_resolve, fut, ok, value)
        # The writer is gone: whatever it had not answered is failed, never left hanging.
        self._alive = False
        for job_id in list(self._pending):
            self._fail(job_id, StorageUnavailable("the SQLite writer process exited"))


def _widen(conn: Connection) -> None:
    """Let a few packed batches queue in the socket (the default holds ~200 KiB, less than
    one batch of 1,000 events), so neither side waits on the other for every 200 KiB.
    The system caps the size (net.core.wmem_max); asking for more is harmless."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)


# --- the child process -----------------------------------------------------------------


def _serve(path: str, synchronous: str, conn: Connection) -> None:
    # Ctrl-C reaches the whole process group; the parent decides when the writer stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        db = connect(Path(path), synchronous)
    except BaseException as exc:
        conn.send(("error", _portable(exc)))
        return
    _widen(conn)
    Checkpoints(db, connect(Path(path), synchronous)).start()
    conn.send(("ready", None))
    try:
        while True:
            try:
                first = _receive_job(conn)
            except EOFError:  # the parent died; everything acknowledged is committed
                return
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < MAX_JOBS_PER_COMMIT and conn.poll(0):
                nxt = _receive_job(conn)
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            for job_id, ok, value in _transaction(db, jobs):
                conn.send((job_id, ok, value))
            if stop:
                return
    finally:
        db.close()


class Checkpoints:
    """WAL checkpoints on a thread of their own instead of inside a commit.

    SQLite's automatic checkpoint runs in the COMMIT that crosses its threshold: that
    request waited the whole copy of the WAL into the database file, measured 100-170 ms
    once the file held a few million events (the p99 of ingest). Here the writer's WAL
    hook only marks a checkpoint due; a second connection copies (a PASSIVE checkpoint
    never blocks the writer) while commits go on, and its calls into SQLite run without
    the GIL. Measured: ingest p99 at 3-5 million events 160-190 ms -> 68-112 ms.
    """

    def __init__(self, writer: apsw.Connection, checkpointer: apsw.Connection,
                 pages: int = CHECKPOINT_PAGES) -> None:
        self.due = threading.Event()
        self._pages = pages
        self._checkpointer = checkpointer
        writer.set_wal_hook(self._wal_hook)

    def _wal_hook(self, _conn: apsw.Connection, _name: str, pages: int) -> int:
        if pages >= self._pages:
            self.due.set()
        return apsw.SQLITE_OK

    def run_once(self) -> tuple[int, int] | None:
        """Checkpoint if one is due: (WAL frames, frames copied), or None."""
        if not self.due.is_set():
            return None
        self.due.clear()
        try:
            found: tuple[int, int] = self._checkpointer.wal_checkpoint(
                mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
        except apsw.Error:  # busy: the next commit marks it due again
            return None
        return found

    def start(self) -> None:
        def loop() -> None:
            while True:
                self.due.wait()
                self.run_once()

        threading.Thread(target=loop, name="rqs-checkpoints", daemon=True).start()


def _receive_job(conn: Connection) -> Any:
    """A job as ``Writer.submit`` sends it: a count of buffers and a pickle, then those."""
    message = conn.recv_bytes()
    if message == _STOP:
        return None
    buffers = [conn.recv_bytes() for _ in range(message[0])]
    return pickle.loads(memoryview(message)[1:], buffers=buffers)


def _portable(exc: BaseException) -> RqsError:
    """Errors cross the process boundary as RqsErrors (those pickle with their data)."""
    if isinstance(exc, RqsError):
        return exc
    if isinstance(exc, apsw.BusyError):
        return StorageUnavailable(f"the database is locked: {exc}")
    return RqsError(f"storage error: {type(exc).__name__}: {exc}")


def _transaction(db: apsw.Connection, jobs: list[Any]) -> list[tuple[int, bool, Any]]:
    try:
        db.execute("BEGIN IMMEDIATE")
    except apsw.Error as exc:
        return [(job_id, False, _portable(exc)) for job_id, _, _ in jobs]
    outcomes: list[tuple[int, bool, Any]] = []
    for job_id, fn, args in jobs:
        db.execute("SAVEPOINT job")
        try:
            outcomes.append((job_id, True, fn(db, *args)))
            db.execute("RELEASE job")
        except Exception as exc:
            db.execute("ROLLBACK TO job")
            db.execute("RELEASE job")
            outcomes.append((job_id, False, _portable(exc)))
    try:
        db.execute("COMMIT")
    except apsw.Error as exc:
        log.error("commit failed, %d job(s) rolled back: %s", len(jobs), exc)
        with contextlib.suppress(apsw.Error):
            db.execute("ROLLBACK")
        return [(job_id, False, _portable(exc)) for job_id, _, _ in jobs]
    return outcomes
