"""Who may reach the page, and from where.

The page acts with its token (or each person's) over plain HTTP, so three things keep it from
acting for strangers: it listens on loopback unless told the network is trusted; it answers
only requests that name it (the Host header), so a web site whose name an attacker points at
127.0.0.1 (DNS rebinding) gets nothing; and it changes state (upload, submit, cancel) only for
requests a browser sends from the page itself: same origin, with a header no cross-site form
can send without a CORS preflight, which the page never approves. A WebSocket (the Live tab)
carries no such header, so it is opened only for the page's own origin: browsers always send
an Origin with one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from speakerlink.channel import is_loopback

log = logging.getLogger("speakerlink.web")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PAGE_HEADER = "x-speakerlink"  # app.js sends it with every request
STATE_CHANGES = ("POST", "PUT", "PATCH", "DELETE")


def check_host(host: str, insecure: bool) -> None:
    """Refuse a page off loopback unless `insecure` says the network is trusted; warn each
    time it is (the rule `speakerlink serve` follows)."""
    if is_loopback(host):
        return
    if not insecure:
        raise ValueError(f"--host {host} is not loopback: anyone who can reach it could use the service as this "
                         "page's tenant, over plain HTTP. Keep the page on loopback (reach it through an SSH tunnel "
                         "or a TLS proxy), or give --insecure on a network you trust")
    log.warning("INSECURE: serving the page on %s over plain HTTP; anyone who can reach this port can read, "
                "cancel and submit jobs as its tenant", host)


def _hostname(authority: str) -> str:
    """The name in a Host header or an origin's netloc, without the port: "[::1]:8080" -> "::1"."""
    if authority.startswith("["):
        return authority[1:authority.find("]")].lower()
    return authority.rsplit(":", 1)[0].lower() if authority.count(":") == 1 else authority.lower()


class Guard:
    """ASGI middleware: a request that names another host gets 421, a cross-site state change 403."""

    def __init__(self, app: ASGIApp, bound: str, names: Iterable[str] = ()) -> None:
        self.app = app
        self.hosts = {_hostname(h) for h in (*LOOPBACK_NAMES, bound, *names)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(Headers(scope=scope), scope["method"])
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if scope["type"] == "websocket" and not self.own_socket(Headers(scope=scope)):
            await receive()  # the connect: refused with 403 before any accept
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def own_socket(self, headers: Headers) -> bool:
        """A WebSocket for one of the page's names, opened by the page itself."""
        host, origin = headers.get("host", ""), headers.get("origin")
        return _hostname(host) in self.hosts and origin is not None and urlsplit(origin).netloc.lower() == host.lower()

    def refusal(self, headers: Headers, method: str) -> JSONResponse | None:
        host = headers.get("host", "")
        if _hostname(host) not in self.hosts:
            return error(421, "UNKNOWN_HOST", f"this page is not served as {host or 'a request without a Host'}",
                         ["If that is the page's name, start it with --allow-host NAME."])
        if method not in STATE_CHANGES:
            return None
        origin, site = headers.get("origin"), headers.get("sec-fetch-site")
        if (origin is not None and urlsplit(origin).netloc.lower() != host.lower()) or \
                (site is not None and site not in ("same-origin", "none")):
            return error(403, "CROSS_SITE", "the page changes jobs only for requests from itself",
                         ["Use the page at its own address, or call it without an Origin header (curl)."])
        json_body = headers.get("content-type", "").split(";")[0].strip() == "application/json"
        if not json_body and PAGE_HEADER not in headers:
            return error(403, "CROSS_SITE", f"a change needs a JSON body or an {PAGE_HEADER} header",
                         [f"Send Content-Type: application/json, or the header {PAGE_HEADER}: 1."])
        return None


def error(status: int, code: str, message: str, troubleshooting: list[str] | None = None) -> JSONResponse:
    """Every refusal of the page has this shape, which app.js shows as it is."""
    return JSONResponse({"code": code, "message": message, "troubleshooting": troubleshooting or []},
                        status_code=status)


class Refusal(Exception):
    """A request the page turns down itself, raised where it is found; the app's one exception
    handler answers it as `error` does, as it answers the service's own refusals."""

    def __init__(self, status: int, code: str, message: str, troubleshooting: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.troubleshooting = status, code, message, troubleshooting or []
