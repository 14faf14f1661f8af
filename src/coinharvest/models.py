"""Value objects shared across the system: coins, limits, observations, results, summaries.

All are frozen dataclasses (or plain records built once and read many times), so they can be
passed between the engine, the sources and the sinks without copying or locking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "Coin",
    "CoinAnswer",
    "CoinResult",
    "CoinStatus",
    "Confidence",
    "JobRecord",
    "JobStatus",
    "LearnedLimit",
    "Observation",
    "RunStatus",
    "RunSummary",
    "SourceLimits",
]

#: Default coin priority. Lower numbers are collected first (1 = most important).
DEFAULT_PRIORITY = 5


class Confidence(StrEnum):
    """How far an observation can be trusted (DESIGN §6)."""

    HIGH = "high"  # from the chain itself / the primary source
    MEDIUM = "medium"  # from a fallback source
    LOW = "low"  # estimated (e.g. on-chain value from market volume)


class CoinStatus(StrEnum):
    """Outcome of one coin in one run."""

    OK = "ok"
    FAILED = "failed"
    DEFERRED = "deferred"  # not collected before the run's deadline or shutdown


class JobStatus(StrEnum):
    """Outcome of one attempt of one job (one request to one source)."""

    OK = "ok"
    FAILED = "failed"  # permanent error: its coins fail (or fall back)
    RATE_LIMITED = "rate_limited"  # 429: the job went back into its lane
    RETRIED = "retried"  # transient error: the job went back into its lane
    DEFERRED = "deferred"  # not started (or not retried) before the deadline


class RunStatus(StrEnum):
    """Status of a run (DESIGN §2 step 5)."""

    RUNNING = "running"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class Coin:
    """One asset to collect.

    `ids` maps a source name to the coin's id at that source. `chains` groups those sources
    into fallback chains: the engine asks the first source of every chain, and asks the next
    one only when the previous failed for this coin. Every source in `ids` is in exactly one
    chain; a source with no fallback is a chain of one.
    """

    symbol: str
    name: str
    ids: Mapping[str, str]
    chains: tuple[tuple[str, ...], ...]
    priority: int = DEFAULT_PRIORITY

    def id_at(self, source: str) -> str:
        """The coin's id at `source` (KeyError if that source does not serve it)."""
        return self.ids[source]


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """A source's limits, all enforced together by its limiter (DESIGN §3).

    `rate_per_window` is "at most N starts in any rolling `window_s` seconds" (60 s in
    production; tests scale it). None means no window limit. `quota_per_day` and
    `quota_per_month` count requests per UTC day and month (engine/quota.py); None: no quota.
    """

    max_concurrency: int = 1
    min_interval_s: float = 0.0
    rate_per_window: int | None = None
    window_s: float = 60.0
    quota_per_day: int | None = None
    quota_per_month: int | None = None


@dataclass(frozen=True, slots=True)
class LearnedLimit:
    """What the adaptive controller learned about one source (and API key), kept across runs.

    Always within the configured limits, which stay hard ceilings (engine/adaptive.py).

    :ivar key_id: a fingerprint of the API key in use (``""`` without a key): a new key
        starts learning afresh, since its plan (and limits) may differ.
    :ivar concurrency: the in-flight limit learned from response times (≤ max_concurrency).
    :ivar rate_per_minute: the start rate learned from 429s and rate-limit headers (0: the
        source has no rate limit to learn under).
    :ivar ceiling_per_minute: the rate at which the upstream last refused us (429) or that
        its headers announced; None when it never did.
    """

    source: str
    key_id: str
    concurrency: float
    rate_per_minute: float
    ceiling_per_minute: float | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Observation:
    """One value of one metric of one coin from one source."""

    symbol: str
    source: str
    metric: str
    value: float | None
    observed_at: datetime
    confidence: Confidence = Confidence.HIGH
    estimated: bool = False


@dataclass(slots=True)
class CoinAnswer:
    """What one answer of one source yielded for one coin.

    `observations` are the metrics it had; `notes` say, one line each, which metric it could
    not give and why (``"coingecko: market_cap_usd: 0 means unknown"``). A missing, null or
    unusable field drops that metric only; the notes end up in the run's record.
    """

    observations: list[Observation]
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CoinResult:
    """What happened to one coin in one run; handed to the sink the moment it completes."""

    symbol: str
    name: str
    status: CoinStatus
    started_at: datetime | None
    duration_s: float
    attempts: int
    sources: tuple[str, ...]
    observations: list[Observation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Metrics the sources could not give for this coin, and why (see `CoinAnswer`).
    notes: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        """All errors joined into one line, or None."""
        return "; ".join(self.errors) if self.errors else None

    @property
    def note(self) -> str | None:
        """All notes joined into one line, or None."""
        return "; ".join(self.notes) if self.notes else None


@dataclass(slots=True)
class JobRecord:
    """One attempt of one job: when it was queued, started and ended (run-relative seconds)."""

    job_id: int
    source: str
    symbols: tuple[str, ...]
    attempt: int
    queued_s: float
    started_s: float | None
    ended_s: float | None
    status: JobStatus
    error: str | None = None


@dataclass(slots=True)
class RunSummary:
    """Totals of one run, built by the engine as the run ends."""

    run_id: str
    trigger: str
    status: RunStatus
    started_at: datetime
    duration_s: float
    coins_total: int
    coins_ok: int
    coins_failed: int
    coins_deferred: int
    requests: int
    rate_limited: int
    retries: int
    max_in_flight: int
    store_errors: int = 0  # sink calls that raised (some may have been saved later)
    coins_unsaved: int = 0  # coins the store finally could not write (filled by the caller)
    results: list[CoinResult] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
