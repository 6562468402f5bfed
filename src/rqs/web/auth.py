"""Reading credentials from a request: HTTP Basic (key id, secret) or a Bearer token."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import HTTPConnection

from rqs.errors import AuthenticationRequired, PermissionDenied
from rqs.service import keys
from rqs.service.keys import Principal
from rqs.storage.base import Storage


def credentials(conn: HTTPConnection) -> tuple[str, str]:
    header = conn.headers.get("authorization")
    if not header:
        raise AuthenticationRequired()
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise PermissionDenied(
                "the Basic credentials are not valid base64 of id:secret") from None
        key_id, sep, secret = decoded.partition(":")
        if not sep:
            raise PermissionDenied("Basic credentials must be <key id>:<secret>")
        return key_id, secret
    if scheme.lower() == "bearer":
        return keys.split_token(value)
    if not value and "." in scheme:  # "Authorization: <token>", as Responsys clients send it
        return keys.split_token(scheme)
    raise AuthenticationRequired("use HTTP Basic (key id and secret) or a Bearer token")


async def principal(conn: HTTPConnection, storage: Storage) -> Principal:
    key_id, secret = credentials(conn)
    return await keys.authenticate(storage, key_id, secret)
