"""Sample payloads from reference/upstream-apis.md (field names and types are what matter)."""

from __future__ import annotations

from typing import Any

SIMPLE_PRICE_ENTRY: dict[str, Any] = {
    "usd": 23.87,
    "usd_market_cap": 296412345.67,
    "usd_24h_vol": 61234567.89,
    "usd_24h_change": -1.8423,
    "last_updated_at": 1764345600,
}

MARKET_ITEM: dict[str, Any] = {
    "id": "dash",
    "symbol": "dash",
    "name": "Dash",
    "image": "https://coin-images.coingecko.com/coins/images/19/large/dash-logo.png?1696501423",
    "current_price": 23.87,
    "market_cap": 296412345,
    "market_cap_rank": 151,
    "fully_diluted_valuation": 296412345,
    "total_volume": 61234568,
    "high_24h": 24.55,
    "low_24h": 23.41,
    "price_change_24h": -0.4479,
    "price_change_percentage_24h": -1.8423,
    "market_cap_change_24h": -5512345.2,
    "market_cap_change_percentage_24h": -1.8255,
    "circulating_supply": 12417862.3,
    "total_supply": 12417862.3,
    "max_supply": 18900000.0,
    "ath": 1493.59,
    "ath_change_percentage": -98.40,
    "ath_date": "2017-12-20T00:00:00.000Z",
    "atl": 0.213899,
    "atl_change_percentage": 11059.1,
    "atl_date": "2014-02-14T00:00:00.000Z",
    "roi": None,
    "last_updated": "2025-11-28T15:59:51.123Z",
}

COIN_DETAIL: dict[str, Any] = {
    "id": "dash",
    "symbol": "dash",
    "name": "Dash",
    "web_slug": "dash",
    "asset_platform_id": None,
    "platforms": {"": ""},
    "block_time_in_minutes": 2,
    "hashing_algorithm": "X11",
    "categories": ["Cryptocurrency", "Privacy Coins"],
    "genesis_date": "2014-01-19",
    "market_cap_rank": 151,
    "market_data": {
        "current_price": {"usd": 23.87, "btc": 0.000251},
        "market_cap": {"usd": 296412345, "btc": 3118.4},
        "total_volume": {"usd": 61234568, "btc": 644.3},
        "high_24h": {"usd": 24.55},
        "low_24h": {"usd": 23.41},
        "price_change_percentage_24h": -1.8423,
        "circulating_supply": 12417862.3,
        "total_supply": 12417862.3,
        "max_supply": 18900000.0,
        "last_updated": "2025-11-28T15:59:51.123Z",
    },
    "last_updated": "2025-11-28T15:59:51.123Z",
}

THREEXPL_DASH: dict[str, Any] = {
    "data": {
        "blockchains": {
            "dash": {
                "best_block": 2379512,
                "best_block_hash": "00000000000000"
                + "11e9d4b3f0a3cbbd0c7a1f3c0a6b9f5c1e2d4a7b8c9d0e1f2a",
                "best_block_time": "2025-11-28T15:57:41.000000Z",
                "average_fee_24h": {"usd": "0.0004"},
                "events_24h": {"dash-main": 58213, "dash-dip2": 141},
                "mempool_events": {"dash-main": 37, "dash-dip2": None},
                "progress": {"dash-main": 100, "dash-dip2": 100},
            }
        }
    },
    "library": {
        "blockchains": {
            "dash": {
                "title": "Dash",
                "modules": ["dash-main", "dash-dip2"],
                "native_currency": "dash",
                "launch_date": "2014-01-19",
                "is_testnet": False,
            }
        }
    },
    "context": {"code": 200, "request_cost": 1, "time": 0.0123, "api": {"version": "3.0"}},
}

BLOCKCHAIR_DASH: dict[str, Any] = {
    "data": {
        "blocks": 2379513,
        "transactions": 61234567,
        "outputs": 154321098,
        "circulation": 1241786230000000,
        "blocks_24h": 574,
        "transactions_24h": 17423,
        "difficulty": 131234567.89,
        "volume_24h": 151234567890123,
        "mempool_transactions": 12,
        "mempool_size": 5120,
        "mempool_tps": 0.2,
        "mempool_total_fee_usd": 0.01,
        "best_block_height": 2379512,
        "best_block_hash": "00000000000000" + "11e9d4b3f0a3cbbd0c7a1f3c0a6b9f5c1e2d4a7b8c9d0e1f2a",
        "best_block_time": "2025-11-28 15:57:41",
        "blockchain_size": 41234567890,
        "average_transaction_fee_24h": 2260,
        "average_transaction_fee_usd_24h": 0.00054,
        "median_transaction_fee_24h": 226,
        "median_transaction_fee_usd_24h": 0.000054,
        "inflation_24h": 76700000000,
        "inflation_usd_24h": 18308.29,
        "cdd_24h": 183456.7,
        "largest_transaction_24h": {"hash": "9f2c…", "value_usd": 412345.67},
        "nodes": 3512,
        "hashrate_24h": "4321098765432109876",
        "market_price_usd": 23.87,
        "market_price_btc": 0.000251,
        "market_price_usd_change_24h_percentage": -1.84,
        "market_cap_usd": 296412345,
        "market_dominance_percentage": 0.01,
        "suggested_transaction_fee_per_byte_sat": 1,
    },
    "context": {
        "code": 200,
        "source": "A",
        "state": 2379512,
        "cache": {
            "live": False,
            "duration": 60,
            "since": "2025-11-28 15:58:02",
            "until": "2025-11-28 15:59:02",
            "time": 1.9e-6,
        },
        "api": {
            "version": "2.0.95",
            "last_major_update": "2022-11-07 02:00:00",
            "next_major_update": None,
            "documentation": "https://blockchair.com/api/docs",
            "notice": ":)",
        },
        "time": 0.0123,
        "request_cost": 1,
    },
}

NEARBLOCKS_STATS: dict[str, Any] = {
    "stats": [
        {
            "id": 1,
            "total_supply": "1234567890123456789012345678901234",
            "circulating_supply": "1198765432109876543210987654321098",
            "avg_block_time": "1.0912",
            "gas_price": "100000000",
            "nodes_online": 248,
            "near_price": "2.85",
            "near_btc_price": "0.0000300",
            "market_cap": "3512345678.12",
            "volume": "245678901.23",
            "high_24h": "2.93",
            "high_all": "20.44",
            "low_24h": "2.79",
            "low_all": "0.526",
            "change_24": "-1.62",
            "total_txns": "4234567890",
            "tps": 57,
        }
    ]
}

NEARBLOCKS_CHARTS_ROW: dict[str, Any] = {
    "date": "2025-11-28T00:00:00.000Z",
    "near_price": "2.85",
    "txns": "4100000",
}

NANO_BLOCK_COUNT = {"count": "205123456", "unchecked": "14", "cemented": "205123401"}
NANO_AVAILABLE_SUPPLY = {"available": "133248061996216572282917317807824970865"}

COINGECKO_429 = {
    "status": {
        "error_code": 429,
        "error_message": "You've exceeded the Rate Limit. Please visit "
        "https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher "
        "rate limits.",
    }
}
NEARBLOCKS_429 = {
    "message": "You have exceeded your API request limit. Please try again later or upgrade "
    "your plan for higher limits at https://nearblocks.io/apis."
}
NANO_429 = {"error": 429, "message": "Too many requests. Please Wait."}


def assert_shape(actual: Any, sample: Any, path: str = "$", *, nullable: bool = False) -> None:
    """Every field of ``sample`` is in ``actual`` with a compatible JSON type.

    ``None`` in the sample means "nullable, any type". An int sample requires an int; a
    float sample accepts any number. Lists are checked element-wise against the sample's
    first element. With ``nullable``, any field may be ``None`` (CoinGecko's SDK models).
    """
    if sample is None or (nullable and actual is None):
        return
    if isinstance(sample, bool):
        assert isinstance(actual, bool), f"{path}: expected bool, got {actual!r}"
    elif isinstance(sample, int):
        assert type(actual) is int, f"{path}: expected int, got {actual!r}"
    elif isinstance(sample, float):
        ok = isinstance(actual, int | float) and not isinstance(actual, bool)
        assert ok, f"{path}: expected number, got {actual!r}"
    elif isinstance(sample, str):
        assert isinstance(actual, str), f"{path}: expected str, got {actual!r}"
    elif isinstance(sample, list):
        assert isinstance(actual, list), f"{path}: expected list, got {actual!r}"
        for index, item in enumerate(actual):
            assert_shape(item, sample[0], f"{path}[{index}]", nullable=nullable)
    elif isinstance(sample, dict):
        assert isinstance(actual, dict), f"{path}: expected object, got {actual!r}"
        for key, value in sample.items():
            assert key in actual, f"{path}: missing field {key!r}"
            assert_shape(actual[key], value, f"{path}.{key}", nullable=nullable)
