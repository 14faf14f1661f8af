"""Hooks the engine calls as a run goes on, for metrics (Prometheus) and live views.

Contract: every method is called synchronously on the event loop, must be cheap and must
not raise (an observer's error would be a bug in the observer; the engine does not catch
it). `NullObserver` does nothing and is the default.
"""

from __future__ import annotations

from typing import Protocol

from coinharvest.models import CoinResult, RunSummary

__all__ = ["EngineObserver", "NullObserver"]


class EngineObserver(Protocol):
    """What the engine reports while it runs."""

    def job_started(self, source: str, waited_s: float) -> None:
        """A request to `source` started after waiting `waited_s` in its lane."""

    def job_finished(self, source: str, outcome: str, duration_s: float) -> None:
        """A request ended. `outcome`: the HTTP status ("200", "429", "503", …) or an
        error kind ("timeout", "error") when there was no HTTP answer."""

    def coin_completed(self, result: CoinResult) -> None:
        """A coin completed (before it is stored)."""

    def run_finished(self, summary: RunSummary) -> None:
        """A run ended."""


class NullObserver:
    """Observes nothing."""

    def job_started(self, source: str, waited_s: float) -> None:
        """Do nothing."""

    def job_finished(self, source: str, outcome: str, duration_s: float) -> None:
        """Do nothing."""

    def coin_completed(self, result: CoinResult) -> None:
        """Do nothing."""

    def run_finished(self, summary: RunSummary) -> None:
        """Do nothing."""
