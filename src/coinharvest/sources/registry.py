"""Which sources exist, how they are built, and the limits and batch sizes they run with.

One dict maps a source name to its class. It holds the built-ins (`BUILTIN_SOURCES`) and,
fed into the same dict, plug-ins named by ``EXTRA_SOURCES=package.module:ClassName[,…]`` or
registered under the entry-point group ``coinharvest.sources`` (see docs/custom-sources.md).
Every loaded class must be a `Source` subclass with a non-empty string ``name``; anything
else is a one-line `ConfigError`.

Building a source: ``cls.from_settings(settings, options)`` (declared on `Source`: by default
``cls()``; `HttpSource` passes its `HttpOptions`: base URL, key, timeout, transport).

Limits: `effective_limits` applies ``settings.source(name)`` overrides (the
``MAX_<SRC>_CONCURRENCY``, ``<SRC>_MIN_INTERVAL_MS``, ``<SRC>_RATE_LIMIT_PER_MINUTE``
variables; plug-ins use their upper-cased name as ``<SRC>``) on each source's defaults, then
adds `SPACING_GUARD_S` to the spacing and the window. The guard exists because a server
measures spacing on its own receive times: the engine's starts are exact on the event loop
clock, but each request then spends a slightly different time in the client and the network,
so two starts exactly ``min_interval`` apart can arrive a few milliseconds closer. 10 ms
covers twice the jitter measured on loopback and costs 0.5 % of CoinGecko's 2 s spacing
(the measurement is in docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from importlib import import_module
from importlib.metadata import entry_points

from coinharvest.config import SOURCE_ENV_PREFIX, Settings, plugin_env_prefix
from coinharvest.errors import ConfigError
from coinharvest.models import SourceLimits
from coinharvest.sources.base import Source
from coinharvest.sources.blockchair import BlockchairSource
from coinharvest.sources.coingecko import CoinGeckoSource
from coinharvest.sources.http import HttpOptions
from coinharvest.sources.nano import NanoSource
from coinharvest.sources.nearblocks import NearBlocksSource
from coinharvest.sources.threexpl import ThreeXplSource
from coinharvest.sources.wire import Transport

__all__ = [
    "BUILTIN_SOURCES",
    "ENTRY_POINT_GROUP",
    "SPACING_GUARD_S",
    "available_sources",
    "build_sources",
    "effective_batch_sizes",
    "effective_limits",
    "entry_point_sources",
    "load_source_class",
]

#: The sources coinharvest ships with.
BUILTIN_SOURCES: dict[str, type[Source]] = {
    "coingecko": CoinGeckoSource,
    "3xpl": ThreeXplSource,
    "blockchair": BlockchairSource,
    "nearblocks": NearBlocksSource,
    "nano": NanoSource,
}
#: Entry-point group under which installed packages register plug-in sources.
ENTRY_POINT_GROUP = "coinharvest.sources"
#: Added to every non-zero spacing and to every window (see the module docstring).
SPACING_GUARD_S = 0.010


def load_source_class(spec: str) -> type[Source]:
    """Import ``package.module:ClassName`` and check it is a `Source` subclass.

    :raises ConfigError: bad syntax, module or class missing, or not a `Source`.
    """
    module_name, sep, class_name = spec.strip().partition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError(f"EXTRA_SOURCES entry {spec!r}: expected package.module:ClassName")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"EXTRA_SOURCES entry {spec!r}: cannot import {module_name}: {exc}"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"EXTRA_SOURCES entry {spec!r}: {module_name} has no {class_name}")
    return _checked(cls, f"EXTRA_SOURCES entry {spec!r}")


def entry_point_sources() -> dict[str, type[Source]]:
    """Sources registered under `ENTRY_POINT_GROUP` by installed packages, by name.

    The entry point's name must equal the class's ``name``.
    """
    found: dict[str, type[Source]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name!r} ({ep.value})"
        try:
            loaded = ep.load()
        except Exception as exc:  # an import error of any kind in a third-party package
            raise ConfigError(f"{where}: cannot load: {type(exc).__name__}: {exc}") from None
        cls = _checked(loaded, where)
        if cls.name != ep.name:
            raise ConfigError(
                f"{where}: class {cls.__name__} is named {cls.name!r}, not {ep.name!r}"
            )
        found[ep.name] = cls
    return found


def available_sources(settings: Settings) -> dict[str, type[Source]]:
    """Built-ins, then ``EXTRA_SOURCES``, then entry points, by source name.

    :raises ConfigError: a plug-in cannot be loaded, or its name is taken by another class.
    """
    sources = dict(BUILTIN_SOURCES)
    specs = [s for s in settings.extra_sources.split(",") if s.strip()]
    plugins = [(f"EXTRA_SOURCES entry {s.strip()!r}", load_source_class(s)) for s in specs]
    plugins += [(f"entry point {name!r}", cls) for name, cls in entry_point_sources().items()]
    for origin, cls in plugins:
        taken = sources.get(cls.name)
        if taken is not None and taken is not cls:
            raise ConfigError(
                f"{origin}: source name {cls.name!r} is already used by "
                f"{taken.__module__}.{taken.__qualname__}"
            )
        sources[cls.name] = cls
    return sources


def build_sources(
    settings: Settings,
    *,
    names: Collection[str] | None = None,
    transport: Transport | None = None,
    base_urls: Mapping[str, str] | None = None,
) -> dict[str, Source]:
    """Instances of the sources named `names` (None: every available source).

    :param transport: the `Transport` every HTTP source uses (tests; see `HttpOptions`).
    :param base_urls: per source name, a base URL that wins over ``<SRC>_BASE_URL``
        (``demo`` points every source at the emulator this way).
    :raises ConfigError: an unknown name, or a plug-in that cannot be loaded or built.
    """
    classes = available_sources(settings)
    wanted = list(classes) if names is None else list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in classes]
    if unknown:
        known = ", ".join(sorted(classes))
        raise ConfigError(f"unknown source {unknown[0]!r} (known: {known})")
    built: dict[str, Source] = {}
    for name in wanted:
        built[name] = _build(
            classes[name], settings, _options(settings, name, transport, base_urls)
        )
    return built


def effective_limits(
    settings: Settings, sources: Mapping[str, Source], *, guard_s: float = SPACING_GUARD_S
) -> dict[str, SourceLimits]:
    """Each source's default limits with the user's overrides and the spacing guard applied."""
    return {
        name: _guarded(settings.source(name).apply(source.default_limits), guard_s)
        for name, source in sources.items()
    }


def effective_batch_sizes(settings: Settings, sources: Mapping[str, Source]) -> dict[str, int]:
    """Each source's batch size, or ``<SRC>_BATCH_SIZE`` when set.

    :raises ConfigError: the configured size exceeds the source's ``max_batch_size``.
    """
    sizes: dict[str, int] = {}
    for name, source in sources.items():
        size = settings.source(name).batch_size or source.batch_size
        ceiling = source.max_batch_size
        if ceiling is not None and size > ceiling:
            raise ConfigError(
                f"{_env_prefix(name)}_BATCH_SIZE={size} is invalid: "
                f"must be an integer from 1 to {ceiling}"
            )
        sizes[name] = size
    return sizes


def _checked(obj: object, where: str) -> type[Source]:
    if not isinstance(obj, type) or not issubclass(obj, Source):
        raise ConfigError(f"{where}: {obj!r} is not a subclass of coinharvest.sources.Source")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: {obj.__qualname__} has no source name (set `name = ...`)")
    return obj


def _options(
    settings: Settings,
    name: str,
    transport: Transport | None,
    base_urls: Mapping[str, str] | None,
) -> HttpOptions:
    overrides = settings.source(name)
    base_url = (base_urls or {}).get(name) or overrides.base_url
    return HttpOptions(
        base_url,
        overrides.api_key,
        settings.http_timeout_seconds,
        transport,
        max_body_bytes=settings.max_response_bytes,
    )


def _build(cls: type[Source], settings: Settings, options: HttpOptions) -> Source:
    try:
        source = cls.from_settings(settings, options)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"source {cls.name!r}: cannot build: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(source, Source):
        raise ConfigError(f"source {cls.name!r}: from_settings returned {source!r}, not a Source")
    return source


def _guarded(limits: SourceLimits, guard_s: float) -> SourceLimits:
    spacing = limits.min_interval_s + guard_s if limits.min_interval_s > 0 else 0.0
    window = limits.window_s + guard_s if limits.rate_per_window is not None else limits.window_s
    return replace(limits, min_interval_s=spacing, window_s=window)


def _env_prefix(name: str) -> str:
    return SOURCE_ENV_PREFIX.get(name) or plugin_env_prefix(name)
