"""The optional C hot paths (``rqs._speedups``), typed, or None where they were not built.

Mapp and native page rendering (the web layer), PostgreSQL's binary COPY rows and scan
rows (the PostgreSQL store) and the splitting of Responsys batches (the ingest parser) use them.
Without a C compiler at install time the extension is skipped and every caller does the
same work in Python: the same result, more slowly (tests/test_speedups.py and
tests/test_split_native.py hold them equal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the domain's parser uses this module: no import at run time
    from rqs.domain.events import NewEvent, StoredEvent


class Native(Protocol):
    """What ``rqs._speedups`` provides (its docstrings describe the arguments)."""

    def render_pairs(self, payloads: Sequence[bytes], xml: bool, /) -> list[bytes | None]: ...

    def render_events(self, events: Sequence[StoredEvent], xml: bool, head_a: bytes,
                      head_b: bytes, head_c: bytes, tail: bytes,
                      head: Callable[[StoredEvent], bytes], fixed: Callable[[StoredEvent], bytes],
                      pairs: Callable[[bytes], bytes], /) -> bytes: ...

    def render_native(self, events: Sequence[StoredEvent], ndjson: bool, id_prefix: bytes,
                      quote: Callable[[str], bytes], time: Callable[[int], bytes],
                      continued: bool, /) -> bytes: ...

    def copy_tails(self, events: Sequence[NewEvent], /) -> list[bytes | None]: ...

    def copy_rows(self, tails: Sequence[bytes], positions: Sequence[int],
                  offsets: Sequence[int], domain_id: int, first_index: int, received_at: int,
                  /) -> bytes: ...

    def pack_responsys(self, body: bytes, ndjson: bool, max_items: int,
                       aliases: dict[str, str], channels: dict[str, str],
                       channel_of: Callable[[str, str | None], str], /
                       ) -> tuple[bytes, list[str], list[str]] | None: ...

    def bind_libpq(self, addresses: Sequence[int | None], /) -> None: ...

    def pg_fetch(self, pgconn: int, domain: str, cls: type[StoredEvent], /
                 ) -> list[StoredEvent] | tuple[bytes | None, bytes] | None: ...


def _load() -> Native | None:
    try:
        from rqs import _speedups
    except ImportError:
        return None
    return _speedups


NATIVE: Native | None = _load()
