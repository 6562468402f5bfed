"""Options shared by commands: each flag mirrors an ``RQS_*`` variable."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from rqs import settings as settings_mod
from rqs.errors import RqsError
from rqs.settings import Settings
from rqs.storage import open_storage
from rqs.storage.base import Storage

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


_METAVARS = {"int": "INT", "float": "NUMBER", "Path": "PATH", "tuple[int, ...]": "N,N,..."}


def _flag(f: dataclasses.Field[Any]) -> Callable[[F], F]:
    """The click option mirroring one Settings field: ``--name`` for ``RQS_NAME``."""
    name = f.name.replace("_", "-")
    annotation = str(f.type).replace(" | None", "")
    default = "unset" if f.default is None else (
        f.default if isinstance(f.default, bool) else settings_mod.as_text(f.default))
    help_text = f"{f.metadata.get('help', '')} (env: RQS_{f.name.upper()}; default {default})"
    if annotation == "bool":
        return click.option(f"--{name}/--no-{name}", f.name, default=None, help=help_text)

    def convert(_ctx: click.Context, _param: click.Parameter, raw: str | None) -> Any:
        if raw is None:
            return None
        try:
            return settings_mod.convert(f.name, annotation, raw)
        except RqsError as exc:
            raise click.BadParameter(exc.message) from None

    return click.option(f"--{name}", f.name, default=None, callback=convert,
                        metavar=_METAVARS.get(annotation, "TEXT"),
                        help=help_text)


def settings_options(*, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None
                     ) -> Callable[[F], F]:
    """A flag for every Settings field (``only`` these, and not ``skip``); the command
    receives each as a keyword argument (None when not given), ready for ``load_settings``."""

    def decorate(fn: F) -> F:
        for f in reversed(dataclasses.fields(Settings)):
            if f.name not in skip and (only is None or f.name in only):
                fn = _flag(f)(fn)
        return fn

    return decorate


# ``--data-dir`` and ``--database-url``: which store a local command opens.
store_options = settings_options(only=("data_dir", "database_url"))


def load_settings(**overrides: Any) -> Settings:
    try:
        return settings_mod.from_env(**overrides)
    except RqsError as exc:
        raise click.UsageError(exc.message) from None


def with_storage(settings: Settings, work: Callable[[Storage], Coroutine[Any, Any, T]]) -> T:
    """Open the store, run ``work`` on it, close it; rqs errors become clean CLI errors."""

    async def run() -> T:
        storage = open_storage(settings)
        await storage.open()
        try:
            return await work(storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except RqsError as exc:
        raise click.ClickException(exc.message) from None
