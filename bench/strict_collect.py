"""`coinharvest collect` of 1,000 CoinGecko coins, N times, against an independent strict server.

The path users run: the installed CLI in its own process, the default SQLite store in a
temporary directory, and `bench/strict_server.py` (which shares no code with coinharvest) in
a third process, recording when each request arrives and leaves. After each run the
arrivals are checked against the limits the CLI was given (spacing, the rolling window and
the in-flight cap, without coinharvest's 10 ms guard): any violation fails the benchmark.

Run: ``python bench/strict_collect.py --runs 20`` (about 4 s a run). Prints one line per
run (with ``run_s``, the run's own duration from the database, and ``x_bound``, that over
the bound (requests − 1) × spacing + latency) and a summary; ``--json FILE`` saves them.
Exit status 1 if any run broke a limit or did not collect every coin.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` when run as a script

from bench.strict_server import violations

SPACING_MS = 200
MAX_IN_FLIGHT = 3
PER_MINUTE = 30
LATENCY_MS = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _coins_file(folder: Path, count: int) -> Path:
    path = folder / "coins.toml"
    path.write_text(
        "".join(
            f'[[coin]]\nsymbol = "C{i:04d}"\nname = "Coin {i}"\n'
            f'ids = {{ coingecko = "coin-{i:04d}" }}\n\n'
            for i in range(count)
        )
    )
    return path


def _call(url: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
        return json.loads(r.read())


def _last_run_duration(db: Path) -> float | None:
    """The newest run's own duration as the CLI recorded it (no process start-up in it)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT duration_s FROM runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    return None if row is None or row[0] is None else round(float(row[0]), 3)


def _wait_ready(base: str) -> None:
    for _ in range(100):
        try:
            _call(f"{base}/__log__")
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("strict server did not start")


def run(runs: int, coins: int) -> dict[str, Any]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "strict_server.py"),
         "--port", str(port), "--latency-ms", str(LATENCY_MS)]
    )  # fmt: skip
    results: list[dict[str, Any]] = []
    try:
        _wait_ready(base)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            env = {
                **os.environ,
                "COINS_FILE": str(_coins_file(folder, coins)),
                "COINGECKO_BASE_URL": base,
                "COINGECKO_MIN_INTERVAL_MS": str(SPACING_MS),
                "MAX_COINGECKO_CONCURRENCY": str(MAX_IN_FLIGHT),
                "COINGECKO_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE),
                "COINHARVEST_DB": str(folder / "coinharvest.db"),
            }
            for i in range(runs):
                _call(f"{base}/__reset__", "POST")
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "coinharvest", "collect"],
                    env=env, cwd=folder, capture_output=True, text=True, check=False,
                )  # fmt: skip
                wall = time.perf_counter() - started
                log = _call(f"{base}/__log__")
                found = violations(
                    log["arrived"], log["departed"], spacing_s=SPACING_MS / 1000,
                    per_window=PER_MINUTE, window_s=60.0, max_in_flight=MAX_IN_FLIGHT,
                )  # fmt: skip
                run_s = _last_run_duration(folder / "coinharvest.db")
                bound = (found["requests"] - 1) * SPACING_MS / 1000 + LATENCY_MS / 1000
                found.update(
                    run=i + 1,
                    exit=done.returncode,
                    wall_s=round(wall, 3),
                    run_s=run_s,
                    bound_s=round(bound, 3),
                    x_bound=round(run_s / bound, 2) if run_s and bound > 0 else None,
                )
                results.append(found)
                print(json.dumps(found), flush=True)
                if done.returncode != 0:
                    print(done.stderr[-2000:], file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    bad = [r for r in results if r["spacing"] or r["window"] or r["in_flight"] or r["exit"]]
    return {
        "runs": runs,
        "coins": coins,
        "limits": {
            "spacing_ms": SPACING_MS,
            "max_in_flight": MAX_IN_FLIGHT,
            "per_minute": PER_MINUTE,
            "latency_ms": LATENCY_MS,
        },
        "runs_with_violations_or_errors": len(bad),
        "min_gap_ms": min((r["min_gap_ms"] for r in results if r["min_gap_ms"]), default=None),
        "requests_per_run": sorted({r["requests"] for r in results}),
        "wall_s": sorted(r["wall_s"] for r in results),
        "run_s": sorted(r["run_s"] for r in results if r["run_s"] is not None),
        "x_bound": sorted(r["x_bound"] for r in results if r["x_bound"] is not None),
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--coins", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="save the summary here")
    args = parser.parse_args()
    summary = run(args.runs, args.coins)
    brief = {k: v for k, v in summary.items() if k != "results"}
    print(json.dumps(brief, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 1 if summary["runs_with_violations_or_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
