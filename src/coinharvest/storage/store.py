"""The `Store`: the engine's `ResultSink` on a SQL database, with retries and recovery.

Lifecycle (an async context manager)::

    async with Store.from_url("sqlite+aiosqlite:///coinharvest.db") as store:
        summary = await Engine(sources, sink=store).run(coins)
        store.unsaved(summary.run_id)   # {} when everything was written

On enter: the schema is migrated to the newest revision, the database is checked writable,
and runs left ``running`` by a process that no longer exists are marked ``interrupted``
(their coin and request totals counted from what was stored). On exit: a database engine
(SQLAlchemy's ``AsyncEngine``) the store created is disposed; one passed in is left to its
owner.

Writes (the `ResultSink` contract, see `coinharvest.engine.hooks`):

- each coin, its result row and all its observations, whole or not at all: after a crash
  a coin is either stored whole or not at all. Coins that complete while another write is
  under way share the next transaction, each in its own savepoint (group commit,
  `storage/group_commit.py`);
- every write is idempotent (`writes`), so a write retried after an unknown outcome never
  duplicates;
- a failing write is retried (`WritePolicy`: bounded attempts, exponential back-off with
  jitter) when the failure may pass (`failures.is_transient`); the engine is never blocked
  for longer than that;
- a coin that still could not be written is kept in memory, raised as `StoreError` (the
  engine counts it in ``RunSummary.store_errors``), tried once more when the run finishes,
  and what is still missing then is *reported*: `Store.unsaved(run_id)`, the run row's
  ``coins_unsaved`` and ``error``, and a ``completed`` run is recorded as ``partial``;
- SQLite: writes go through one gate, one at a time (WAL lets readers run alongside), so
  concurrent completions never meet "database is locked"; PostgreSQL: up to the pool size.

Beside the sink, the store keeps what the adaptive limit controller learned
(`load_learned_limits`, `save_learned_limits`, `reset_learned_limits`: ``limits.py``) and
counts the requests sent since a time for quotas (`requests_since`: ``usage.py``), through
the same gate and retries.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinharvest.errors import StoreError
from coinharvest.logs import get_logger
from coinharvest.models import Coin, CoinResult, JobRecord, LearnedLimit, RunStatus, RunSummary
from coinharvest.storage import writes
from coinharvest.storage.database import open_database
from coinharvest.storage.failures import describe, is_transient, translate
from coinharvest.storage.group_commit import CoinWriter, OpenRun
from coinharvest.storage.limits import load_limits, reset_limits, save_limits
from coinharvest.storage.migrate import upgrade
from coinharvest.storage.usage import count_requests
from coinharvest.storage.writes import RunStart

__all__ = ["Store", "WritePolicy"]

log = get_logger("store")

T = TypeVar("T")

#: Message stored on runs found ``running`` after their process ended.
INTERRUPTED_REASON = "interrupted: the process ended before the run finished"
#: Most symbols named in a run's "not stored" error line.
_MAX_NAMED = 20
#: Finished runs whose `Store.unsaved` report is kept in memory.
_KEEP_REPORTS = 100


@dataclass(frozen=True, slots=True)
class WritePolicy:
    """How hard a write is tried: `attempts` in all, waits growing from `base_delay_s`.

    The wait before attempt n+1 is ``min(max_delay_s, base_delay_s * 2**(n-1))``, times a
    jitter factor in [0.5, 1). Defaults bound one write to about 1.5 s of waiting.
    """

    attempts: int = 5
    base_delay_s: float = 0.1
    max_delay_s: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        raw = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return raw * (0.5 + rng.random() / 2)


class Store:
    """A `ResultSink` writing to SQLite or PostgreSQL (see the module docstring).

    :param engine: the database; `Store.from_url` creates one (and then owns it).
    :param owns_engine: dispose `engine` on exit.
    :param policy: retries of a failing write.
    :param stale_after: a ``running`` run of another host older than this is taken as dead
        on open (a run of this host is judged by whether its process still exists).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        owns_engine: bool = False,
        policy: WritePolicy | None = None,
        stale_after: timedelta = timedelta(days=1),
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy or WritePolicy()
        self.stale_after = stale_after
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._owns_engine = owns_engine
        self._rng = rng or random.Random()
        sqlite = engine.dialect.name == "sqlite"
        pool_size = getattr(engine.pool, "size", lambda: 5)()
        self._gate = asyncio.Semaphore(1 if sqlite else max(1, pool_size))
        self._books: dict[str, OpenRun] = {}
        self._coins = CoinWriter(self._write)
        self._reported: dict[str, dict[str, str]] = {}
        self._url = engine.url.render_as_string(hide_password=True)

    @classmethod
    async def from_url(cls, url: str, *, pool_size: int = 5, **kwargs: object) -> Store:
        """A store on a new engine for `url` (checked reachable and migrated). Not entered."""
        engine = await open_database(url, pool_size=pool_size)
        return cls(engine, owns_engine=True, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<Store {self._url} runs_open={len(self._books)}>"

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Store:
        try:
            await self.open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Migrate, check writable, interrupt dead runs (see module docstring).

        :raises StoreError: one line, naming the database and the reason.
        """
        with translate(f"cannot migrate database {self._url}"):
            await upgrade(self.engine)
        with translate(f"database {self._url} is not writable"):
            async with self.engine.begin() as conn:
                await writes.probe_writable(conn)
        with translate(f"cannot recover interrupted runs in {self._url}"):
            dead = await self.recover()
        if dead:
            log.warning("marked %d run(s) left running as interrupted: %s", len(dead), dead)

    async def recover(self) -> list[str]:
        """Mark runs whose process is gone ``interrupted``; return their ids."""
        async with self._gate, self.engine.begin() as conn:
            running = await writes.running_runs(conn)
            now = datetime.now(UTC)
            dead = [
                run_id
                for run_id, (owner, started) in running.items()
                if run_id not in self._books and self._is_dead(owner, started, now)
            ]
            await writes.interrupt_runs(conn, sorted(dead), INTERRUPTED_REASON)
        return sorted(dead)

    async def aclose(self) -> None:
        """Dispose the engine if this store created it. Safe to call twice."""
        if self._owns_engine:
            await self.engine.dispose()

    # ----------------------------------------------------------------- ResultSink

    async def run_started(
        self, run_id: str, trigger: str, started_at: datetime, coins: Sequence[Coin]
    ) -> None:
        """Write the run row (``running``). If it fails, the coin writes add it later."""
        book = OpenRun(RunStart(run_id, trigger, started_at, len(coins), self.owner))
        self._books[run_id] = book
        await self._write(
            f"recording start of run {run_id}", lambda conn: writes.insert_run(conn, book.start)
        )
        book.row_written = True

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        """Keep the job attempts for the transactions of the coins they concern (no write of
        their own), so an interrupted run's timeline is stored with its stored coins."""
        self._book(run_id).add_jobs(jobs)

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        """Write the coin whole, retrying; on final failure keep it for the end and raise."""
        book = self._book(run_id)
        try:
            await self._write_coin(book, result)
        except StoreError as exc:
            book.unsaved[result.symbol] = (result, str(exc))
            raise

    async def run_finished(self, summary: RunSummary) -> None:
        """Retry unsaved coins, then write the job timeline and the run's totals and status.

        :raises StoreError: the run row itself could not be written (it stays ``running``
            and is marked ``interrupted`` at a later open).
        """
        book = self._book(summary.run_id)
        for symbol, (result, _) in list(book.unsaved.items()):
            try:
                await self._write_coin(book, result)
            except StoreError as exc:
                book.unsaved[symbol] = (result, str(exc))
        missing = {sym: err for sym, (_, err) in book.unsaved.items()}
        self._reported[summary.run_id] = missing
        while len(self._reported) > _KEEP_REPORTS:  # a service runs forever: keep the recent
            del self._reported[next(iter(self._reported))]
        status = summary.status
        if missing and status is RunStatus.COMPLETED:
            status = RunStatus.PARTIAL
        error = _unsaved_line(missing)
        if missing:
            log.error("run %s: %s", summary.run_id, error)

        async def finish(conn: AsyncConnection) -> None:
            await writes.write_jobs(conn, summary.run_id, summary.jobs)
            await writes.finish_run(
                conn,
                book.start,
                summary,
                status=status,
                finished_at=datetime.now(UTC),
                unsaved=len(missing),
                error=error,
            )

        await self._write(f"recording end of run {summary.run_id}", finish)
        self._books.pop(summary.run_id, None)

    def unsaved(self, run_id: str) -> Mapping[str, str]:
        """Coins of a finished run that could not be stored: symbol → last error ({} = none)."""
        return dict(self._reported.get(run_id, {}))

    # ----------------------------------------------------------------- limits and quotas
    # StoreError once a failure is permanent or retries are spent; ValueError for naive times.

    async def load_learned_limits(self) -> list[LearnedLimit]:
        """Every learned limit stored, by source then key id (`limits.load_limits`)."""
        return await self._write("reading learned limits", load_limits)

    async def save_learned_limits(self, limits: Sequence[LearnedLimit]) -> None:
        """Upsert `limits` by (source, key_id) in one transaction; idempotent."""
        await self._write("saving learned limits", lambda conn: save_limits(conn, limits))

    async def reset_learned_limits(self, source: str | None = None) -> int:
        """Forget `source`'s learned limits (every key), or all of them; rows deleted."""
        return await self._write("resetting learned limits", lambda c: reset_limits(c, source))

    async def requests_since(self, since: datetime) -> dict[str, int]:
        """Per source, requests (started job attempts) of any run that started at or after
        `since` (aware), as stored so far (`usage.count_requests`)."""
        return await self._write("counting requests", lambda conn: count_requests(conn, since))

    # ----------------------------------------------------------------- internals

    def _book(self, run_id: str) -> OpenRun:
        book = self._books.get(run_id)
        if book is None:  # the engine always starts a run first; be lenient all the same
            start = RunStart(run_id, "unknown", datetime.now(UTC), 0, self.owner)
            book = self._books[run_id] = OpenRun(start)
        return book

    async def _write_coin(self, book: OpenRun, result: CoinResult) -> None:
        await self._coins.write(book, result)  # group commit (storage/group_commit.py)

    async def _write(self, what: str, body: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `body` in one transaction through the gate, retried per `policy`; its result.

        :raises StoreError: ``"<what>: <reason>"`` once a failure is permanent or the
            attempts are used up.
        """
        for attempt in range(1, self.policy.attempts + 1):
            try:
                async with self._gate, self.engine.begin() as conn:
                    return await body(conn)
            except (SQLAlchemyError, OSError) as exc:
                if not is_transient(exc) or attempt == self.policy.attempts:
                    raise StoreError(f"{what}: {describe(exc)}") from exc
                wait = self.policy.delay(attempt, self._rng)
                log.warning(
                    "%s failed (attempt %d of %d): %s; retrying in %.2fs",
                    what,
                    attempt,
                    self.policy.attempts,
                    describe(exc),
                    wait,
                )
                await asyncio.sleep(wait)
        raise StoreError(f"{what}: not tried (WritePolicy.attempts < 1)")

    def _is_dead(self, owner: str | None, started: datetime, now: datetime) -> bool:
        """Whether a ``running`` run's process is gone.

        A run of this host is judged by its process alone: alive means running, however old
        (a long ``collect`` is not interrupted under its own feet). Only a run of another
        host, whose process can't be seen from here, is taken as dead by age
        (`stale_after`); a run with no recorded owner is dead.
        """
        if owner is None:
            return True
        host, _, pid = owner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit():
            return not _pid_alive(int(pid))
        return now - started > self.stale_after


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unsaved_line(missing: Mapping[str, str]) -> str | None:
    if not missing:
        return None
    names = sorted(missing)
    shown = ", ".join(names[:_MAX_NAMED]) + (" …" if len(names) > _MAX_NAMED else "")
    last = missing[names[-1]]
    return f"{len(names)} coin(s) could not be stored: {shown} (last error: {last})"
