"""Query-parameter parsing with errors that name the parameter."""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams

from rqs.domain.events import parse_time
from rqs.errors import InvalidRequest

# Up to 18 digits: every such number fits in 64 bits, and Python's int() would also take
# "1_000", surrounding spaces and thousands of digits.
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def int_param(
    params: QueryParams, name: str, *, required: bool = False, minimum: int | None = None,
    missing: type[InvalidRequest] = InvalidRequest,
) -> int | None:
    """An integer parameter; absent or blank is None, or ``missing`` when required."""
    text = str_param(params, name, required=required, missing=missing)
    if text is None:
        return None
    if not _INTEGER.fullmatch(text):
        raise InvalidRequest(f"parameter {name!r} must be an integer of at most 18 digits, "
                             f"got {params[name]!r}", parameter=name)
    value = int(text)
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"parameter {name!r} must be at least {minimum}", parameter=name)
    return value


def str_param(params: QueryParams, name: str, *, required: bool = False,
              missing: type[InvalidRequest] = InvalidRequest) -> str | None:
    """A text parameter, stripped; absent or blank is None, or ``missing`` when required."""
    raw = params.get(name)
    if raw is None or not raw.strip():
        if required:
            raise missing(f"parameter {name!r} is required", parameter=name)
        return None
    return raw.strip()


def time_param(params: QueryParams, name: str) -> int | None:
    """ISO 8601 or Unix seconds, to Unix microseconds."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        number = float(raw)
    except ValueError:
        try:
            return parse_time(raw)
        except ValueError:
            raise InvalidRequest(f"parameter {name!r} must be ISO 8601 or Unix seconds, "
                                 f"got {raw!r}", parameter=name) from None
    return int(number * 1_000_000)


def list_param(params: QueryParams, name: str) -> list[str]:
    values: list[str] = []
    for raw in params.getlist(name):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values
