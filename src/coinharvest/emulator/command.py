"""The ``coinharvest emulator`` command (Typer-compatible function, registered by ``cli.py``).

Point coinharvest at it with the per-source base URLs it prints, e.g.
``COINGECKO_BASE_URL=http://127.0.0.1:8765/coingecko/api/v3``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from coinharvest.emulator.config import (
    MAX_UNIVERSE,
    UPSTREAMS,
    EmulatorConfig,
    load_config,
    merge_config,
)
from coinharvest.emulator.profiles import strict as strict_profile
from coinharvest.emulator.runner import base_urls_for, serve

__all__ = ["build_config", "emulator"]

_ENV_NAMES = {
    "coingecko": "COINGECKO",
    "3xpl": "THREEXPL",
    "blockchair": "BLOCKCHAIR",
    "nearblocks": "NEARBLOCKS",
    "nano": "NANO",
}


def build_config(
    config_file: Path | None, strict: bool, latency_ms: float | None, universe: int | None
) -> EmulatorConfig:
    """Defaults, then the strict profile, then the file, then the command-line overrides."""
    config = strict_profile(EmulatorConfig()) if strict else EmulatorConfig()
    if config_file is not None:
        config = load_config(config_file, config)
    patch: dict[str, object] = {}
    if universe is not None:
        patch["universe"] = universe
    if latency_ms is not None:
        patch["upstreams"] = {name: {"latency": {"fixed_ms": latency_ms}} for name in UPSTREAMS}
    return merge_config(config, patch) if patch else config


def emulator(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8765,
    host: Annotated[
        str, typer.Option(help="Address to bind; keep the loopback default unless you must.")
    ] = "127.0.0.1",
    latency_ms: Annotated[
        float | None,
        typer.Option("--latency-ms", min=0, help="Fixed latency added to every upstream (ms)."),
    ] = None,
    universe: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_UNIVERSE,
            help="Synthetic coins (synth-00001 ...) served besides the 11 default coins.",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Enforce each upstream's real limits (CoinGecko 3 in flight / 2 s / 30 per "
            "min, Blockchair 30/min + 1440/day, NearBlocks 6/min, ...); violations get 429s.",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            exists=True,
            dir_okay=False,
            help="TOML or JSON file with limits, latency, faults and auth per upstream "
            "(overrides --strict; --latency-ms and --universe override it).",
        ),
    ] = None,
) -> None:
    """Serve emulated CoinGecko, 3xpl, Blockchair, NearBlocks and Nano RPC APIs on one port.

    Each upstream lives under its own path prefix; set <SRC>_BASE_URL to the URLs printed
    at start-up. Counters: GET /__emulator__/stats; reset: POST /__emulator__/reset;
    change settings live: POST /__emulator__/config (JSON, same schema as --config).
    """
    try:
        settings = build_config(config, strict, latency_ms, universe)
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    root = f"http://{host}:{port}"
    typer.echo(f"coinharvest emulator on {root} (universe: {settings.universe} synthetic coins)")
    for name, url in base_urls_for(root).items():
        typer.echo(f"  {_ENV_NAMES[name]}_BASE_URL={url}")
    typer.echo(f"  stats: {root}/__emulator__/stats")
    serve(settings, host, port)
