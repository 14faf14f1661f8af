"""The per-source settings (``<SRC>_API_KEY``, ``MAX_<SRC>_CONCURRENCY``, ...), one block per
built-in source; `coinharvest.config.Settings` inherits them and reads them with
``Settings.source(name)``. Unset = the source's default."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field

from coinharvest.settings_types import (
    ApiKey,
    BatchSize,
    MinIntervalMs,
    QuotaCount,
    RatePerMinute,
    SourceConcurrency,
    Url,
)

__all__ = ["SourceFields"]


class SourceFields(BaseModel):
    """The built-in sources' variables (see `coinharvest.config`'s module docstring)."""

    coingecko_api_key: ApiKey | None = None
    coingecko_base_url: Url | None = None
    max_coingecko_concurrency: SourceConcurrency | None = None
    coingecko_min_interval_ms: MinIntervalMs | None = None
    coingecko_rate_limit_per_minute: RatePerMinute | None = None
    coingecko_batch_size: BatchSize | None = None
    coingecko_quota_per_day: QuotaCount | None = None
    coingecko_quota_per_month: QuotaCount | None = None

    threexpl_api_key: ApiKey | None = None
    threexpl_base_url: Url | None = None
    max_threexpl_concurrency: SourceConcurrency | None = None
    threexpl_min_interval_ms: MinIntervalMs | None = None
    threexpl_rate_limit_per_minute: RatePerMinute | None = None
    threexpl_batch_size: BatchSize | None = None
    threexpl_quota_per_day: QuotaCount | None = None
    threexpl_quota_per_month: QuotaCount | None = None

    blockchair_api_key: ApiKey | None = None
    blockchair_base_url: Url | None = None
    max_blockchair_concurrency: SourceConcurrency | None = None
    blockchair_min_interval_ms: MinIntervalMs | None = None
    blockchair_rate_limit_per_minute: RatePerMinute | None = None
    blockchair_batch_size: BatchSize | None = None
    blockchair_quota_per_day: QuotaCount | None = None
    blockchair_quota_per_month: QuotaCount | None = None

    nearblocks_api_key: ApiKey | None = None
    nearblocks_base_url: Url | None = None
    max_nearblocks_concurrency: SourceConcurrency | None = None
    nearblocks_min_interval_ms: MinIntervalMs | None = None
    nearblocks_rate_limit_per_minute: RatePerMinute | None = None
    nearblocks_batch_size: BatchSize | None = None
    nearblocks_quota_per_day: QuotaCount | None = None
    nearblocks_quota_per_month: QuotaCount | None = None

    nano_api_key: ApiKey | None = None
    #: NANO_BASE_URL, or its alias NANO_RPC_URL (NANO_BASE_URL wins if both are set).
    nano_base_url: Url | None = Field(
        default=None, validation_alias=AliasChoices("nano_base_url", "nano_rpc_url")
    )
    max_nano_concurrency: SourceConcurrency | None = None
    nano_min_interval_ms: MinIntervalMs | None = None
    nano_rate_limit_per_minute: RatePerMinute | None = None
    nano_batch_size: BatchSize | None = None
    nano_quota_per_day: QuotaCount | None = None
    nano_quota_per_month: QuotaCount | None = None
