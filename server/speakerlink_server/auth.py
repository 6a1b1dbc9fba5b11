"""Who is calling: bearer tokens mapped to tenants, checked in one interceptor.

The tenants file (TOML) lists each tenant's tokens by their SHA-256, never the tokens
themselves, so a copy of the file or of the data dir gives nobody access:

    [tenants.acme]
    tokens = ["<sha256 hex of a token>"]
    max_queued_jobs = 4            # optional: this tenant's quotas (quotas.py), instead of
    audio_seconds_per_day = 36000  # the server's --tenant-* defaults

A token is any long random string (`python -c "import secrets; print(secrets.token_urlsafe(32))"`);
its hash is `printf %s "$TOKEN" | sha256sum`. The file is read at start and again on SIGHUP,
so a token is revoked without a restart. Without a tenants file every caller is the one
anonymous tenant, which is what a server on loopback for one user wants.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path

import grpc

from speakerlink_server import errors

log = logging.getLogger(__name__)
ANONYMOUS = ""  # the tenant of every call when no tenants file is configured
HEALTH_PREFIX = "/grpc.health.v1.Health/"
INFO_METHODS = ("/speakerlink.v1.Speakerlink/GetInfo", "/grpc.reflection.v1alpha.ServerReflection/",
                "/grpc.reflection.v1.ServerReflection/")
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class TenantsFileError(ValueError):
    """The tenants file cannot be read or does not have the expected shape."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


QUOTA_KEYS = {"max_uploads": int, "max_queued_jobs": int, "audio_seconds_per_day": float, "max_streams": int}


def read_tenants(path: Path) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Token hash -> tenant name, and each tenant's own quota settings, from a tenants file."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TenantsFileError(f"cannot read the tenants file {path}: {exc}") from None
    tenants = document.get("tenants")
    if not isinstance(tenants, dict) or not tenants:
        raise TenantsFileError(f"{path}: no [tenants.NAME] tables")
    by_hash: dict[str, str] = {}
    quotas: dict[str, dict[str, float]] = {}
    for name, table in tenants.items():
        if not TENANT_NAME.fullmatch(name):
            raise TenantsFileError(f"{path}: tenant name {name[:80]!r} is not 1-64 letters, digits, '_', '.' or '-'")
        hashes = table.get("tokens") if isinstance(table, dict) else None
        if not isinstance(hashes, list) or not all(isinstance(h, str) and SHA256_HEX.fullmatch(h.lower()) for h in hashes):
            raise TenantsFileError(f"{path}: tenants.{name}.tokens must be a list of SHA-256 hex digests of tokens")
        for digest in hashes:
            if by_hash.setdefault(digest.lower(), name) != name:
                raise TenantsFileError(f"{path}: one token hash is listed under both {by_hash[digest.lower()]} and {name}")
        unknown = set(table) - {"tokens", *QUOTA_KEYS}
        if unknown:
            raise TenantsFileError(f"{path}: tenants.{name} has unknown keys {sorted(unknown)}; "
                                   f"known: tokens, {', '.join(QUOTA_KEYS)}")
        quotas[name] = {}
        for key, kind in QUOTA_KEYS.items():
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or kind is int and value != int(value):
                    raise TenantsFileError(f"{path}: tenants.{name}.{key} must be a {kind.__name__} of 0 or more (0: no limit)")
                quotas[name][key] = kind(value)
    return by_hash, quotas


class Tenants:
    """The current token table; reload() swaps it whole, so a call sees the old or the new one."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._by_hash, self._quotas = read_tenants(path) if path else ({}, {})
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(set(self._by_hash.values()))

    @property
    def required(self) -> bool:
        return self.path is not None

    def reload(self) -> bool:
        """Read the file again; on error keep the table in force and log why."""
        if self.path is None:
            return False
        try:
            table, quotas = read_tenants(self.path)
        except TenantsFileError as exc:
            log.error("tenants file not reloaded, the previous tokens stay in force: %s", exc)
            return False
        with self._lock:
            self._by_hash, self._quotas = table, quotas
        log.info("tenants file reloaded: %d tenants, %d tokens", len(set(table.values())), len(table))
        return True

    def quota_settings(self, tenant: str) -> dict[str, float]:
        """The quotas the tenants file sets for `tenant` (the others come from the server's defaults)."""
        with self._lock:
            return dict(self._quotas.get(tenant, {}))

    def tenant(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
        """The caller's tenant from its `authorization: Bearer <token>` metadata, or None."""
        if self.path is None:
            return ANONYMOUS
        token = _bearer(metadata)
        if token is None:
            return None
        with self._lock:
            # A lookup by hash: timing could only tell about digests, which no one can aim at.
            return self._by_hash.get(token_hash(token))

    def of(self, context: grpc.ServicerContext) -> str:
        """The tenant of a call the interceptor let through."""
        tenant = self.tenant(context.invocation_metadata())
        if tenant is None:  # revoked between the interceptor and here, or while a stream runs
            _refuse(context, _refusal(context.invocation_metadata()))
        return tenant


def _bearer(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _refusal(metadata: tuple[tuple[str, str | bytes], ...] | None) -> errors.ServiceError:
    return errors.auth_invalid() if any(k == "authorization" for k, _ in metadata or ()) else errors.auth_required()


def _refuse(context: grpc.ServicerContext, error: errors.ServiceError) -> None:
    """End the call with `error`, logged with the caller's address (never its token), so that
    an operator sees who tries tokens."""
    log.warning("authentication failed (%s) from %s", error.code, context.peer())
    error.abort(context)


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls without a known token (UNAUTHENTICATED) before any handler runs. Health
    checks always pass, so load balancers need no token; GetInfo and reflection pass when
    `anonymous_info` is set."""

    def __init__(self, tenants: Tenants, anonymous_info: bool) -> None:
        self._tenants = tenants
        self._anonymous_info = anonymous_info

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not self._tenants.required or details.method.startswith(HEALTH_PREFIX):
            return handler
        if self._anonymous_info and details.method.startswith(INFO_METHODS):
            return handler
        if self._tenants.tenant(details.invocation_metadata) is not None:
            return handler
        return _denying(handler, _refusal(details.invocation_metadata))


def _denying(handler: grpc.RpcMethodHandler, error: errors.ServiceError) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind as `handler` that ends the call with `error`."""
    def deny(_request: object, context: grpc.ServicerContext) -> None:
        _refuse(context, error)

    kind = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return kind(deny, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
