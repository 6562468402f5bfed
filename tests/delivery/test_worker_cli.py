"""``rqs worker --once`` delivers from the store on its own (the lead wires it into ``rqs``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from click.testing import CliRunner

from rqs.cli import worker
from rqs.domain import delivery as d
from rqs.settings import Settings
from rqs.storage import open_storage
from rqs.storage.delivery_base import delivery_store_for
from tests.contract.contract_support import ev
from tests.delivery.receiver import Receiver


def test_worker_once(tmp_path: Path, receiver: Receiver) -> None:
    secret = d.generate_secret()

    async def prepare() -> None:
        storage = open_storage(Settings(data_dir=tmp_path))
        await storage.open()
        try:
            store = delivery_store_for(storage)
            await store.create_callback(d.Callback("default", "cb", receiver.url("cb"), 10,
                                                   secrets=(d.Secret(secret),)))
            await store.create_subscription(d.Subscription("default", "s", "cb",
                                                           ("EMAIL_BOUNCED",)))
            await storage.append("default", [ev(payload=b'{"riid":"1"}')])
        finally:
            await storage.close()

    asyncio.run(prepare())
    receiver.accept("cb", [secret])
    group = click.Group()
    worker.register(group)
    result = CliRunner().invoke(group, ["worker", "--once", "--data-dir", str(tmp_path)],
                                env={"RQS_ALLOW_PRIVATE_CALLBACKS": "1"})
    assert result.exit_code == 0, result.output
    assert "sent 1 callback request(s)" in result.output
    assert receiver.riids("cb") == ["1"]
