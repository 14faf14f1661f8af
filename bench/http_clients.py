"""httpx against aiohttp for W5's requests: CPU per request on this machine.

``python bench/http_clients.py [--requests N] [--concurrency C] [--rounds R]``

The emulator runs in its own process (no limits, 20 ms fixed latency), so the CPU time
measured here (``time.process_time`` of this process) is the client's alone. Each case sends
the same `N` requests, `C` at a time, for each of W5's request shapes:

- ``blockchair``: ``GET /{chain}/stats`` (one chain, ~1 KB answer);
- ``nano``: ``POST`` ``{"action": "block_count"}`` (a tiny JSON answer);
- ``coingecko``: ``GET /coins/markets`` with 250 ids (~150 KB answer; JSON parsing dominates).

Clients:

- ``coinharvest``: the sources' `HttpClient` (today on aiohttp: bounded, decoded body, the
  send-time trace hook, error translation): what a run pays;
- ``httpx``: a bare ``httpx.AsyncClient`` (``get``/``post`` then ``.json()``);
- ``aiohttp``: a bare ``aiohttp.ClientSession`` (``read()`` then ``json.loads``), with a
  ``TraceConfig.on_request_headers_sent`` hook (what the send-time stamp would need).

Rounds alternate the clients (A B C A B C …) so machine noise hits them alike; the table
shows each client's median CPU µs per request, and coinharvest's over bare httpx's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx

from bench.adaptive_kit import EmulatorProcess
from coinharvest.sources.http import HttpClient

SHAPES = ("blockchair", "nano", "coingecko")
CLIENTS = ("coinharvest", "httpx", "aiohttp")
LATENCY_MS = 20.0
IDS = ",".join(f"synth-{i:05d}" for i in range(1, 251))

Send = Callable[[], Awaitable[Any]]


def _config() -> dict[str, Any]:
    unlimited = {"max_in_flight": None, "min_interval_ms": None, "rate": None}
    upstreams = {
        name: {"limits": unlimited, "latency": {"fixed_ms": LATENCY_MS}} for name in SHAPES
    }
    return {"universe": 1_000, "upstreams": upstreams}


def _request(shape: str, urls: dict[str, str]) -> tuple[str, str, dict[str, str], Any]:
    """(method, url, query, json body) of one request of `shape`."""
    if shape == "blockchair":
        return "GET", f"{urls['blockchair']}/synth-00001/stats", {"key": "bench"}, None
    if shape == "nano":
        return "POST", urls["nano"], {}, {"action": "block_count"}
    query = {"vs_currency": "usd", "ids": IDS, "per_page": "250", "page": "1"}
    return "GET", f"{urls['coingecko']}/coins/markets", query, None


async def _coinharvest(shape: str, urls: dict[str, str]) -> tuple[Send, Callable[[], Any]]:
    method, url, query, body = _request(shape, urls)
    client = HttpClient(shape, url)
    if method == "POST":
        return (lambda: client.post_json("", body)), client.aclose
    return (lambda: client.get_json("", query or None)), client.aclose


async def _httpx(shape: str, urls: dict[str, str]) -> tuple[Send, Callable[[], Any]]:
    method, url, query, body = _request(shape, urls)
    client = httpx.AsyncClient(timeout=30.0)

    async def send() -> Any:
        answer = await client.request(method, url, params=query or None, json=body)
        answer.raise_for_status()
        return answer.json()

    return send, client.aclose


async def _aiohttp(shape: str, urls: dict[str, str]) -> tuple[Send, Callable[[], Any]]:
    method, url, query, body = _request(shape, urls)
    trace = aiohttp.TraceConfig()
    stamps: list[float] = []

    async def on_headers_sent(*_: Any) -> None:
        stamps.append(time.monotonic())

    trace.on_request_headers_sent.append(on_headers_sent)
    session = aiohttp.ClientSession(trace_configs=[trace])

    async def send() -> Any:
        async with session.request(method, url, params=query or None, json=body) as answer:
            answer.raise_for_status()
            return json.loads(await answer.read())

    return send, session.close


FACTORIES = {"coinharvest": _coinharvest, "httpx": _httpx, "aiohttp": _aiohttp}


async def _measure(send: Send, n: int, concurrency: int) -> float:
    """CPU µs per request of `n` sends, `concurrency` at a time."""
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            await send()

    await send()  # connect outside the measurement
    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return 1e6 * (time.process_time() - cpu0) / n


async def main(n: int, concurrency: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median CPU µs per request, by shape and client."""
    results: dict[str, dict[str, list[float]]] = {s: {c: [] for c in CLIENTS} for s in SHAPES}
    async with EmulatorProcess(_config()) as emu:
        for shape in SHAPES:
            count = max(1, n // 10) if shape == "coingecko" else n
            for _ in range(rounds):
                for name in CLIENTS:
                    send, close = await FACTORIES[name](shape, emu.urls)
                    results[shape][name].append(await _measure(send, count, concurrency))
                    await close()
    return {s: {c: statistics.median(v) for c, v in by.items()} for s, by in results.items()}


def _table(medians: dict[str, dict[str, float]]) -> str:
    lines = [
        "| request | " + " | ".join(f"{c} µs/req" for c in CLIENTS) + " | coinharvest / httpx |",
        "|---" * (len(CLIENTS) + 2) + "|",
    ]
    for shape, by in medians.items():
        cells = " | ".join(f"{by[c]:,.0f}" for c in CLIENTS)
        lines.append(f"| {shape} | {cells} | {by['coinharvest'] / by['httpx']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000, help="per case (CoinGecko: /10)")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    medians = asyncio.run(main(args.requests, args.concurrency, args.rounds))
    print(_table(medians))
