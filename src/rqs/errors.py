"""The one exception tree of rqs.

    RqsError
    ├── InvalidRequest        a parameter or body is malformed or out of range
    │   └── ValidationFailed  one or more batch items are invalid (carries every problem)
    ├── PayloadTooLarge       the body or the batch exceeds a configured cap
    ├── AuthenticationRequired  no credentials were sent
    ├── PermissionDenied      credentials are wrong, or the key lacks scope or domain
    ├── NotFound              the named object does not exist
    ├── Conflict              the object exists already or is in use
    ├── Gone                  retention removed the asked-for index (carries the oldest index)
    └── StorageUnavailable    the database cannot be reached right now (carries retry_after)

Status codes are chosen in ``rqs.web.errors`` only; nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass


class RqsError(Exception):
    """An rqs operation failed."""

    code = "error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        super().__init__(self.message)

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (the SQLite writer); keep their type and data.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[RqsError], state: dict[str, object]) -> RqsError:
    exc = cls.__new__(cls)
    exc.__dict__.update(state)
    Exception.__init__(exc, state.get("message"))
    return exc


class InvalidRequest(RqsError):
    """The request is malformed."""

    code = "invalid_request"

    def __init__(self, message: str | None = None, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one item of a batch."""

    item: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"item": self.item, "field": self.field, "message": self.message}


class ValidationFailed(InvalidRequest):
    """Some items of the batch are invalid; nothing was stored."""

    code = "validation_failed"

    def __init__(self, problems: list[Problem]) -> None:
        count = len(problems)
        first = problems[0] if problems else None
        where = ""
        if first is not None:  # a problem with the item as a whole names no field
            field = f"{first.field}: " if first.field is not None else ""
            where = f" (first: item {first.item}, {field}{first.message})"
        super().__init__(f"{count} problem(s) in the request; nothing was stored{where}")
        self.problems = problems


class PayloadTooLarge(RqsError):
    """The request is larger than this server accepts."""

    code = "payload_too_large"


class AuthenticationRequired(RqsError):
    """Credentials are required: HTTP Basic (key id and secret) or a Bearer token."""

    code = "authentication_required"


class PermissionDenied(RqsError):
    """The credentials are wrong or do not allow this."""

    code = "permission_denied"


class NotFound(RqsError):
    """No such object."""

    code = "not_found"


class Conflict(RqsError):
    """The object exists already or is in use."""

    code = "conflict"


class Gone(RqsError):
    """Retention has removed events the request asks for."""

    code = "gone"

    def __init__(self, oldest_index: int | None, asked: int, message: str | None = None) -> None:
        self.oldest_index = oldest_index
        self.asked = asked
        oldest = ("none is retained" if oldest_index is None
                  else f"the oldest available is {oldest_index}")
        super().__init__(message or f"index {asked} is past retention; {oldest}")


class StorageUnavailable(RqsError):
    """The database cannot be reached right now; retry shortly."""

    code = "storage_unavailable"

    def __init__(self, message: str | None = None, *, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after
