"""The source interface: what every upstream adapter (built-in or plug-in) implements.

Contract of `Source.fetch(coins)`:

- It makes **one** request (one job) for the given coins, which all have an id at this
  source (``coin.id_at(source.name)``) and number at most ``batch_size``.
- On success it returns a mapping ``symbol -> CoinAnswer | list[Observation] | SourceError``
  with an entry for every coin asked for: a `CoinAnswer` (observations, plus a note for
  each metric the answer could not give: see `coinharvest.sources.reading`) or a plain list
  of observations for coins the answer covered, a `PermanentError` (usually `UnknownCoin`)
  for coins it left out or whose part of the answer is malformed. A missing entry is
  treated by the engine as ``BadResponse("no result for <symbol>")``. A missing or null
  field drops that metric, never the coin or the batch; the engine drops implausible
  values (negative or non-finite prices, counts…) and fails a coin that got no value.
- When the request as a whole fails (or the answer's envelope is malformed) it raises, and
  returns nothing partial:
  `RateLimited(retry_after)` on HTTP 429 (or 503 carrying Retry-After), `TransientError`
  on timeouts, connection errors and other 5xx, `ClientError` on other 4xx, `BadResponse`
  on malformed JSON or a missing field. Any other exception is treated as a bug in the
  source: its coins fail with the exception's text, and it is logged with a traceback.
- It must not sleep, retry or rate-limit by itself: the engine's limiter and lanes do that,
  so that a waiting job never holds a slot.
- It never puts an API key in an error message, log line or observation. What it cannot
  know (an upstream echoing the key in a data field, quoted in a note or a `BadResponse`)
  the engine removes: every error message and note that leaves a source passes
  `Source.redact`, the source's one redaction point.

`default_limits` and `batch_size` are the source's built-in defaults; the configuration may
override both (``MAX_<SRC>_CONCURRENCY``, ``<SRC>_MIN_INTERVAL_MS``,
``<SRC>_RATE_LIMIT_PER_MINUTE``, ``<SRC>_BATCH_SIZE``), the batch size up to
`max_batch_size`. The registry builds a source with ``from_settings(settings, options)``.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Self, TypeVar

from coinharvest.config import Settings
from coinharvest.errors import SourceError, UnknownCoin
from coinharvest.models import Coin, CoinAnswer, Observation, SourceLimits
from coinharvest.sources.options import HttpOptions

__all__ = [
    "REDACTED",
    "CoinOutcome",
    "FetchResult",
    "Source",
    "close_sources",
    "observations",
    "per_coin",
    "redact",
]

V = TypeVar("V")

#: One coin's part of a fetch: its answer (or bare observations), or its own error.
CoinOutcome = CoinAnswer | list[Observation] | SourceError
#: What `Source.fetch` returns: per coin symbol, its outcome.
FetchResult = Mapping[str, CoinOutcome]

#: What a secret is replaced with.
REDACTED = "***"
#: A query parameter whose name says it holds a secret (``token=``, ``access_token=``,
#: ``api_key=``, ``x_cg_demo_api_key=``, ``password=``, ``secret=``, ``auth=``, ``sig=``…).
_SECRET_PARAM = re.compile(
    r"(?i)(?<![\w-])((?:[\w-]*[_-])?(?:token|key|apikey|secret|passw(?:or)?d|auth|authorization"
    r"|sig|signature))=([^&\s#\"']+)"
)
#: ``scheme://user:password@`` (greedy up to the authority's last ``@``).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")
_CUT = "..."  # how coinharvest marks a quoted value or message it cut short
_MIN_FRAGMENT = 4  # fewer characters of a secret before a cut say nothing useful
_SHORT_SECRET = 8  # a shorter secret is replaced only as a whole word


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret, every secret-looking query value (a parameter whose name
    holds ``token``, ``key``, ``secret``, ``password``, ``auth`` or ``sig``: ``token=``,
    ``access_token=``, ``x_cg_demo_api_key=``…) and the credentials of every URL
    (``https://user:password@host``) replaced by ``***``.

    The start of a secret just before a ``...`` cut mark (``'CG-abcd...``: a long value
    quoted short by `Reading` or `JsonReader`) is replaced too. A cut without the mark is
    not recognised: redact first, then shorten. A secret shorter than 8 characters is
    replaced only where it stands alone (a test key ``k`` must not make ``bloc***chair``).
    """
    for secret in secrets:
        if secret:
            text = _without_cut_secret(_without_secret(text, secret), secret)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def _without_secret(text: str, secret: str) -> str:
    if len(secret) >= _SHORT_SECRET:
        return text.replace(secret, REDACTED)
    return re.sub(rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])", REDACTED, text)


def _without_cut_secret(text: str, secret: str) -> str:
    if _CUT not in text:
        return text
    parts = text.split(_CUT)
    for i, part in enumerate(parts[:-1]):
        for size in range(min(len(secret) - 1, len(part)), _MIN_FRAGMENT - 1, -1):
            if part.endswith(secret[:size]):
                parts[i] = part[:-size] + REDACTED
                break
    return _CUT.join(parts)


class Source(ABC):
    """One upstream API (one host + key) as the engine sees it."""

    #: Unique name used in coins files, logs and the store (e.g. ``"coingecko"``).
    name: str
    #: Limits the engine enforces for this source unless configured otherwise.
    default_limits: SourceLimits = SourceLimits()
    #: Most coins one request may carry (1 = no batching).
    batch_size: int = 1
    #: The largest ``<SRC>_BATCH_SIZE`` the upstream accepts (None: no limit).
    max_batch_size: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, options: HttpOptions) -> Self:
        """Build the source from the settings and its `HttpOptions` (base URL, key, timeout,
        test transport). The default ignores both and calls ``cls()``; `HttpSource` uses
        `options`; override to read more settings."""
        return cls()

    def unavailable(self) -> str | None:
        """Why this source cannot be used as configured (e.g. "needs an API key"), or None.

        An unavailable source is sent nothing: the engine skips it in every fallback chain
        and records "<name> skipped: <reason>" for its coins; `coinharvest sources` says why.
        """
        return None

    @abstractmethod
    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """Make one request for `coins`; see the module docstring for the full contract."""

    def redact(self, text: str) -> str:
        """`text` fit to leave this source: the source's one redaction point.

        The engine passes every error message and note of this source through it before it
        is logged, stored or shown. The default removes secret-looking query values and URL
        credentials (`redact`); a source that holds secrets removes them too (`HttpSource`:
        its API key).
        """
        return redact(text)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release connections. Called once by whoever built the source (`close_sources`)."""


def per_coin(
    source: str,
    coins: Sequence[Coin],
    found: Mapping[str, V | SourceError],
    observe: Callable[[Coin, V], CoinOutcome],
) -> dict[str, CoinOutcome]:
    """A `FetchResult`: `observe(coin, found[id])` for every coin whose id the answer had,
    the error itself where ``found[id]`` is one (that part of the answer was malformed),
    `UnknownCoin` for the others (the rest of the batch still succeeds)."""
    result: dict[str, CoinOutcome] = {}
    for coin in coins:
        coin_id = coin.id_at(source)
        value = found.get(coin_id)
        if value is None:
            result[coin.symbol] = UnknownCoin(source, coin_id)
        elif isinstance(value, SourceError):
            result[coin.symbol] = value
        else:
            result[coin.symbol] = observe(coin, value)
    return result


def observations(
    symbol: str, source: str, metrics: Mapping[str, float | None], at: datetime
) -> list[Observation]:
    """One observation per metric that has a value (nulls from the API are left out)."""
    return [
        Observation(symbol, source, metric, value, at)
        for metric, value in metrics.items()
        if value is not None
    ]


async def close_sources(sources: Iterable[Source]) -> None:
    """Close every source (whoever built the sources closes them, not the engine)."""
    await asyncio.gather(*(source.aclose() for source in sources))
