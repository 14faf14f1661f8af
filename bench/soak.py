"""Service soak: ``coinharvest run`` against the emulator, 2-second interval, faults on.

    python bench/soak.py                         # 5 minutes (the documented figures)
    python bench/soak.py --duration 60 --json soak.json

The emulator runs in this process on a free loopback port with the upstreams' real limits,
realistic latency and faults on every upstream (5xx, malformed JSON, connection resets and
requests that hang for 3 s, longer than the interval, so some runs overrun and their next
tick is skipped). The service runs as a subprocess with ``COLLECTION_INTERVAL_MINUTES`` =
2 s, a SQLite database in a temp dir and its HTTP API on a free port. Every 5 s this
script samples the service's RSS (``/proc/PID/status``) and scrapes ``/metrics``; at the
end it sends SIGTERM and checks:

- every tick either ran or was counted as skipped (``ticks == runs + skipped``, from the
  service's final log line, and the same number of scheduled runs in the database);
- RSS is flat: median of the last 30 s vs median of the 30 s after a 60 s warm-up, < 10 %;
- no run is left ``running``; the process exits 0.

Exit status 0 when every check passes. Loopback only; the load is bounded by the interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from coinharvest.demo import demo_config
from coinharvest.emulator import UpstreamName, run_emulator

FAULTS: dict[UpstreamName, dict[str, Any]] = {
    "coingecko": {"error_503": 0.05, "hang": 0.08, "hang_s": 3.0},
    "3xpl": {"error_500": 0.05, "malformed_json": 0.03, "hang": 0.05, "hang_s": 3.0},
    "blockchair": {"error_502": 0.05, "hang": 0.1, "hang_s": 3.0},
    "nearblocks": {"error_503": 0.05, "hang": 0.1, "hang_s": 3.0},
    "nano": {"reset": 0.05},
}
ENV_PREFIX = {
    "coingecko": "COINGECKO",
    "3xpl": "THREEXPL",
    "blockchair": "BLOCKCHAIR",
    "nearblocks": "NEARBLOCKS",
    "nano": "NANO",
}
SAMPLE_EVERY_S = 5.0
WARMUP_S = 60.0
WINDOW_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def scrape(text: str) -> dict[str, float]:
    """Sample name (with labels) → value."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            values[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return values


def service_env(base_urls: dict[str, str], db: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BASE_URL")}
    env.update(
        COLLECTION_INTERVAL_MINUTES="0.0333333",
        COINHARVEST_DB=str(db),
        HTTP_PORT=str(port),
        HTTP_TIMEOUT_SECONDS="5",
        MAX_RETRIES="2",
        SHUTDOWN_GRACE_SECONDS="10",
        DATABASE_URL="",
    )
    for name, url in base_urls.items():
        env[f"{ENV_PREFIX[name]}_BASE_URL"] = url
    env["BLOCKCHAIR_API_KEY"] = "bench"  # the emulator, like Blockchair, refuses keyless calls
    return env


async def soak(duration_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "soak.db"
        port = free_port()
        async with run_emulator(demo_config()) as emu:
            for name, faults in FAULTS.items():
                await emu.set_upstream(name, faults=faults)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "coinharvest",
                "run",
                env=service_env(emu.base_urls, db, port),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            log_lines: list[str] = []
            reader = asyncio.create_task(_collect(proc, log_lines))
            samples = await _sample(proc.pid, port, duration_s)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
            await reader
            emulator = await emu.stats()
        return _verdict(samples, log_lines, code, db, duration_s, emulator)


async def _collect(proc: asyncio.subprocess.Process, into: list[str]) -> None:
    assert proc.stderr is not None
    async for raw in proc.stderr:
        into.append(raw.decode(errors="replace").rstrip())


async def _sample(pid: int, port: int, duration_s: float) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        while (elapsed := time.monotonic() - t0) < duration_s:
            await asyncio.sleep(SAMPLE_EVERY_S)
            sample: dict[str, Any] = {"t": round(elapsed + SAMPLE_EVERY_S, 1), "rss": rss_kib(pid)}
            try:
                sample["metrics"] = scrape((await http.get("/metrics")).text)
            except httpx.HTTPError:
                sample["metrics"] = {}  # not listening yet
            samples.append(sample)
            print(
                f"t={sample['t']:6.1f}s rss={sample['rss'] / 1024:6.1f} MiB "
                f"ticks={sample['metrics'].get('coinharvest_scheduler_ticks_total', 0):.0f} "
                f"skipped={sample['metrics'].get('coinharvest_skipped_ticks_total', 0):.0f}",
                flush=True,
            )
    return samples


def _verdict(
    samples: list[dict[str, Any]],
    log_lines: list[str],
    code: int,
    db: Path,
    duration_s: float,
    emulator: dict[str, Any],
) -> dict[str, Any]:
    final = next((ln for ln in reversed(log_lines) if " stopped: " in ln), "")
    m = re.search(r"stopped: (\d+) ticks, (\d+) runs, (\d+) skipped", final)
    ticks, runs, skipped = (int(g) for g in m.groups()) if m else (-1, -1, -1)
    with sqlite3.connect(db) as conn:
        by_status = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status"))
        scheduled = conn.execute("SELECT count(*) FROM runs WHERE trigger='schedule'").fetchone()[0]
    warm = [s["rss"] for s in samples if WARMUP_S < s["t"] <= WARMUP_S + WINDOW_S]
    last = [s["rss"] for s in samples if s["t"] > duration_s - WINDOW_S]
    base, end = statistics.median(warm or [1]), statistics.median(last or [1])
    growth = (end - base) / base * 100
    checks = {
        "exit status 0": code == 0,
        "ticks == runs + skipped": ticks >= 0 and ticks == runs + skipped,
        "scheduled runs in DB == runs": scheduled == runs,
        "some ticks skipped (overruns happened)": skipped > 0,
        "no run left running": by_status.get("running", 0) == 0,
        "RSS growth after warm-up < 10 %": growth < 10.0,
    }
    return {
        "duration_s": duration_s,
        "ticks": ticks,
        "runs": runs,
        "skipped": skipped,
        "runs_by_status": by_status,
        "rss_mib": {
            "after_warmup": round(base / 1024, 1),
            "end": round(end / 1024, 1),
            "max": round(max(s["rss"] for s in samples) / 1024, 1),
            "growth_pct": round(growth, 2),
        },
        "emulator_requests": emulator.get("requests_total"),
        "emulator_violations": emulator.get("violations"),
        "emulator_rate_limited": emulator.get("rate_limited"),
        "checks": checks,
        "ok": all(checks.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = asyncio.run(soak(args.duration))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
