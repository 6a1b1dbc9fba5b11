"""How Client and AsyncClient reach the server: the target, TLS and the token, from plain
values, built in one place.

    Client("speech.example.com:443", tls=True, token="...")          # the system's CAs
    Client("10.0.0.5:50051", tls="ca.pem", cert=("me.pem", "me.key"))  # a private CA, mutual TLS

The target may name several front ends of one service, "10.0.0.5:50051,10.0.0.6:50051", or
a DNS name with several records: calls go to each in turn (round_robin), and one that stops
answering is left out while it does.

Whatever is not given comes from the environment, as the server address does:
SPEAKERLINK_TLS_CA (a CA bundle, PEM), SPEAKERLINK_TLS_CERT and SPEAKERLINK_TLS_KEY (a client
certificate for mutual TLS) and SPEAKERLINK_TOKEN. `credentials=` takes ready-made
grpc.ChannelCredentials instead, for anything else grpc can do.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import grpc

Tls = bool | str | os.PathLike | bytes | None
"""None: from SPEAKERLINK_TLS_CA, else plaintext; False: plaintext; True: TLS with the system's
CAs; a path or PEM bytes: TLS trusting that CA bundle."""
Cert = tuple[str | os.PathLike | bytes, str | os.PathLike | bytes] | None
"""(certificate chain, private key), paths or PEM bytes, for mutual TLS."""
Token = str | Callable[[], str] | None
"""A bearer token, or a function that returns the current one (called for every call)."""


ROUND_ROBIN = ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))


def channel_target(target: str) -> str:
    """The gRPC target for `target`: one HOST:PORT, a gRPC target such as dns:///name:port, or
    several HOST:PORT separated by commas (front ends of one service, resolved once, here)."""
    if "," not in target:
        return target
    addresses: list[str] = []
    for part in (p.strip() for p in target.split(",") if p.strip()):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{part!r} in {target!r} is not HOST:PORT")
        try:
            found = socket.getaddrinfo(host.strip("[]"), int(port), socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ValueError(f"cannot resolve {host!r} in {target!r}: {exc.strerror}") from None
        addresses += [f"{info[4][0]}:{port}" for info in found if f"{info[4][0]}:{port}" not in addresses]
    return "ipv4:" + ",".join(addresses)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name, or an address with or without IPv6 brackets) stays on this
    machine: the server and the web page need TLS and tokens anywhere else."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def channel_credentials(
    tls: Tls = None, cert: Cert = None, token: Token = None, credentials: grpc.ChannelCredentials | None = None,
) -> grpc.ChannelCredentials | None:
    """The credentials for a channel, or None for plaintext. A token on a plaintext channel is
    refused before anything connects: it would cross the network in the clear."""
    token = token if token is not None else os.environ.get("SPEAKERLINK_TOKEN") or None
    if isinstance(token, str) and token:
        check_token(token)
    if credentials is None:
        if tls is None:
            tls = os.environ.get("SPEAKERLINK_TLS_CA") or None
        if cert is None and os.environ.get("SPEAKERLINK_TLS_CERT"):
            cert = (os.environ["SPEAKERLINK_TLS_CERT"], os.environ.get("SPEAKERLINK_TLS_KEY", ""))
        if tls is None or tls is False:
            if cert is not None:
                raise ValueError("a client certificate is for mutual TLS: give tls= (or SPEAKERLINK_TLS_CA) too")
            if token:
                raise ValueError("a token needs TLS, or it would cross the network in plaintext: give tls= "
                                 "(True for the system's CAs, or a CA bundle) or SPEAKERLINK_TLS_CA")
            return None
        chain, key = (_pem(cert[0], "certificate"), _pem(cert[1], "key")) if cert else (None, None)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=None if tls is True else _pem(tls, "CA bundle"), private_key=key, certificate_chain=chain,
        )
    if token:
        return grpc.composite_channel_credentials(credentials, grpc.metadata_call_credentials(_Bearer(token)))
    return credentials


def check_token(token: str) -> str:
    """Refuse, before any call, a token that gRPC metadata cannot carry (one line of printable
    ASCII): the server would only see a broken call and answer UNAVAILABLE. The message says
    what is wrong, never the token."""
    lines = token.splitlines()
    if len(lines) > 1:
        raise ValueError(f"the token holds {len(lines)} lines; a token is one line (check the token file or "
                         "SPEAKERLINK_TOKEN)")
    bad = next((n for n, char in enumerate(token) if not " " <= char <= "~"), None)
    if bad is not None:
        what = "a control character" if token[bad].isascii() else "a non-ASCII character"
        raise ValueError(f"the token holds {what} at position {bad + 1}; a token is printable ASCII (check the "
                         "token file or SPEAKERLINK_TOKEN)")
    return token


class _Bearer(grpc.AuthMetadataPlugin):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        try:
            token = check_token(self._token() if callable(self._token) else self._token)
        except Exception as exc:  # the caller's token source failed: the call fails with it
            callback((), exc)
            return
        callback((("authorization", f"Bearer {token}"),), None)

    def __repr__(self) -> str:
        return "_Bearer(<token hidden>)"


class TokenStub:
    """A stub whose every call carries `token` as call credentials: many callers, each with
    their own token, share one channel (Client.with_token)."""

    def __init__(self, stub: object, token: str) -> None:
        self._stub, self._credentials = stub, grpc.access_token_call_credentials(check_token(token))

    def __getattr__(self, method: str) -> Callable:
        return functools.partial(getattr(self._stub, method), credentials=self._credentials)

    def __repr__(self) -> str:
        return "TokenStub(<token hidden>)"


def _pem(value: str | os.PathLike | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the TLS {what} {os.fspath(value)!r}: {exc.strerror}") from None
