"""The single SQLite writer: one thread, group commit, one savepoint per job.

Every write goes through here. Jobs that arrive while a transaction is being written
are taken together into the next one, so concurrent ingest requests share one fsync;
each job runs inside its own savepoint, so a failing job is rolled back alone and the
others still commit. A job's future resolves only after COMMIT returned.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import apsw

from rqs.storage.sqlite.connection import connect

log = logging.getLogger("rqs.storage.sqlite")

T = TypeVar("T")
Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], asyncio.AbstractEventLoop]

MAX_JOBS_PER_COMMIT = 64


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class Writer:
    def __init__(self, path: Path, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rqs-sqlite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` inside a write transaction; resolves after COMMIT."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, fut, loop))
        return fut

    def _run(self) -> None:
        try:
            conn = connect(self._path, self._synchronous)
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                jobs = [first]
                stop = False
                while len(jobs) < MAX_JOBS_PER_COMMIT:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    jobs.append(nxt)
                self._transaction(conn, jobs)
                if stop:
                    return
        finally:
            conn.close()

    def _transaction(self, conn: apsw.Connection, jobs: list[Job]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            for _, _, fut, loop in jobs:
                loop.call_soon_threadsafe(_resolve, fut, False, exc)
            return
        for fn, args, _, _ in jobs:
            conn.execute("SAVEPOINT job")
            try:
                outcomes.append((True, fn(conn, *args)))
                conn.execute("RELEASE job")
            except BaseException as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((False, exc))
        try:
            conn.execute("COMMIT")
        except apsw.Error as exc:
            log.error("commit failed, %d job(s) rolled back: %s", len(jobs), exc)
            try:
                conn.execute("ROLLBACK")
            except apsw.Error:
                pass
            outcomes = [(False, exc)] * len(jobs)
        for (_, _, fut, loop), (ok, value) in zip(jobs, outcomes, strict=True):
            loop.call_soon_threadsafe(_resolve, fut, ok, value)
