"""Fault injection: which fault (if any) hits a request, and the bodies faults send.

Faults are drawn once per admitted request from the emulator's seeded RNG, using the
cumulative probabilities of :class:`~coinharvest.emulator.config.FaultConfig` in a fixed
order, so one draw decides and the configured rates hold over many requests.
"""

from __future__ import annotations

import random

from coinharvest.emulator.config import FaultConfig

__all__ = [
    "FIREWALL_403_PAGE",
    "GATEWAY_TIMEOUT_PAGE",
    "cdn_error_page",
    "draw_fault",
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
