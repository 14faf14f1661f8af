"""`collect --output influx` and `export --format influx` as Telegraf runs them: subprocesses
against the emulator on loopback; stdout must be line protocol and nothing else, one group
of lines per coin, each written as its coin completes; the summary and logs on stderr."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from influxkit import Point, parse

from coinharvest.cli.collect_output import stored_in
from coinharvest.config import Settings, load_settings
from coinharvest.demo import DEMO_KEY, demo_config
from coinharvest.emulator import run_emulator
from coinharvest.emulator.config import LatencyConfig
from coinharvest.models import CoinResult, CoinStatus, Confidence, Observation

COINS = {"BTC", "ETH", "DASH", "DGB", "XMR", "RVN", "XCH", "XEC", "XNO", "NEAR", "ICP"}
#: The emulated Nano RPC answers this late, so XNO completes well after the other coins.
NANO_LATENCY_MS = 1500.0
#: Variables a developer's shell may set that would change the runs.
OURS = {name.upper() for name in Settings.model_fields} | {"NANO_RPC_URL", "DEBUG", "COINS_FILE"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[dict[str, str]]:
    """The demo's emulator (real limits) with a slow Nano, in its own thread and loop; yields
    the sources' base-URL settings."""
    config = demo_config()
    nano = config.upstream("nano").model_copy(
        update={"latency": LatencyConfig(fixed_ms=NANO_LATENCY_MS, jitter_ms=0)}
    )
    config = config.model_copy(update={"upstreams": {**config.upstreams, "nano": nano}})
    ready: list[dict[str, str]] = []
    started, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        async with run_emulator(config) as emu:
            ready.append(emu.base_urls)
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert started.wait(30), "the emulator did not start"
    urls = ready[0]
    yield {
        "COINGECKO_BASE_URL": urls["coingecko"],
        "THREEXPL_BASE_URL": urls["3xpl"],
        "BLOCKCHAIR_BASE_URL": urls["blockchair"],
        "NEARBLOCKS_BASE_URL": urls["nearblocks"],
        "NANO_BASE_URL": urls["nano"],
        "BLOCKCHAIR_API_KEY": DEMO_KEY,
    }
    stop.set()
    thread.join(10)


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any coinharvest setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in OURS}
    return {**env, "COLUMNS": "200", **extra}


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coinharvest", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def values(points: list[Point]) -> set[tuple[str, str, str, int, float]]:
    return {
        (p.tags["symbol"], p.tags["source"], metric, p.ns, value)
        for p in points
        for metric, value in p.fields.items()
    }


def test_collect_streams_only_line_protocol_coin_by_coin(
    emulator: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "harvest.db"
    env = cli_env({**emulator, "COINHARVEST_DB": str(db)})
    with (tmp_path / "stderr.txt").open("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coinharvest", "collect", "--output", "influx"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,  # unbuffered: `communicate` reads the pipe itself, past any buffer
        )
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        running_after_first_coin = proc.poll() is None  # XNO still waits for the slow Nano
        rest = proc.communicate(timeout=60)[0].decode()
        stderr.seek(0)
        err = stderr.read()
    assert proc.returncode == 0, err
    assert running_after_first_coin, "the first coin's lines came only at exit"
    points = parse(first + rest)
    symbols = [p.tags["symbol"] for p in points]
    runs = [s for i, s in enumerate(symbols) if i == 0 or symbols[i - 1] != s]
    assert sorted(runs) == sorted(COINS), f"one group of lines per coin: {runs}"
    assert runs[-1] == "XNO"
    assert {p.measurement for p in points} == {"coin"}
    # The summary and the logs went to stderr, and the values to the database.
    assert "11 ok, 0 failed, 0 deferred of 11" in err
    assert f"stored in {db.resolve()}" in err
    assert "INFO engine" in err
    exported = run_cli("export", "--format", "influx", cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    assert values(parse(exported.stdout)) == values(points)


def test_collect_with_the_table_says_where_it_stored(
    emulator: dict[str, str], tmp_path: Path
) -> None:
    env = cli_env({**emulator, "COINHARVEST_DB": "sub dir [x]/h.db"})
    (tmp_path / "sub dir [x]").mkdir()
    result = run_cli("collect", "--coins", str(_one_coin(tmp_path)), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "1 ok, 0 failed" in result.stdout
    assert f"stored in {(tmp_path / 'sub dir [x]' / 'h.db').resolve()}\n" in result.stdout


def _one_coin(tmp_path: Path) -> Path:
    path = tmp_path / "coins.toml"
    path.write_text(
        '[[coin]]\nsymbol = "ICP"\nname = "Internet Computer"\n'
        'ids = { coingecko = "internet-computer" }\n',
        encoding="utf-8",
    )
    return path


def test_stored_in_hides_a_postgresql_password() -> None:
    url = "postgresql+asyncpg://app:s3cret@db.example:5432/coins"
    line = stored_in(load_settings({"DATABASE_URL": url}, env_file=None))
    assert line == "stored in postgresql+asyncpg://app:***@db.example:5432/coins"


def test_export_influx_from_a_seeded_database(tmp_path: Path) -> None:
    from coinharvest.storage import Store

    db = tmp_path / "seeded.db"
    at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    observations = [
        Observation("BTC", "coingecko", "price_usd", 91234.5, at),
        Observation("BTC", "coingecko", "market_cap_usd", None, at),  # unknown: left out
        Observation("BTC", "derived", "annual_tx_value_usd", 1e12, at, Confidence.LOW, True),
    ]

    async def seed() -> None:
        async with await Store.from_url(f"sqlite+aiosqlite:///{db}") as store:
            await store.run_started("run1", "manual", at, [])
            result = CoinResult("BTC", "Bitcoin", CoinStatus.OK, at, 0.1, 1, ("coingecko",))
            result.observations = observations
            await store.coin_completed("run1", result)

    asyncio.run(seed())
    env = cli_env({"COINHARVEST_DB": str(db)})
    result = run_cli("export", "-f", "influx", "-o", "out.lp", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "exported 2 observations to out.lp" in result.stderr
    ns = 1_795_860_000_000_000_000
    assert (tmp_path / "out.lp").read_text(encoding="utf-8") == (
        f"coin,confidence=high,estimated=false,source=coingecko,symbol=BTC price_usd=91234.5 {ns}\n"
        "coin,confidence=low,estimated=true,source=derived,symbol=BTC "
        f"annual_tx_value_usd=1000000000000.0 {ns}\n"
    )
