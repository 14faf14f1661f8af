"""Sources: one module per upstream API, all implementing `coinharvest.sources.base.Source`.

Plug-in authors need only what this package exports: `Source` (the contract), and for
HTTP sources `HttpSource` / `HttpOptions` (shared client, error translation, key
redaction), `JsonReader` (envelope access that fails with a `BadResponse` naming the field)
and `Reading` (one coin's metrics, field by field: a bad field drops that metric, with a note).
The registry of sources is `coinharvest.sources.registry`.
"""

from __future__ import annotations

from coinharvest.sources.base import FetchResult, Source
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpClient, HttpOptions, HttpSource
from coinharvest.sources.reading import Reading

__all__ = [
    "FetchResult",
    "HttpClient",
    "HttpOptions",
    "HttpSource",
    "JsonReader",
    "Reading",
    "Source",
]
