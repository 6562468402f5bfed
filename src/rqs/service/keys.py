"""API keys: creation, hashing and verification.

A key is an ``id`` (public, ``rk_...``) and a ``secret`` (shown once). Clients send
``id:secret`` with HTTP Basic or ``id.secret`` as a Bearer token. Only a SHA-256 of the
secret is stored: secrets are 256-bit random, so a slow password hash buys nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from rqs.errors import InvalidRequest, PermissionDenied
from rqs.storage.base import ApiKey, Storage

SCOPES = ("ingest", "read", "admin")
DOMAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_DOMAIN = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, scope and domain."""

    key_id: str
    scope: str
    domain: str

    def require(self, scope: str) -> None:
        if self.scope != "admin" and self.scope != scope:
            raise PermissionDenied(f"this key has scope {self.scope!r}; {scope!r} is required")


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str

    @property
    def token(self) -> str:
        return f"{self.key.id}.{self.secret}"

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.key.id,
            "secret": self.secret,
            "token": self.token,
            "name": self.key.name,
            "scope": self.key.scope,
            "domain": self.key.domain,
        }


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_domain(domain: str) -> str:
    if not DOMAIN_RE.match(domain):
        raise InvalidRequest(
            f"domain {domain!r} is invalid: use 1-64 letters, digits, '.', '_' or '-'",
            parameter="domain",
        )
    return domain


async def create_key(storage: Storage, name: str, scope: str, domain: str) -> NewKey:
    if scope not in SCOPES:
        raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}", parameter="scope")
    if not name.strip():
        raise InvalidRequest("name must not be empty", parameter="name")
    validate_domain(domain)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        id="rk_" + secrets.token_hex(8),
        name=name.strip(),
        scope=scope,
        domain=domain,
        secret_hash=hash_secret(secret),
        created_at=int(time.time() * 1_000_000),
    )
    await storage.create_key(key)
    return NewKey(key, secret)


async def authenticate(storage: Storage, key_id: str, secret: str) -> Principal:
    key = await storage.get_key(key_id)
    # Compare against a dummy hash when the key is unknown so timing does not tell.
    expected = key.secret_hash if key is not None else hash_secret("")
    if not hmac.compare_digest(expected, hash_secret(secret)) or key is None:
        raise PermissionDenied("unknown key or wrong secret")
    if key.revoked_at is not None:
        raise PermissionDenied(f"key {key_id} has been revoked")
    return Principal(key.id, key.scope, key.domain)


def split_token(token: str) -> tuple[str, str]:
    key_id, sep, secret = token.partition(".")
    if not sep or not key_id or not secret:
        raise PermissionDenied("a Bearer token has the form <key id>.<secret>")
    return key_id, secret
