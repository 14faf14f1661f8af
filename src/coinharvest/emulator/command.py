"""The ``coinharvest emulator`` command (Typer-compatible function, registered by ``cli.py``).

Point coinharvest at it with the per-source base URLs it prints, e.g.
``COINGECKO_BASE_URL=http://127.0.0.1:8765/coingecko/api/v3``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

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

_BODIES: dict[str, Literal["json", "text"]] = {"json": "json", "text": "text"}


def build_config(
    config_file: Path | None,
    strict: bool,
    latency_ms: float | None,
    universe: int | None,
    *,
    blockchair_keyless: bool = False,
    nano_pre_v19: bool = False,
    nano_rate_limit_body: Literal["json", "text"] | None = None,
) -> EmulatorConfig:
    """Defaults, then the strict profile, then the file, then the command-line overrides.

    Flags left at their defaults change nothing, so a ``--config`` file's values stand.
    """
    config = strict_profile(EmulatorConfig()) if strict else EmulatorConfig()
    if config_file is not None:
        config = load_config(config_file, config)
    patch: dict[str, Any] = {}
    upstreams: dict[str, dict[str, Any]] = {}
    if universe is not None:
        patch["universe"] = universe
    if latency_ms is not None:
        for name in UPSTREAMS:
            upstreams[name] = {"latency": {"fixed_ms": latency_ms}}
    if blockchair_keyless:
        upstreams.setdefault("blockchair", {})["auth"] = {"key_required": False}
    nano_shape: dict[str, Any] = {}
    if nano_pre_v19:
        nano_shape["pre_v19"] = True
    if nano_rate_limit_body is not None:
        nano_shape["rate_limit_body"] = nano_rate_limit_body
    if nano_shape:
        upstreams.setdefault("nano", {})["shape"] = nano_shape
    if upstreams:
        patch["upstreams"] = upstreams
    return merge_config(config, patch) if patch else config


# The command's options, one alias each (their defaults are in the signature of `emulator`).
_Port: TypeAlias = Annotated[int, typer.Option(help="TCP port to listen on.")]
_Host: TypeAlias = Annotated[
    str, typer.Option(help="Address to bind; keep the loopback default unless you must.")
]
_LatencyMs: TypeAlias = Annotated[
    float | None,
    typer.Option("--latency-ms", min=0, help="Fixed latency added to every upstream (ms)."),
]
_Universe: TypeAlias = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=MAX_UNIVERSE,
        help="Synthetic coins (synth-00001 ...) served besides the 11 default coins.",
    ),
]
_Strict: TypeAlias = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Enforce each upstream's real limits (CoinGecko 3 in flight / 2 s / 30 per "
        "min, Blockchair 30/min + 1440/day, NearBlocks 6/min, ...); violations get 429s.",
    ),
]
_ConfigFile: TypeAlias = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        help="TOML or JSON file with limits, latency, faults, auth, answer shapes and "
        "hidden capacity per upstream (overrides --strict; every other option overrides it).",
    ),
]
_BlockchairKeyless: TypeAlias = Annotated[
    bool,
    typer.Option(
        "--blockchair-keyless",
        help="Serve Blockchair requests without ?key= (as before July 2025). By default "
        "a keyless request gets HTTP 430 'Please apply for an API key', as the real API "
        "answers; any non-empty key is accepted.",
    ),
]
_NanoPreV19: TypeAlias = Annotated[
    bool,
    typer.Option(
        "--nano-pre-v19",
        help="Emulate a Nano node older than V19: block_count answers "
        '{"count": "...", "unchecked": "..."} with no "cemented"; no telemetry action.',
    ),
]
_NanoRateLimitBody: TypeAlias = Annotated[
    str | None,
    typer.Option(
        "--nano-rate-limit-body",
        metavar="json|text",
        help="How Nano answers a rate limit: 'json' (default) = rpc.nano.to's 429 "
        '{"error":429,"message":"Too many requests. Please Wait."}; \'text\' = '
        "NanoRPCProxy's 429 'Max allowed requests of N reached. Time left: Ssec' "
        "(not JSON; X-RateLimit-Limit/-Remaining/-Reset headers, no Retry-After).",
    ),
]


def emulator(
    port: _Port = 8765,
    host: _Host = "127.0.0.1",
    latency_ms: _LatencyMs = None,
    universe: _Universe = None,
    strict: _Strict = False,
    config: _ConfigFile = None,
    blockchair_keyless: _BlockchairKeyless = False,
    nano_pre_v19: _NanoPreV19 = False,
    nano_rate_limit_body: _NanoRateLimitBody = None,
) -> None:
    """Serve emulated CoinGecko, 3xpl, Blockchair, NearBlocks and Nano RPC APIs on one port.

    Each upstream lives under its own path prefix; set <SRC>_BASE_URL to the URLs printed
    at start-up. Counters: GET /__emulator__/stats (served requests over time:
    GET /__emulator__/trace); reset: POST /__emulator__/reset;
    change settings live: POST /__emulator__/config (JSON, same schema as --config).

    Answers follow the real payloads: Blockchair needs a key (BLOCKCHAIR_API_KEY=anything);
    its ethereum and monero stats have their own key sets; CoinGecko lists chia (and
    synth-NNNNN with N % 20 == 11) with market_cap 0, circulating_supply 0 and no rank;
    3xpl answers only best_block* for synth-NNNNN with N % 10 == 3.
    """
    body = _rate_limit_body(nano_rate_limit_body)
    try:
        settings = build_config(
            config,
            strict,
            latency_ms,
            universe,
            blockchair_keyless=blockchair_keyless,
            nano_pre_v19=nano_pre_v19,
            nano_rate_limit_body=body,
        )
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    _announce(settings, host, port)
    serve(settings, host, port)


def _rate_limit_body(value: str | None) -> Literal["json", "text"] | None:
    """The ``--nano-rate-limit-body`` value, checked."""
    body = None if value is None else _BODIES.get(value)
    if value is not None and body is None:
        raise typer.BadParameter("use 'json' or 'text'", param_hint="--nano-rate-limit-body")
    return body


def _announce(settings: EmulatorConfig, host: str, port: int) -> None:
    """Print where the emulator listens and the base URLs to point coinharvest at."""
    root = f"http://{host}:{port}"
    typer.echo(f"coinharvest emulator on {root} (universe: {settings.universe} synthetic coins)")
    for name, url in base_urls_for(root).items():
        typer.echo(f"  {_ENV_NAMES[name]}_BASE_URL={url}")
    if settings.upstream("blockchair").auth.key_required is not False:
        typer.echo("  Blockchair answers 430 without a key: set BLOCKCHAIR_API_KEY (any value)")
    typer.echo(f"  stats: {root}/__emulator__/stats")
