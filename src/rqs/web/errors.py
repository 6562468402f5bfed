"""Mapping rqs errors to HTTP: the only place that chooses status codes."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from rqs import errors as e
from rqs.domain.events import MAX_PROBLEMS_LISTED

STATUS: dict[type[e.RqsError], int] = {
    e.ValidationFailed: 422,
    e.InvalidRequest: 400,
    e.PayloadTooLarge: 413,
    e.AuthenticationRequired: 401,
    e.PermissionDenied: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.Gone: 410,
    e.StorageUnavailable: 503,
}

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="rqs", charset="UTF-8"'}


def status_of(exc: e.RqsError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def headers_of(exc: e.RqsError) -> dict[str, str]:
    if isinstance(exc, e.AuthenticationRequired):
        return dict(UNAUTHORIZED_HEADERS)
    if isinstance(exc, e.StorageUnavailable):
        return {"Retry-After": str(exc.retry_after)}
    return {}


def native_body(exc: e.RqsError) -> dict[str, object]:
    body: dict[str, object] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, e.ValidationFailed):
        body["problem_count"] = len(exc.problems)
        body["problems"] = [p.as_dict() for p in exc.problems[:MAX_PROBLEMS_LISTED]]
    elif isinstance(exc, e.InvalidRequest) and exc.parameter:
        body["parameter"] = exc.parameter
    if isinstance(exc, e.Gone):
        body["oldest_index"] = exc.oldest_index
    return body


def native_response(exc: e.RqsError) -> Response:
    return Response(
        msgspec.json.encode(native_body(exc)),
        status_code=status_of(exc),
        headers=headers_of(exc),
        media_type="application/json",
    )
