"""``rqs``: serve, manage keys and the schema, and talk to a running server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from rqs import __version__
from rqs import settings as settings_mod
from rqs.cli.common import load_settings, settings_options, store_options, with_storage
from rqs.errors import RqsError
from rqs.service import keys as key_service
from rqs.service.queue import ResponseQueue
from rqs.storage import open_storage
from rqs.storage.base import Storage

T = TypeVar("T")


@click.group()
@click.version_option(__version__, prog_name="rqs")
def cli() -> None:
    """rqs, the Response Queue Service."""


def _bootstrap_admin(storage: Storage) -> Any:
    async def run() -> key_service.NewKey | None:
        if await storage.list_keys():
            return None
        return await key_service.create_key(storage, "bootstrap admin", "admin",
                                            key_service.DEFAULT_DOMAIN)
    return run()


@cli.command()
@settings_options()
def serve(**overrides: Any) -> None:
    """Run the HTTP service. Every flag mirrors an RQS_* variable; a flag wins."""
    import uvicorn

    settings = load_settings(**overrides)
    if settings.workers > 1 and settings.backend == "sqlite":
        raise click.UsageError("--workers > 1 needs PostgreSQL (--database-url): a SQLite "
                               "store has one writer process")
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    new = with_storage(settings, _bootstrap_admin)
    if new is not None:
        click.echo("No API keys yet: created an admin key. Its secret is shown only now.\n"
                   f"  id:     {new.key.id}\n  secret: {new.secret}\n  token:  {new.token}\n"
                   f"  e.g.  curl -H 'Authorization: Bearer {new.token}' "
                   f"http://{settings.host}:{settings.port}/v1/stats")
    where = (settings.database_url.split("@")[-1] if settings.database_url
             else str(settings.sqlite_path.resolve()))
    log = logging.getLogger("rqs")
    log.info("rqs %s listening on http://%s:%d (API docs at /docs, live dashboard at "
             "/dashboard)", __version__, settings.host, settings.port)
    log.info("data: %s store at %s; retention %g days", settings.backend, where,
             settings.retention_days)
    # The app (and with --workers, each worker process) rebuilds the settings from the
    # environment: hand every flag on.
    os.environ.update(settings_mod.to_env(settings))
    uvicorn.run("rqs.web.factory:build", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, loop="uvloop", http="httptools",
                log_level=settings.log_level.lower(), access_log=settings.access_log,
                lifespan="on")


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys (works while the server runs)."""


@keys.command("create")
@click.option("--name", required=True, help="What the key is for")
@click.option("--scope", required=True, type=click.Choice(key_service.SCOPES))
@click.option("--domain", default=key_service.DEFAULT_DOMAIN, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object")
@store_options
def keys_create(name: str, scope: str, domain: str, as_json: bool, data_dir: Path | None,
                database_url: str | None) -> None:
    """Create a key; its secret is shown only now."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    new = with_storage(settings, lambda s: key_service.create_key(s, name, scope, domain))
    if as_json:
        click.echo(json.dumps(new.as_json()))
    else:
        click.echo(f"id:     {new.key.id}\nsecret: {new.secret}\ntoken:  {new.token}\n"
                   f"scope:  {scope}\ndomain: {domain}")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
@store_options
def keys_list(as_json: bool, data_dir: Path | None, database_url: str | None) -> None:
    """List keys (never their secrets)."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    found = with_storage(settings, lambda s: s.list_keys())
    rows = [{"id": k.id, "name": k.name, "scope": k.scope, "domain": k.domain,
             "revoked": k.revoked_at is not None} for k in found]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        state = "revoked" if r["revoked"] else "active"
        click.echo(f"{r['id']}  {r['scope']:<6}  {r['domain']:<16}  {state:<7}  {r['name']}")


@keys.command("revoke")
@click.argument("key_id")
@store_options
def keys_revoke(key_id: str, data_dir: Path | None, database_url: str | None) -> None:
    """Revoke a key; requests with it fail from now on."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    if not with_storage(settings, lambda s: s.revoke_key(key_id, int(time.time() * 1e6))):
        raise click.ClickException(f"no active key {key_id}")
    click.echo(f"revoked {key_id}")


@cli.group()
def db() -> None:
    """Schema migrations."""


@db.command("upgrade")
@store_options
def db_upgrade(data_dir: Path | None, database_url: str | None) -> None:
    """Apply pending schema migrations."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    applied = _run(open_storage(settings).upgrade())
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@db.command("check")
@store_options
def db_check(data_dir: Path | None, database_url: str | None) -> None:
    """Exit 1 if migrations are pending."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    missing = _run(open_storage(settings).pending_migrations())
    if missing:
        click.echo("pending: " + ", ".join(missing))
        sys.exit(1)
    click.echo("schema is up to date")


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except RqsError as exc:
        raise click.ClickException(exc.message) from None


@cli.command()
@click.option("--retention-days", type=float, default=None, help="env: RQS_RETENTION_DAYS")
@store_options
def purge(retention_days: float | None, data_dir: Path | None, database_url: str | None) -> None:
    """Remove events older than the retention period now (in small steps)."""
    settings = load_settings(retention_days=retention_days, data_dir=data_dir,
                             database_url=database_url)
    removed = with_storage(settings, lambda s: ResponseQueue(s, settings).purge())
    click.echo(f"removed {removed} events received more than {settings.retention_days:g} days ago")


def main() -> None:
    from rqs.cli import client_commands, worker

    client_commands.register(cli)
    worker.register(cli)
    cli()
