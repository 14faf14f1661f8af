"""Per-coin bookkeeping within one run: which chains are still open, what was collected.

A coin is *complete* when every one of its fallback chains has ended: delivered by some
source of the chain, failed at its last source, or deferred. Its status is then:

- ``ok``: every chain delivered;
- ``failed``: some chain failed at its last source (observations from the chains that did
  deliver are kept: they are whole and true);
- ``deferred``: no chain failed, but some could not be collected before the deadline.

Observations from a fallback source (not the first of its chain) are marked
``Confidence.MEDIUM`` unless the source already marked them lower. Derived metrics
(`coinharvest.derive`) are added to the result when the coin completes, screened like the
sources' values (`coinharvest.plausibility`): a derived value is never NaN or Infinity.

Notes (metrics a source could not give, and why) gather from every answer, including
those of sources that then failed, and stay with the result whatever its status.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from coinharvest.derive import derive
from coinharvest.models import Coin, CoinResult, CoinStatus, Confidence, Observation
from coinharvest.plausibility import screen

__all__ = ["CoinState", "next_source"]


def next_source(coin: Coin, source: str) -> str | None:
    """The source after `source` in the coin's chain that contains it, or None."""
    for chain in coin.chains:
        if source in chain:
            i = chain.index(source)
            return chain[i + 1] if i + 1 < len(chain) else None
    return None


def _is_fallback(coin: Coin, source: str) -> bool:
    """Whether `source` stands after the first source of a chain of `coin`."""
    return any(source in chain and chain[0] != source for chain in coin.chains)


@dataclass(slots=True)
class CoinState:
    """What one coin has gathered so far in a run."""

    coin: Coin
    open_chains: int
    started_mono: float | None = None
    started_at: datetime | None = None
    attempts: int = 0
    sources: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: bool = False
    deferred: bool = False

    def mark_started(self, mono: float) -> bool:
        """Note that a job for this coin started; True the first time."""
        self.attempts += 1
        if self.started_mono is not None:
            return False
        self.started_mono = mono
        self.started_at = datetime.now(UTC)
        return True

    def note(self, notes: list[str]) -> None:
        """Keep `notes` on dropped metrics for the result."""
        self.notes.extend(notes)

    def delivered(self, source: str, observations: list[Observation]) -> None:
        """A chain delivered through `source`."""
        if _is_fallback(self.coin, source):
            observations = [
                replace(o, confidence=Confidence.MEDIUM) if o.confidence is Confidence.HIGH else o
                for o in observations
            ]
        self.observations.extend(observations)
        self._note_source(source)
        self.open_chains -= 1

    def chain_failed(self, source: str, error: str) -> None:
        """A chain failed at its last source."""
        self.errors.append(error)
        self._note_source(source)
        self.failed = True
        self.open_chains -= 1

    def chain_deferred(self, reason: str) -> None:
        """A chain could not be collected in this run."""
        self.errors.append(reason)
        self.deferred = True
        self.open_chains -= 1

    def note_fallback(self, source: str, error: str) -> None:
        """`source` failed but the chain goes on to its next source."""
        self.errors.append(f"{error} (falling back)")
        self._note_source(source)

    @property
    def complete(self) -> bool:
        """Whether every chain has ended."""
        return self.open_chains <= 0

    def result(self, now_mono: float) -> CoinResult:
        """The coin's final result (call once `complete`)."""
        if self.failed:
            status = CoinStatus.FAILED
        elif self.deferred:
            status = CoinStatus.DEFERRED
        else:
            status = CoinStatus.OK
            # Fallback notes are not errors once the chain delivered.
            self.errors = []
        duration = 0.0 if self.started_mono is None else now_mono - self.started_mono
        derived, notes = screen(derive(self.coin.symbol, self.observations))
        return CoinResult(
            symbol=self.coin.symbol,
            name=self.coin.name,
            status=status,
            started_at=self.started_at,
            duration_s=duration,
            attempts=self.attempts,
            sources=tuple(self.sources),
            observations=self.observations + derived,
            errors=self.errors,
            notes=self.notes + notes,
        )

    def _note_source(self, source: str) -> None:
        if source not in self.sources:
            self.sources.append(source)
