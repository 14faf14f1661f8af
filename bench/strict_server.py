"""An independent strict CoinGecko ``/coins/markets`` server that records when requests arrive.

It shares no code with ``coinharvest`` (not the emulator, not the limiter): raw asyncio
sockets and hand-written HTTP/1.1, so that a client bug and an emulator bug that agree
cannot hide each other. Each request is stamped the moment its header block has been read
(``time.monotonic()``), and its answer leaves after ``--latency-ms``. It answers every request
(never 429): judging is done afterwards, from the log, by `violations`:

- spacing: two arrivals closer than ``--spacing-ms``;
- window: more than ``--per-window`` arrivals in any ``--window-s``;
- in flight: more than ``--max-in-flight`` requests arrived and not yet answered.

``GET /__log__`` returns the arrivals and departures as JSON; ``POST /__reset__`` clears them.
Run: ``python bench/strict_server.py --port 8799 --latency-ms 300`` (the limits to judge by
are given to `violations`; ``bench/strict_collect.py`` does both).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Log", "serve", "violations"]


class Log:
    """Arrival and departure time of every request, in arrival order."""

    def __init__(self) -> None:
        self.arrived: list[float] = []
        self.departed: list[float] = []

    def as_dict(self) -> dict[str, list[float]]:
        return {"arrived": self.arrived, "departed": self.departed}


def violations(
    arrived: list[float],
    departed: list[float],
    *,
    spacing_s: float,
    per_window: int,
    window_s: float,
    max_in_flight: int,
) -> dict[str, Any]:
    """Count the limit violations in a log (see the module docstring)."""
    order = sorted(arrived)
    gaps = [b - a for a, b in itertools.pairwise(order)]
    spacing = [g for g in gaps if g < spacing_s]
    window = 0
    recent: deque[float] = deque()
    for t in order:
        while recent and t - recent[0] >= window_s:
            recent.popleft()
        recent.append(t)
        window += len(recent) > per_window
    events = sorted([(t, 1) for t in arrived] + [(t, -1) for t in departed])
    in_flight = peak = 0
    for _, delta in events:
        in_flight += delta
        peak = max(peak, in_flight)
    return {
        "requests": len(arrived),
        "spacing": len(spacing),
        "min_gap_ms": round(min(gaps) * 1000, 3) if gaps else None,
        "window": window,
        "in_flight": int(peak > max_in_flight),
        "peak_in_flight": peak,
    }


def _markets(query: str) -> bytes:
    ids = parse_qs(query).get("ids", [""])[0].split(",")
    items = [
        {"id": coin_id, "symbol": coin_id[:4], "name": coin_id, "image": "",
         "current_price": 1.0 + i, "market_cap": 1e9 + i, "total_volume": 1e6 + i,
         "price_change_percentage_24h": -0.5, "circulating_supply": 1e7 + i,
         "last_updated": "2026-11-30T00:00:00.000Z"}
        for i, coin_id in enumerate(i for i in ids if i)
    ]  # fmt: skip
    return json.dumps(items).encode()


def _response(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: Log, latency_s: float
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            at = time.monotonic()
            _method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            length = next(
                (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )  # fmt: skip
            if length:
                await reader.readexactly(length)
            url = urlsplit(target)
            if url.path == "/__log__":
                writer.write(_response(200, json.dumps(log.as_dict()).encode()))
            elif url.path == "/__reset__":
                log.arrived.clear()
                log.departed.clear()
                writer.write(_response(200, b"{}"))
            else:
                log.arrived.append(at)
                await asyncio.sleep(latency_s)
                body = _markets(url.query) if url.path.endswith("/coins/markets") else b"{}"
                log.departed.append(time.monotonic())
                writer.write(_response(200, body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, latency_s: float) -> None:
    """Serve until cancelled."""
    log = Log()
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, log, latency_s), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency_ms / 1000))


if __name__ == "__main__":
    main()
