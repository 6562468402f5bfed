"""Contract: API keys and topics."""

from __future__ import annotations

import pytest

from rqs.errors import Conflict
from rqs.storage.base import ApiKey, Storage, Topic


def key(key_id: str, created_at: int = 1, **kw: object) -> ApiKey:
    fields: dict = {"name": f"key {key_id}", "scope": "read", "domain": "acme",
                    "secret_hash": f"hash-{key_id}", "created_at": created_at}
    fields.update(kw)
    return ApiKey(id=key_id, **fields)


async def test_keys_create_get_list(storage: Storage) -> None:
    assert await storage.get_key("k1") is None
    assert await storage.list_keys() == []
    k1 = key("k1", 20, scope="admin", domain="*")
    k2 = key("k2", 10, scope="ingest")
    k3 = key("k0", 20)
    for k in (k1, k2, k3):
        await storage.create_key(k)
    assert await storage.get_key("k1") == k1
    assert await storage.get_key("k2") == k2
    assert await storage.list_keys() == [k2, k3, k1]  # by created_at, then id


async def test_duplicate_key_id_conflicts(storage: Storage) -> None:
    await storage.create_key(key("k1"))
    with pytest.raises(Conflict):
        await storage.create_key(key("k1", name="another"))
    assert (await storage.get_key("k1")) == key("k1")
    await storage.create_key(key("k2"))  # the storage still works after the conflict


async def test_revoke_key(storage: Storage) -> None:
    await storage.create_key(key("k1"))
    await storage.create_key(key("k2"))
    assert await storage.revoke_key("k1", 500) is True
    assert await storage.revoke_key("k1", 600) is False  # already revoked: first time stays
    assert await storage.revoke_key("nope", 600) is False
    got = await storage.get_key("k1")
    assert got is not None
    assert got.revoked_at == 500
    other = await storage.get_key("k2")
    assert other is not None
    assert other.revoked_at is None
    assert [k.revoked_at for k in await storage.list_keys()] == [500, None]


async def test_topics_crud(storage: Storage) -> None:
    t1 = Topic("acme", "bounces", ("EMAIL_BOUNCED", "PUSH_BOUNCED"), ("Email",), 5)
    t2 = Topic("acme", "all", (), (), 6)
    t3 = Topic("other", "bounces", ("SMS_FAILED",), ("Sms", "Mms"), 7)
    assert await storage.get_topic("acme", "bounces") is None
    for t in (t1, t2, t3):
        await storage.create_topic(t)
    assert await storage.get_topic("acme", "bounces") == t1
    assert await storage.get_topic("other", "bounces") == t3
    assert await storage.list_topics("acme") == [t2, t1]  # by name
    assert await storage.list_topics("nobody") == []
    assert await storage.delete_topic("acme", "bounces") is True
    assert await storage.delete_topic("acme", "bounces") is False
    assert await storage.get_topic("acme", "bounces") is None
    assert await storage.list_topics("acme") == [t2]
    assert await storage.get_topic("other", "bounces") == t3


async def test_topic_order_of_types_is_kept(storage: Storage) -> None:
    t = Topic("acme", "t", ("Z_TYPE", "A_TYPE", "M_TYPE"), ("Sms", "Email"), 1)
    await storage.create_topic(t)
    got = await storage.get_topic("acme", "t")
    assert got is not None
    assert got.types == ("Z_TYPE", "A_TYPE", "M_TYPE")
    assert got.channels == ("Sms", "Email")


async def test_duplicate_topic_conflicts(storage: Storage) -> None:
    await storage.create_topic(Topic("acme", "t", ("A",), (), 1))
    with pytest.raises(Conflict):
        await storage.create_topic(Topic("acme", "t", ("B",), (), 2))
    got = await storage.get_topic("acme", "t")
    assert got is not None
    assert got.types == ("A",)
    await storage.create_topic(Topic("acme", "u", ("B",), (), 2))
