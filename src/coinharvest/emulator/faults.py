"""Fault injection: which fault (if any) hits a request, and the bodies faults send.

Faults are drawn once per admitted request from the emulator's seeded RNG, using the
cumulative probabilities of :class:`~coinharvest.emulator.config.FaultConfig` in a fixed
order, so one draw decides and the configured rates hold over many requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Callable

from coinharvest.emulator.config import FaultConfig
from coinharvest.emulator.http import Response, Send, html_response, reset_connection

__all__ = [
    "FIREWALL_403_PAGE",
    "GATEWAY_TIMEOUT_PAGE",
    "cdn_error_page",
    "draw_fault",
    "fault_response",
    "malform",
    "truncate",
]

FIREWALL_403_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><title>Access denied | api host used Cloudflare to restrict access</title>
<meta charset="UTF-8" /></head><body><div id="cf-wrapper"><div id="cf-error-details">
<h1><span class="cf-error-type">Error</span> <span class="cf-error-code">1020</span></h1>
<h2 class="cf-subheadline">Access denied</h2>
<p>This website is using a security service to protect itself from online attacks.</p>
</div></div></body></html>
"""

GATEWAY_TIMEOUT_PAGE = """<html><head><title>504 Gateway Time-out</title></head>
<body><center><h1>504 Gateway Time-out</h1></center><hr><center>cloudflare</center></body></html>
"""

_ERROR_STATUS = {"error_500": 500, "error_502": 502, "error_503": 503}
_REASONS = {502: "Bad gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def cdn_error_page(status: int) -> str:
    """The HTML page a CDN sends when the origin fails with ``status``."""
    reason = _REASONS.get(status, "Error")
    return (
        f"<html><head><title>{status} {reason}</title></head><body><center>"
        f"<h1>{status} {reason}</h1></center><hr><center>cloudflare</center></body></html>\n"
    )


def draw_fault(faults: FaultConfig, rng: random.Random) -> str | None:
    """Pick the fault kind for one request, or ``None`` for a normal answer."""
    draw = rng.random()
    edge = 0.0
    for kind, probability in faults.probabilities():
        edge += probability
        if draw < edge:
            return kind
    return None


def malform(body: bytes) -> bytes:
    """Corrupt a JSON body in the middle, keeping its length plausible."""
    middle = len(body) // 2
    return body[:middle] + b"\x00}{<!-- -->" + body[middle:]


def truncate(body: bytes) -> bytes:
    """Cut a JSON body in half (as a dropped upstream stream would leave it)."""
    return body[: max(1, len(body) // 2)]


async def fault_response(
    fault: str,
    faults: FaultConfig,
    server_error: Callable[[int], Response],
    answer: Callable[[], Response],
    closing: asyncio.Event,
    send: Send,
) -> Response | None:
    """What ``fault`` sends instead of the normal ``answer()``; ``None`` if it reset the link.

    :param server_error: the upstream's own 5xx answer for a status.
    :param closing: set at shutdown; a ``hang`` ends then at the latest.
    :param send: the ASGI channel, whose connection a ``reset`` aborts.
    """
    if fault in _ERROR_STATUS:
        return server_error(_ERROR_STATUS[fault])
    if fault == "html_403":
        return html_response(403, FIREWALL_403_PAGE)
    if fault == "hang":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), faults.hang_s)
        return html_response(504, GATEWAY_TIMEOUT_PAGE)
    if fault == "reset":
        if reset_connection(send):
            # Let the server see the connection as lost before this handler returns,
            # so it does not log "returned without starting response".
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return None
        raise ConnectionResetError("emulated connection reset")
    response = answer()
    corrupt = malform if fault == "malformed_json" else truncate
    return dataclasses.replace(response, body=corrupt(response.body))
