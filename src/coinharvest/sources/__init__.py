"""Sources: one module per upstream API, all implementing `coinharvest.sources.base.Source`.

Plug-in authors need only what this package exports: `Source` (the contract), and for
HTTP sources `HttpSource` / `HttpOptions` (shared client, error translation, key
redaction) and `JsonReader` (field access that fails with a `BadResponse` naming the field).
The registry of sources is `coinharvest.sources.registry`.
"""

from __future__ import annotations

from coinharvest.sources.base import FetchResult, Source
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpClient, HttpOptions, HttpSource

__all__ = ["FetchResult", "HttpClient", "HttpOptions", "HttpSource", "JsonReader", "Source"]
