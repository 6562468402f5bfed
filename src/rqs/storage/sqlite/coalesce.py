"""Coalescing writer jobs: calls made in the same event-loop turn travel as one job.

The SQLite writer is another process, so every job costs a pickle and a pipe round trip
(several system calls). Delivery records one job per callback request; coalescing the
records of all lanes that finished in one turn makes that one round trip per turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import apsw

from rqs.errors import RqsError
from rqs.storage.sqlite.writer import Writer

T = TypeVar("T")
Item = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


def run_many(c: apsw.Connection, fn: Callable[..., Any],
             calls: list[tuple[Any, ...]]) -> list[tuple[bool, Any]]:
    """Writer job: ``fn(c, *args)`` for each call; a call that fails changes nothing.

    Optimistic: all calls run under one savepoint, and only if one fails does the job
    start over with a savepoint per call. A savepoint per call made SQLite copy every
    page each call touched (16 KiB apiece) into the statement journal: measured on
    delivery records, most of the writer's time went there.
    """
    c.execute("SAVEPOINT many")
    try:
        out: list[tuple[bool, Any]] = [(True, fn(c, *args)) for args in calls]
    except Exception:
        c.execute("ROLLBACK TO many")
        c.execute("RELEASE many")
        return _one_by_one(c, fn, calls)
    c.execute("RELEASE many")
    return out


def _one_by_one(c: apsw.Connection, fn: Callable[..., Any],
                calls: list[tuple[Any, ...]]) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    for args in calls:
        c.execute("SAVEPOINT one")
        try:
            out.append((True, fn(c, *args)))
            c.execute("RELEASE one")
        except Exception as exc:
            c.execute("ROLLBACK TO one")
            c.execute("RELEASE one")
            err = exc if isinstance(exc, RqsError) else RqsError(f"{type(exc).__name__}: {exc}")
            out.append((False, err))
    return out


class Coalescer(Generic[T]):
    """At most ``depth`` jobs in flight per event loop; calls made meanwhile wait and go
    together in the next job. Under load a job therefore carries everything that arrived
    during one writer round trip, which is what keeps the round trips per second low: the
    writer's answers reach the event loop through a thread that has to win the GIL back
    from it, each time."""

    def __init__(self, writer: Writer, fn: Callable[..., T], depth: int = 2) -> None:
        self._writer = writer
        self._fn = fn
        self._depth = depth
        self._waiting: dict[asyncio.AbstractEventLoop, list[Item]] = {}
        self._in_flight: dict[asyncio.AbstractEventLoop, int] = {}
        self._scheduled: set[asyncio.AbstractEventLoop] = set()

    def submit(self, *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._waiting.setdefault(loop, []).append((args, fut))
        if loop not in self._scheduled and self._in_flight.get(loop, 0) < self._depth:
            self._scheduled.add(loop)
            loop.call_soon(self._flush, loop)
        return fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled.discard(loop)
        batch = self._waiting.pop(loop, [])
        if not batch:
            return
        self._in_flight[loop] = self._in_flight.get(loop, 0) + 1
        job = self._writer.submit(run_many, self._fn, [args for args, _ in batch])

        def done(job: asyncio.Future[list[tuple[bool, Any]]]) -> None:
            self._in_flight[loop] -= 1
            if self._waiting.get(loop) and loop not in self._scheduled:
                self._scheduled.add(loop)
                loop.call_soon(self._flush, loop)
            _settle(batch, job)

        job.add_done_callback(done)


def _settle(batch: list[Item], job: asyncio.Future[list[tuple[bool, Any]]]) -> None:
    if job.cancelled() or job.exception() is not None:
        exc = job.exception() if not job.cancelled() else None
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc or RqsError("the write was cancelled"))
        return
    for (_, fut), (ok, value) in zip(batch, job.result(), strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
