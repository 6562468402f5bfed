"""Contract: server-managed cursors are leased exclusively and committed explicitly."""

from __future__ import annotations

import asyncio

import pytest

from rqs.storage.base import ApiKey, CursorState, Storage

# How long a second lease must stay blocked while the first one is held. This is not
# a wait for work: it is the window in which exclusivity is checked.
BLOCKED_FOR = 0.3


async def test_new_cursor_starts_at_zero(storage: Storage) -> None:
    assert await storage.cursor_state("k1", "acme", "main") is None
    async with storage.lease_cursor("k1", "acme", "main") as lease:
        assert lease.state == CursorState(0, 0, 0)


async def test_commit_moves_the_cursor_and_accumulates_counters(storage: Storage) -> None:
    async with storage.lease_cursor("k1", "acme", "main") as lease:
        await lease.commit(10, 10)
        assert lease.state == CursorState(10, 10, 0)
    assert await storage.cursor_state("k1", "acme", "main") == CursorState(10, 10, 0)
    async with storage.lease_cursor("k1", "acme", "main") as lease:
        assert lease.state == CursorState(10, 10, 0)
        await lease.commit(25, 12, skipped=3)
        assert lease.state == CursorState(25, 22, 3)
    async with storage.lease_cursor("k1", "acme", "main") as lease:
        await lease.commit(30, 5, skipped=2)
    assert await storage.cursor_state("k1", "acme", "main") == CursorState(30, 27, 5)


async def test_leaving_without_commit_changes_nothing(storage: Storage) -> None:
    async with storage.lease_cursor("k1", "acme", "main"):
        pass
    assert await storage.cursor_state("k1", "acme", "main") is None
    async with storage.lease_cursor("k1", "acme", "main") as lease:
        await lease.commit(7, 7)
    with pytest.raises(RuntimeError, match="boom"):
        async with storage.lease_cursor("k1", "acme", "main") as lease:
            assert lease.state.position == 7
            raise RuntimeError("boom")
    assert await storage.cursor_state("k1", "acme", "main") == CursorState(7, 7, 0)
    async with storage.lease_cursor("k1", "acme", "main") as lease:  # not stuck locked
        assert lease.state == CursorState(7, 7, 0)


async def test_cursors_are_separate_per_key_domain_and_name(storage: Storage) -> None:
    idents = [("k1", "acme", "a"), ("k1", "acme", "b"), ("k2", "acme", "a"), ("k1", "x", "a")]
    for n, ident in enumerate(idents, start=1):
        async with storage.lease_cursor(*ident) as lease:
            await lease.commit(n, n)
    for n, ident in enumerate(idents, start=1):
        assert await storage.cursor_state(*ident) == CursorState(n, n, 0)


async def test_different_cursors_do_not_block_each_other(storage: Storage) -> None:
    async with storage.lease_cursor("k1", "acme", "a") as a:
        async with asyncio.timeout(10):
            async with storage.lease_cursor("k1", "acme", "b") as b:
                await b.commit(2, 2)
        await a.commit(1, 1)
    assert await storage.cursor_state("k1", "acme", "a") == CursorState(1, 1, 0)
    assert await storage.cursor_state("k1", "acme", "b") == CursorState(2, 2, 0)


@pytest.mark.parametrize("existing", [False, True])
async def test_concurrent_leases_are_serialized(storage: Storage, existing: bool) -> None:
    if existing:
        async with storage.lease_cursor("k1", "acme", "main") as lease:
            await lease.commit(3, 3)
    start = 3 if existing else 0
    first_in = asyncio.Event()
    release_first = asyncio.Event()
    second_in = asyncio.Event()
    seen_by_second: list[CursorState] = []

    async def first() -> None:
        async with storage.lease_cursor("k1", "acme", "main") as lease:
            assert lease.state.position == start
            first_in.set()
            await release_first.wait()
            await lease.commit(start + 5, 5)

    async def second() -> None:
        await first_in.wait()
        async with storage.lease_cursor("k1", "acme", "main") as lease:
            second_in.set()
            seen_by_second.append(CursorState(lease.state.position, lease.state.polled,
                                              lease.state.skipped))
            await lease.commit(lease.state.position + 1, 1)

    async with asyncio.timeout(20):
        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_in.wait()
        done, _ = await asyncio.wait([asyncio.create_task(second_in.wait())],
                                     timeout=BLOCKED_FOR)
        assert not done, "a second lease got in while the first was held"
        release_first.set()
        await asyncio.gather(*tasks)
    assert seen_by_second == [CursorState(start + 5, start + 5, 0)]
    assert await storage.cursor_state("k1", "acme", "main") == CursorState(
        start + 6, start + 6, 0
    )


async def test_list_cursors_of_a_domain_for_monitoring(storage: Storage) -> None:
    for key_id, domain in (("k1", "acme"), ("k2", "acme"), ("k3", "other")):
        await storage.create_key(ApiKey(key_id, key_id, "read", domain, "hash", 1))
    assert await storage.list_cursors("acme") == []
    moves = [("k2", "acme", "linkClick", 40, 12), ("k1", "acme", "main", 7, 7),
             ("k1", "acme", "allMessages", 9, 4), ("k3", "other", "main", 3, 3)]
    for key_id, domain, name, position, delivered in moves:
        async with storage.lease_cursor(key_id, domain, name) as lease:
            await lease.commit(position, delivered, skipped=1)
    async with storage.lease_cursor("k2", "acme", "never-committed"):
        pass
    found = await storage.list_cursors("acme")
    assert [(c.key_id, c.name, c.state) for c in found] == [
        ("k1", "allMessages", CursorState(9, 4, 1)),
        ("k1", "main", CursorState(7, 7, 1)),
        ("k2", "linkClick", CursorState(40, 12, 1)),
    ]
    assert all(c.updated_at > 0 for c in found)
    # A revoked key's cursors are no longer anyone's to watch.
    assert await storage.revoke_key("k1", 2)
    assert [(c.key_id, c.name) for c in await storage.list_cursors("acme")] == [
        ("k2", "linkClick")]
    assert [c.name for c in await storage.list_cursors("other")] == ["main"]
