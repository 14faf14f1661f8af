"""Load benchmark of the upstream emulator: how many requests/s it sustains.

Starts ``python -m coinharvest.emulator`` (zero latency, no limits, no faults) in its own
process, then drives it for a fixed time from a separate load-generator process: N
keep-alive HTTP/1.1 connections, each sending requests back to back over a mix of
endpoints of all five upstreams. Reports requests/s, latency percentiles and any non-200.
Everything stays on 127.0.0.1 and every phase is bounded in time.

Usage::

    python bench/emulator_load.py                       # 10 s, 64 connections, mixed paths
    python bench/emulator_load.py --duration 5 --connections 32 --json result.json
    python bench/emulator_load.py --wrk                 # also run wrk if it is installed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

NANO_BODY = b'{"action":"block_count"}'
GET_PATHS = (
    "/coingecko/api/v3/ping",
    "/coingecko/api/v3/simple/price?ids=bitcoin,ethereum,dash&vs_currencies=usd"
    "&include_market_cap=true&include_24hr_vol=true&include_24hr_change=true",
    "/coingecko/api/v3/coins/markets?vs_currency=usd&ids=bitcoin,ethereum,dash,digibyte,"
    "monero,ravencoin,chia,ecash,nano,near,internet-computer",
    "/3xpl/?from=dash&library=blockchains",
    "/blockchair/bitcoin/stats?key=bench",  # keyless Blockchair answers 430
    "/nearblocks/v1/stats",
)


def _requests(host: str) -> list[bytes]:
    gets = [f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for path in GET_PATHS]
    post = (
        f"POST /nano HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(NANO_BODY)}\r\n\r\n"
    ).encode() + NANO_BODY
    return [*gets, post]


async def _connection(
    host: str,
    port: int,
    deadline: float,
    offset: int,
    latencies: list[float],
    codes: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    requests = _requests(host)
    index = offset
    while time.monotonic() < deadline:
        started = time.monotonic()
        writer.write(requests[index % len(requests)])
        index += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        latencies.append(time.monotonic() - started)
        code = int(head[9:12])
        codes[code] = codes.get(code, 0) + 1
    writer.close()


async def _drive(host: str, port: int, connections: int, duration: float) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    start = time.monotonic()
    deadline = start + duration
    tasks = [_connection(host, port, deadline, i, latencies, codes) for i in range(connections)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + 30)
    elapsed = time.monotonic() - start
    return {
        "requests": len(latencies),
        "elapsed_s": elapsed,
        "latencies": latencies,
        "codes": codes,
    }


def _generator(host: str, port: int, connections: int, duration: float, out: Any) -> None:
    try:
        import uvloop  # the generator must not be the bottleneck

        uvloop.install()
    except ImportError:  # pragma: no cover - optional
        pass
    out.put(asyncio.run(_drive(host, port, connections, duration)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/coingecko/api/v3/ping"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the emulator did not start")


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def _run_wrk(port: int, duration: float, connections: int) -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    url = f"http://127.0.0.1:{port}/coingecko/api/v3/simple/price?ids=bitcoin&vs_currencies=usd"
    command = [wrk, "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--universe", type=int, default=1000, help="synthetic coins served")
    parser.add_argument(
        "--no-cache", action="store_true", help="disable the 60 s edge cache (worst case)"
    )
    parser.add_argument("--wrk", action="store_true", help="also measure with wrk (if found)")
    parser.add_argument("--json", help="write the summary to this file")
    args = parser.parse_args()

    port = _free_port()
    command = [sys.executable, "-m", "coinharvest.emulator", "--port", str(port)]
    command += ["--universe", str(args.universe)]
    config_dir = tempfile.TemporaryDirectory()
    if args.no_cache:
        config_file = os.path.join(config_dir.name, "emulator.json")
        with open(config_file, "w", encoding="utf-8") as handle:
            json.dump({"cache_s": 0}, handle)
        command += ["--config", config_file]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port)
        queue: Any = multiprocessing.Queue()
        generator = multiprocessing.Process(
            target=_generator, args=("127.0.0.1", port, args.connections, args.duration, queue)
        )
        generator.start()
        raw = queue.get(timeout=args.duration + 60)
        generator.join(timeout=10)
        wrk_output = _run_wrk(port, args.duration, args.connections) if args.wrk else None
    finally:
        server.terminate()
        server.wait(timeout=10)
        config_dir.cleanup()

    latencies = sorted(raw["latencies"])
    summary = {
        "requests": raw["requests"],
        "elapsed_s": round(raw["elapsed_s"], 3),
        "requests_per_s": round(raw["requests"] / raw["elapsed_s"], 1),
        "status_codes": raw["codes"],
        "latency_ms": {
            name: round(_percentile(latencies, q) * 1000, 2)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "connections": args.connections,
        "edge_cache": not args.no_cache,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(summary, indent=2))
    if wrk_output:
        print("\nwrk (GET /coingecko/api/v3/simple/price?ids=bitcoin&vs_currencies=usd):")
        print(wrk_output)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    return 0 if set(raw["codes"]) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
