"""Derived metrics and their confidence (DESIGN §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coinharvest.derive import derive
from coinharvest.models import Confidence, Observation

T = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
H, M, L = Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW


def obs(metric: str, value: float, source: str = "x", confidence: Confidence = H,
        estimated: bool = False, at: datetime = T) -> Observation:  # fmt: skip
    return Observation("DASH", source, metric, value, at, confidence, estimated)


def by_metric(observations: list[Observation]) -> dict[str, Observation]:
    return {o.metric: o for o in observations}


def test_on_chain_count_and_value_are_high() -> None:
    got = by_metric(derive("DASH", [
        obs("tx_count_24h", 100, "blockchair"),
        obs("onchain_volume_24h_usd", 5000, "blockchair"),
        obs("volume_24h_usd", 99999, "coingecko"),
    ]))  # fmt: skip
    assert got["annual_tx_count"].value == 36500
    assert got["annual_tx_value_usd"].value == 5000 * 365
    assert got["avg_tx_value_usd"].value == 50
    assert {o.confidence for o in got.values()} == {H}
    assert not any(o.estimated for o in got.values())
    assert {o.source for o in got.values()} == {"derived"}


def test_value_from_market_volume_is_estimated_and_low() -> None:
    got = by_metric(derive("DASH", [obs("tx_count_24h", 100), obs("volume_24h_usd", 730)]))
    value = got["annual_tx_value_usd"]
    assert value.value == 730 * 365 and value.estimated and value.confidence is L
    assert got["annual_tx_count"].confidence is H
    average = got["avg_tx_value_usd"]
    assert average.value == pytest.approx(7.3) and average.estimated and average.confidence is L


def test_fallback_count_is_medium() -> None:
    got = by_metric(derive("DASH", [obs("tx_count_24h", 10, confidence=M),
                                    obs("onchain_volume_24h_usd", 20, confidence=M)]))  # fmt: skip
    assert {o.confidence for o in got.values()} == {M}


def test_events_are_never_a_transaction_count() -> None:
    got = by_metric(derive("DASH", [obs("events_24h", 500, "3xpl"), obs("volume_24h_usd", 1)]))
    assert set(got) == {"annual_tx_value_usd"}


def test_an_estimated_count_is_low() -> None:
    got = by_metric(derive("DASH", [obs("tx_count_24h", 86400, "nearblocks", L, True)]))
    assert got["annual_tx_count"].estimated and got["annual_tx_count"].confidence is L


def test_best_input_wins_and_newest_time_is_kept() -> None:
    later = T + timedelta(minutes=5)
    got = by_metric(derive("DASH", [
        obs("tx_count_24h", 1, "nearblocks", L, True),
        obs("tx_count_24h", 2, "fallback", M),
        obs("tx_count_24h", 3, "primary", H),
        obs("volume_24h_usd", 10, at=later),
    ]))  # fmt: skip
    assert got["annual_tx_count"].value == 3 * 365
    assert got["avg_tx_value_usd"].observed_at == later


def test_nothing_to_derive_and_zero_count() -> None:
    assert derive("DASH", [obs("price_usd", 1)]) == []
    got = by_metric(derive("DASH", [obs("tx_count_24h", 0), obs("volume_24h_usd", 5)]))
    assert "avg_tx_value_usd" not in got and got["annual_tx_count"].value == 0


def test_other_coins_and_missing_values_are_ignored() -> None:
    other = Observation("BTC", "x", "tx_count_24h", 5, T)
    empty = Observation("DASH", "x", "tx_count_24h", None, T)
    assert derive("DASH", [other, empty]) == []
