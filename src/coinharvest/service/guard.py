"""HTTP hardening of the service, one ASGI middleware around the whole app (`Guard`).

- **Security headers** on every response (`SECURITY_HEADERS`): a Content-Security-Policy
  that lets the dashboard load only its own files (no inline script or style; ``data:`` for
  its empty favicon), no framing (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``),
  ``nosniff`` and no referrer. A response that sets its own CSP (``/docs``) keeps it.
- **Trusted hosts** (DNS rebinding): a request whose ``Host`` header is not trusted gets a
  400 before any route runs. Entries are names or IP addresses (any port), ``*.example.com``
  or ``*`` (anything). A wildcard bind address (``0.0.0.0``, ``::``) as an entry trusts every
  IP-literal ``Host``: a rebinding page always sends its own *name*, never an address.
  `trusted_hosts_for` gives the default of a server bound to some address.
- **HEAD** wherever GET works: a HEAD request is routed as GET and its body is dropped (the
  headers, ``Content-Length`` included, are those of the GET).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSP",
    "LOCAL_HOSTS",
    "SECURITY_HEADERS",
    "Guard",
    "HostPolicy",
    "docs_csp",
    "host_name",
    "trusted_hosts_for",
]

#: The dashboard (service/web/) has no inline script, style or event handler.
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
#: Trusted whatever the bind address.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "*", ""})
_NAME = re.compile(r"[a-z0-9_.-]{1,253}")
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>\d{1,5}))?")


def trusted_hosts_for(bind_host: str) -> tuple[str, ...]:
    """The default trusted hosts of a server bound to `bind_host`: it and the loopback names."""
    bind = bind_host.strip().strip("[]").lower()
    if bind in ("*", ""):  # every interface
        bind = "0.0.0.0"
    return tuple(dict.fromkeys([bind, *LOCAL_HOSTS]))


def docs_csp(page: bytes) -> str:
    """The CSP of the Swagger UI page `page`: its files (served here, ``/docs/assets``), and
    its inline scripts by hash."""
    scripts = re.findall(rb"<script>(.*?)</script>", page, re.S)
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts]
    return (
        f"default-src 'self'; script-src 'self' {' '.join(hashes)}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def host_name(header: str) -> str | None:
    """``Host`` header → its name, lower case, without port or IPv6 brackets (an IP address
    in its canonical form); None when malformed."""
    m = _HOST.fullmatch(header.strip())
    if m is None or (m["port"] is not None and int(m["port"]) > 65535):
        return None
    if m["v6"] is not None:
        try:
            return str(ipaddress.IPv6Address(m["v6"]))
        except ValueError:
            return None
    name = m["name"].lower().rstrip(".")
    return name if _NAME.fullmatch(name) else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` headers are trusted (see the module docstring for the entries)."""

    def __init__(self, hosts: Iterable[str]) -> None:
        entries = [h.strip().strip("[]").lower() for h in hosts]
        self.any = "*" in entries
        self.any_ip = any(e in _WILDCARD_BINDS for e in entries)
        self.suffixes = tuple(e[1:] for e in entries if e.startswith("*."))
        self.names = frozenset(
            str(ipaddress.ip_address(e)) if _is_ip(e) else e
            for e in entries
            if e not in _WILDCARD_BINDS and not e.startswith("*.")
        )

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header (None: none) may be served."""
        if self.any:
            return True
        name = host_name(header) if header is not None else None
        if name is None:
            return False
        if name in self.names or (self.any_ip and _is_ip(name)):
            return True
        return any(name.endswith(suffix) for suffix in self.suffixes)


class Guard:
    """ASGI middleware: trusted hosts, HEAD as GET, security headers (module docstring)."""

    def __init__(self, app: ASGIApp, trusted_hosts: Iterable[str] = LOCAL_HOSTS) -> None:
        self.app = app
        self.policy = HostPolicy(trusted_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        guarded = _guarded_send(send, head=head)
        host = _header(scope, b"host")
        if not self.policy.allows(host):
            await _reject(host, guarded)
            return
        await self.app({**scope, "method": "GET"} if head else scope, receive, guarded)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _guarded_send(send: Send, *, head: bool) -> Send:
    async def guarded(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {bytes(k).lower() for k, _ in headers}
            headers += [(k, v) for k, v in _RAW_HEADERS if k not in present]
            message = {**message, "headers": headers}
        elif head and message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return guarded


async def _reject(host: str | None, send: Send) -> None:
    shown = "none" if host is None else repr(host[:100])
    error: dict[str, Any] = {"error": f"untrusted Host header: {shown}", "status": 400}
    body = json.dumps(error).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
