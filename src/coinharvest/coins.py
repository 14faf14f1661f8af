"""The coin registry: which coins to collect, and their id at every source that serves them.

Coins come from a TOML file: the packaged default (`default_coins_path`), ``COINS_FILE`` or
``--coins PATH``. One ``[[coin]]`` table per coin::

    [[coin]]
    symbol = "DASH"                 # required, unique (case-insensitive), see below
    name = "Dash"                   # required, 1-128 printable characters, no '<' or '>'
    priority = 3                    # optional, default 5; lower = collected first
    enabled = true                  # optional, default true
    ids = { coingecko = "dash", 3xpl = "dash", blockchair = "dash" }   # required, ≥ 1 source
    fallbacks = [["3xpl", "blockchair"]]   # optional: ordered fallback chains among `ids`

A symbol is 1-32 characters of A-Z, a-z, 0-9, ``.``, ``-``, ``_`` (the database column holds
32; the HTTP API's path pattern accepts the same) and is upper-cased, as every reader of the
database looks symbols up upper-cased. An id is 1-128 printable characters without spaces.
Surrounding spaces are ignored; a newline, a control character or HTML is refused.

`Coin.chains` holds every fallback list as a chain and every other source in ``ids`` as a chain
of one, ordered by where each chain's first source appears in ``ids``. For the table above:
``(("coingecko",), ("3xpl", "blockchair"))``.

Any problem raises `ConfigError` with one line naming the file, the line of the coin's
``[[coin]]`` header and the coin::

    coins.toml line 12: coin 'BTC': unknown source 'coinbase' (known: 3xpl, blockchair, ...)
    coins.toml line 20: coin #3: symbol '<b>' is invalid: must be 1-32 characters of A-Z, ...
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from coinharvest.errors import ConfigError
from coinharvest.models import DEFAULT_PRIORITY, Coin

__all__ = ["BUILTIN_SOURCE_NAMES", "default_coins_path", "load_coins"]

#: Names of the sources coinharvest ships with, as used in ``ids`` and ``fallbacks``.
BUILTIN_SOURCE_NAMES: tuple[str, ...] = ("coingecko", "3xpl", "blockchair", "nearblocks", "nano")

_COIN_KEYS = ("symbol", "name", "priority", "enabled", "ids", "fallbacks")
_SYMBOL = re.compile(r"[A-Za-z0-9._-]{1,32}")
_SYMBOL_RULE = "must be 1-32 characters of A-Z, a-z, 0-9, '.', '-', '_'"
_NAME_MAX = 128  # the database column
_NAME_RULE = f"must be 1-{_NAME_MAX} printable characters without '<' or '>'"
_ID_MAX = 128
_ID_RULE = f"must be 1-{_ID_MAX} printable characters without spaces"
# tomllib reports no positions, so a coin's line is found by counting table headers.
_COIN_HEADER = re.compile(r"^\s*\[\[\s*coin\s*\]\]")


class _Problem(ValueError):
    """A problem with one coin; `load_coins` adds the file, line and coin to the message."""


def default_coins_path() -> Path:
    """The coins file shipped in the package (the seed's 11 coins)."""
    return Path(__file__).with_name("data") / "coins.toml"


def load_coins(
    path: Path | None = None, known_sources: Collection[str] = BUILTIN_SOURCE_NAMES
) -> list[Coin]:
    """The enabled coins of `path` (None: the packaged default), by priority then file order.

    Every coin is validated, disabled ones included.

    :param known_sources: source names that ``ids`` and ``fallbacks`` may use.
    :raises ConfigError: the file is missing, unreadable, not TOML, or a coin is invalid.
    """
    path = default_coins_path() if path is None else Path(path)
    text = _read(path)
    entries = _entries(_parse(text, path), path)
    lines = [n for n, row in enumerate(text.splitlines(), 1) if _COIN_HEADER.match(row)]
    coins: list[Coin] = []
    first_line: dict[str, int | None] = {}
    for index, entry in enumerate(entries):
        line = lines[index] if index < len(lines) else None
        try:
            coin, enabled = _build(entry, known_sources)
            _check_unique(coin.symbol, first_line, line)
        except _Problem as exc:
            where = f"{path} line {line}" if line is not None else str(path)
            raise ConfigError(f"{where}: {_label(entry, index)}: {exc}") from None
        if enabled:
            coins.append(coin)
    return sorted(coins, key=lambda coin: coin.priority)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"coins file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read coins file {path}: {exc.strerror}") from None


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"{path}: invalid TOML: {message}") from None


def _entries(data: Mapping[str, Any], path: Path) -> list[Any]:
    """The ``[[coin]]`` tables of a parsed file; anything else at top level is an error."""
    extra = sorted(key for key in data if key != "coin")
    if extra:
        names = ", ".join(repr(key) for key in extra)
        raise ConfigError(f"{path}: unknown top-level key {names} (expected [[coin]] tables)")
    entries = data.get("coin")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[coin]] tables")
    return entries


def _build(entry: Any, known_sources: Collection[str]) -> tuple[Coin, bool]:
    """The coin described by one ``[[coin]]`` table, and whether it is enabled."""
    if not isinstance(entry, dict):
        raise _Problem("must be a table")
    unknown = sorted(set(entry) - set(_COIN_KEYS))
    if unknown:
        raise _Problem(f"unknown key {unknown[0]!r} (allowed: {', '.join(_COIN_KEYS)})")
    symbol, name = _symbol(_text(entry, "symbol")), _name(_text(entry, "name"))
    ids = _ids(entry.get("ids"), known_sources)
    coin = Coin(
        symbol=symbol,
        name=name,
        ids=ids,
        chains=_chains(entry.get("fallbacks", []), ids),
        priority=_priority(entry.get("priority", DEFAULT_PRIORITY)),
    )
    return coin, _enabled(entry.get("enabled", True))


def _label(entry: Any, index: int) -> str:
    """``coin 'BTC'``, or ``coin #3`` when the table has no valid symbol."""
    symbol = entry.get("symbol") if isinstance(entry, dict) else None
    if isinstance(symbol, str) and _SYMBOL.fullmatch(symbol.strip(" ")):
        return f"coin {symbol.strip(' ')!r}"
    return f"coin #{index + 1}"


def _text(entry: dict[str, Any], key: str) -> str:
    """A non-empty string, without surrounding spaces (other whitespace is kept, and refused)."""
    value = entry.get(key)
    if value is None:
        raise _Problem(f"missing {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise _Problem(f"{key!r} must be a non-empty string, not {value!r}")
    return value.strip(" ")


def _shown(value: str) -> str:
    """`value` for a one-line message: quoted and escaped, a long one cut with its length."""
    if len(value) <= 40:
        return repr(value)
    return f"{value[:40]!r}… ({len(value)} characters)"


def _symbol(value: str) -> str:
    if not _SYMBOL.fullmatch(value):
        raise _Problem(f"symbol {_shown(value)} is invalid: {_SYMBOL_RULE}")
    return value.upper()


def _name(value: str) -> str:
    if len(value) > _NAME_MAX or not value.isprintable() or "<" in value or ">" in value:
        raise _Problem(f"name {_shown(value)} is invalid: {_NAME_RULE}")
    return value


def _coin_id(source: str, value: str) -> str:
    if len(value) > _ID_MAX or not value.isprintable() or any(c.isspace() for c in value):
        raise _Problem(f"id {_shown(value)} at {source!r} is invalid: {_ID_RULE}")
    return value


def _priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Problem(f"'priority' must be an integer (lower = collected first), not {value!r}")
    return value


def _enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Problem(f"'enabled' must be true or false, not {value!r}")
    return value


def _ids(value: Any, known_sources: Collection[str]) -> dict[str, str]:
    """``ids``: at least one known source, each with a non-empty id."""
    if value is None or value == {}:
        raise _Problem("has no source (add at least one to 'ids')")
    if not isinstance(value, dict):
        raise _Problem(f"'ids' must be a table of source = id, not {value!r}")
    ids: dict[str, str] = {}
    for source, coin_id in value.items():
        if source not in known_sources:
            known = ", ".join(sorted(known_sources))
            raise _Problem(f"unknown source {source!r} (known: {known})")
        if not isinstance(coin_id, str) or not coin_id.strip():
            raise _Problem(f"id at {source!r} must be a non-empty string, not {coin_id!r}")
        ids[source] = _coin_id(source, coin_id.strip(" "))
    return ids


def _chains(value: Any, ids: Mapping[str, str]) -> tuple[tuple[str, ...], ...]:
    """Fallback chains plus a chain of one per other source, ordered as ``ids``."""
    if not isinstance(value, list) or not all(isinstance(chain, list) for chain in value):
        raise _Problem(f"'fallbacks' must be a list of lists of sources, not {value!r}")
    listed: set[str] = set()
    for chain in value:
        if not chain:
            raise _Problem("'fallbacks' has an empty chain")
        for source in chain:
            _check_fallback(source, ids, listed)
            listed.add(source)
    chains = [tuple(chain) for chain in value] + [(s,) for s in ids if s not in listed]
    order = list(ids)
    return tuple(sorted(chains, key=lambda chain: order.index(chain[0])))


def _check_fallback(source: Any, ids: Mapping[str, str], listed: set[str]) -> None:
    if not isinstance(source, str) or source not in ids:
        raise _Problem(f"fallback source {source!r} is not in its ids ({', '.join(ids)})")
    if source in listed:
        raise _Problem(f"fallback source {source!r} is listed twice")


def _check_unique(symbol: str, first_line: dict[str, int | None], line: int | None) -> None:
    key = symbol.upper()
    if key in first_line:
        first = first_line[key]
        where = f" (first at line {first})" if first is not None else ""
        raise _Problem(f"duplicate symbol{where}")
    first_line[key] = line
