"""`coinharvest.units`: each metric's kind and how a table shows its values."""

from __future__ import annotations

import pytest

from coinharvest.units import METRIC_KINDS, Kind, kind_of, show


@pytest.mark.parametrize(
    ("metric", "value", "table", "exact"),
    [
        ("block_height", 2396537.0, "2,396,537", "2,396,537"),
        ("block_height", 2396538.0, "2,396,538", "2,396,538"),
        ("market_cap_usd", 1.88752e12, "$1.89T", "$1,887,520,000,000"),
        ("volume_24h_usd", 4.125e8, "$412.5M", "$412,500,000"),
        ("volume_24h_usd", 912_345.0, "$912,345", "$912,345"),
        ("price_usd", 97412.349, "$97,412.35", "$97,412.35"),
        ("price_usd", 0.00001234, "$0.00001234", "$0.00001234"),
        ("price_usd", 0.5, "$0.50", "$0.50"),
        ("block_age_s", 420.0, "7 min", "7 min"),
        ("block_age_s", 3900.0, "1 h 05 min", "1 h 05 min"),
        ("block_age_s", 45.0, "45 s", "45 s"),
        ("block_age_s", 361.973, "6 min 02 s", "6 min 02 s"),
        ("price_change_24h_pct", -3.2, "-3.20 %", "-3.20 %"),
        ("circulating_supply", 19957318.3, "19,957,318", "19,957,318"),
        ("tps", 0.000123456, "0.000123456", "0.000123456"),
        ("price_usd", None, "", ""),
    ],
)
def test_values_show_by_kind(metric: str, value: float | None, table: str, exact: str) -> None:
    assert show(metric, value) == table
    assert show(metric, value, exact=exact is not None) == exact
    assert "e+" not in show(metric, value) and "e-" not in show(metric, value)


def test_unknown_metrics_fall_back_on_their_suffix() -> None:
    assert kind_of("fees_24h_usd") is Kind.USD_AMOUNT
    assert kind_of("uptime_s") is Kind.DURATION
    assert kind_of("peer_count") is Kind.COUNT
    assert kind_of("difficulty") is Kind.NUMBER
    assert kind_of("price_usd") is Kind.USD_PRICE  # the table wins over the suffix
    assert {kind_of(m) for m in METRIC_KINDS} == set(Kind)


@pytest.mark.parametrize(
    ("metric", "value", "shown"),
    [
        ("price_usd", 0.99999, "$1.00"),  # was "$1000": 4 digits rounded up, then padded
        ("price_usd", 0.994, "$0.994"),
        ("market_cap_usd", 999_960_000, "$1.00B"),  # not "$1,000.0M"
        ("market_cap_usd", 99_999_000_000, "$100.0B"),  # not "$100.00B"
        ("market_cap_usd", 99_994_000_000, "$99.99B"),
    ],
)
def test_rounding_at_the_edges_picks_the_right_unit(metric: str, value: float, shown: str) -> None:
    assert show(metric, value) == shown
