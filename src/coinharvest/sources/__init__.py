"""Sources: one module per upstream API, all implementing `coinharvest.sources.base.Source`."""

from __future__ import annotations

from coinharvest.sources.base import FetchResult, Source

__all__ = ["FetchResult", "Source"]
