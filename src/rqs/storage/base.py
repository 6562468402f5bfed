"""The storage contract: domain operations every backend implements.

Backends: ``rqs.storage.sqlite`` (embedded default) and ``rqs.storage.postgres``.
``tests/contract`` holds the behaviour tests that every backend must pass.

Invariants every backend keeps:

* Each domain has its own index, starting at 1, gapless, assigned in commit order: once
  a reader has seen index N, no event with an index below N can appear later.
* ``append`` is all or nothing and durable when it returns.
* Re-appending an event whose ``ext_id`` is stored reports the original index, stores
  nothing. Duplicates within one batch resolve to the first occurrence.
* ``received_at`` never decreases with the index within a domain, so a time range is an
  index range.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rqs.domain.events import NewEvent, StoredEvent
from rqs.domain.selectors import EVERYTHING, Selector

R = TypeVar("R")

# Events to append, or a function that produces them. A backend calls the function where it
# writes (SQLite: in its writer process, so the function must pickle: a module-level function
# or a functools.partial of one). Ingest passes parsed events; the function form stays for
# callers that want the work done in the writer.
EventSource = Sequence[NewEvent] | Callable[[], Sequence[NewEvent]]


@dataclass(frozen=True, slots=True)
class AppendResult:
    indexes: list[int]  # for each item sent, the index it has now (new or original)
    stored: int  # how many were new
    received_at: int  # Unix microseconds stamped on the new events

    @property
    def duplicates(self) -> int:
        return len(self.indexes) - self.stored


@dataclass(frozen=True, slots=True)
class EventQuery:
    after: int = 0  # exclusive lower bound on index
    through: int | None = None  # inclusive upper bound on index
    selector: Selector = EVERYTHING
    campaign: str | None = None  # campaign id or name
    since: int | None = None  # received_at lower bound, inclusive, Unix microseconds
    until: int | None = None  # received_at upper bound, exclusive
    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class Bounds:
    oldest: int | None  # smallest retained index, None when nothing is retained
    newest: int  # largest index ever assigned (0 before the first event)
    purged_through: int  # every index <= this has been removed by retention


@dataclass(frozen=True, slots=True)
class TypeCount:
    type: str
    channel: str
    retained: int
    ingested: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scope: str  # ingest | read | admin
    domain: str
    secret_hash: str
    created_at: int  # Unix microseconds
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class Topic:
    domain: str
    name: str
    types: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    created_at: int = 0


@dataclass(slots=True)
class CursorState:
    position: int  # last index delivered through this cursor
    polled: int = 0  # events delivered through this cursor, ever
    skipped: int = 0  # events retention removed before this cursor reached them


@dataclass(frozen=True, slots=True)
class CursorInfo:
    """A server-managed cursor as monitoring sees it."""

    key_id: str
    name: str
    state: CursorState
    updated_at: int  # Unix microseconds of its last commit

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> CursorInfo:
        """From (key_id, name, position, polled, skipped, updated_at), as both stores
        select it."""
        return cls(r[0], r[1], CursorState(r[2], r[3], r[4]), r[5])


class CursorLease(Protocol):
    """Exclusive hold on one server-managed cursor, across processes."""

    state: CursorState

    async def commit(self, position: int, delivered: int, skipped: int = 0) -> None: ...


class Storage(Protocol):
    backend: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # schema
    async def upgrade(self) -> list[str]: ...  # applies pending migrations, returns their names
    async def pending_migrations(self) -> list[str]: ...

    # events
    async def append(self, domain: str, events: EventSource) -> AppendResult: ...
    def scan(
        self, domain: str, query: EventQuery, chunk: int | None = None
    ) -> AsyncIterator[list[StoredEvent]]:
        """The matching events in index order, in pages of up to ``chunk`` (None: the
        store's choice for ``query.limit``)."""
        ...
    def scan_map(
        self,
        domain: str,
        query: EventQuery,
        fn: Callable[[list[StoredEvent]], R],
        chunk: int | None = None,
        *,
        heavy: bool = False,
    ) -> AsyncIterator[R]:
        """Like ``scan``, yielding ``fn(chunk)``, computed off the event loop and called in
        order, one page at a time (``fn`` may keep state across pages). ``heavy``: ``fn`` is
        costly and runs mostly without the GIL (Mapp rendering), so it pays to encode one
        page while the next is read (see ``rqs.storage.pages``)."""
        ...
    async def get_event(self, domain: str, index: int) -> StoredEvent | None: ...
    async def bounds(self, domain: str) -> Bounds: ...
    async def counts(self, domain: str) -> list[TypeCount]: ...
    async def domains(self) -> list[str]: ...
    async def purge_step(self, cutoff: int, max_rows: int) -> int: ...

    # keys
    async def create_key(self, key: ApiKey) -> None: ...
    async def get_key(self, key_id: str) -> ApiKey | None: ...
    async def list_keys(self) -> list[ApiKey]: ...
    async def revoke_key(self, key_id: str, at: int) -> bool: ...

    # topics
    async def create_topic(self, topic: Topic) -> None: ...  # Conflict if it exists
    async def get_topic(self, domain: str, name: str) -> Topic | None: ...
    async def list_topics(self, domain: str) -> list[Topic]: ...
    async def delete_topic(self, domain: str, name: str) -> bool: ...

    # server-managed cursors
    def lease_cursor(
        self, key_id: str, domain: str, name: str
    ) -> AbstractAsyncContextManager[CursorLease]: ...
    async def cursor_state(self, key_id: str, domain: str, name: str) -> CursorState | None: ...
    async def list_cursors(self, domain: str) -> list[CursorInfo]:
        """The domain's cursors that have moved, of keys not revoked, by key and name."""
        ...


def events_of(source: EventSource) -> Sequence[NewEvent]:
    return source() if callable(source) else source


K = TypeVar("K", bound=Hashable)


def positions_by(keys: Iterable[K]) -> dict[K, list[int]]:
    """The positions of each key among ``keys``, ascending; keys in order of first
    appearance. Both stores' appends sort a batch's events this way: SQLite into one run
    per type, PostgreSQL into rows grouped by type."""
    where: dict[K, list[int]] = {}
    for pos, key in enumerate(keys):
        found = where.get(key)
        if found is None:
            where[key] = [pos]
        else:
            found.append(pos)
    return where
