"""The typed settings: RQS_* variables, the CLI flags that mirror them, and their hand-off."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from rqs.cli.common import load_settings
from rqs.cli.main import serve
from rqs.cli.worker import worker
from rqs.errors import InvalidRequest
from rqs.service.delivery_options import DeliveryOptions, options_from
from rqs.settings import Settings, from_env, to_env


def parsed(command: click.Command, *args: str) -> dict[str, object]:
    """What a command would receive for these arguments (without running it)."""
    with command.make_context(command.name or "", list(args)) as ctx:
        return dict(ctx.params)


def test_every_setting_is_a_serve_flag_and_flags_win_over_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    params = parsed(serve)
    assert set(params) == {f.name for f in dataclasses.fields(Settings)}
    assert all(v is None for v in params.values())  # unset flags leave env and defaults be
    monkeypatch.setenv("RQS_PORT", "9001")
    monkeypatch.setenv("RQS_RETENTION_DAYS", "7")
    got = load_settings(**parsed(serve, "--port", "9002", "--retry-schedule", "1,2,5",
                                 "--no-delivery-in-serve", "--delivery-timeout", "2.5"))
    assert (got.port, got.retention_days, got.retry_schedule, got.delivery_in_serve,
            got.delivery_timeout) == (9002, 7.0, (1, 2, 5), False, 2.5)


def test_bad_flags_and_variables_say_which_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(click.BadParameter, match="RQS_PORT='x' is not a valid int"):
        parsed(serve, "--port", "x")
    monkeypatch.setenv("RQS_DELIVERY_POLL_INTERVAL", "0")
    with pytest.raises(InvalidRequest, match="RQS_DELIVERY_POLL_INTERVAL must be positive"):
        from_env()
    with pytest.raises(InvalidRequest, match="RQS_RETRY_SCHEDULE"):
        from_env({"RQS_RETRY_SCHEDULE": ""})


def test_the_worker_takes_the_delivery_settings_only() -> None:
    params = parsed(worker, "--callback-disable-after", "60", "--allow-private-callbacks")
    assert "host" not in params and "delivery_in_serve" not in params
    options = options_from(load_settings(**{k: v for k, v in params.items() if k != "once"}))
    assert (options.disable_after, options.allow_private) == (60.0, True)


def test_handing_settings_on_through_the_environment_loses_nothing(tmp_path: Path) -> None:
    changed = Settings(host="0.0.0.0", port=1, data_dir=tmp_path, database_url="postgresql://x",
                       retention_days=2.5, retry_schedule=(3, 4), allow_private_callbacks=True,
                       delivery_in_serve=False, callback_disable_after=9.0)
    assert from_env(to_env(changed)) == changed
    assert from_env(to_env(Settings())) == Settings()


def test_delivery_defaults_are_the_settings_defaults() -> None:
    assert options_from(Settings()) == DeliveryOptions()
