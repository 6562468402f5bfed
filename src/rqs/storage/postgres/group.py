"""Group commit: concurrent appends to one domain from this process share a transaction.

A domain's appends run one after another (each holds the domain's row lock until its
COMMIT), and each COMMIT waits for the WAL to reach disk. One event per request (how
Responsys calls back) would cap a domain at one fsync per event. Instead, appends that
arrive while one is being written are taken together into the next transaction, with
the outcome of running them one by one: indexes in arrival order, an ext_id sent twice
resolving to its first occurrence. A caller's result is set only after COMMIT returned.
If a group fails for any reason but the database being unreachable, its appends are
retried one by one, so a bad one fails alone.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rqs.errors import StorageUnavailable
from rqs.storage.base import AppendResult
from rqs.storage.postgres.ingest import Batch, Outcome

MAX_GROUP_APPENDS = 64
MAX_GROUP_EVENTS = 20_000  # a single larger append still goes alone

Run = Callable[[Batch], Awaitable[Outcome]]


@dataclass(slots=True)
class _Job:
    batch: Batch
    result: asyncio.Future[AppendResult]


class GroupCommit:
    """The appends to one domain; ``run`` writes a batch in one transaction."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._queue: deque[_Job] = deque()
        self.task: asyncio.Task[None] | None = None

    async def append(self, batch: Batch) -> AppendResult:
        job = _Job(batch, asyncio.get_running_loop().create_future())
        # Once queued an append completes even if its caller goes away: mark its
        # outcome as seen so an abandoned failure is not reported as never retrieved.
        job.result.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(job)
        if self.task is None:
            self.task = asyncio.create_task(self._drain())
        return await asyncio.shield(job.result)

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._write(self._take())
        finally:
            self.task = None
            for job in self._queue:  # only when cancelled (storage closing)
                _settle(job, StorageUnavailable("the storage is closing"))
            self._queue.clear()

    def _take(self) -> list[_Job]:
        jobs = [self._queue.popleft()]
        size = len(jobs[0].batch.tails)
        while self._queue and len(jobs) < MAX_GROUP_APPENDS:
            size += len(self._queue[0].batch.tails)
            if size > MAX_GROUP_EVENTS:
                break
            jobs.append(self._queue.popleft())
        return jobs

    async def _write(self, jobs: list[_Job]) -> None:
        try:
            try:
                outcome = await self._run(Batch.join([j.batch for j in jobs]))
            except Exception as exc:
                if len(jobs) == 1 or isinstance(exc, StorageUnavailable):
                    for job in jobs:
                        _settle(job, exc)
                    return
                for job in jobs:
                    try:
                        one = await self._run(job.batch)
                        _settle(job, _result(one, 0, len(job.batch.tails)))
                    except Exception as failed:
                        _settle(job, failed)
                return
            start = 0
            for job in jobs:
                end = start + len(job.batch.tails)
                _settle(job, _result(outcome, start, end))
                start = end
        finally:
            # Cancelled mid-write (the loop is shutting down): whether it committed is
            # unknown, as with a lost connection; a re-send with ids is safe.
            for job in jobs:
                _settle(job, StorageUnavailable("the append was interrupted"))


def _result(outcome: Outcome, start: int, end: int) -> AppendResult:
    """The part of a group's outcome that belongs to events ``start:end``."""
    stored = bisect.bisect_left(outcome.new, end) - bisect.bisect_left(outcome.new, start)
    return AppendResult(indexes=outcome.indexes[start:end], stored=stored,
                        received_at=outcome.received_at)


def _settle(job: _Job, value: AppendResult | BaseException) -> None:
    if job.result.done():
        return
    if isinstance(value, BaseException):
        job.result.set_exception(value)
    else:
        job.result.set_result(value)
