"""Group commit: coins that complete while a write is under way go in the next one together.

Writing each coin in its own transaction costs a commit (an fsync on SQLite) per coin:
about 2.6 ms a coin, which made ``collect`` of 1,000 coins 4.2× slower than its upstream
allowed (issue "Performance"). `CoinWriter` keeps the contract of one coin (all or nothing,
idempotent) and changes only how many share a commit:

- a coin that arrives while nothing is being written is written at once, alone (no timer,
  no added latency when completions are rare);
- coins that arrive while a write is under way wait for it and then go together, up to
  `max_batch` per transaction, in a few bulk statements (results, observations, jobs);
- if the database refuses the batch (a permanent error), it is written again with each
  coin inside its own SAVEPOINT: the coin whose rows are refused is rolled back alone and
  reported alone, the others commit;
- a transient failure (locked database, lost connection) retries the whole transaction
  (every write is an upsert), through the store's retry policy; a batch that still fails
  is written again coin by coin, so a coin whose write keeps failing fails alone;
- a coin's job attempts are written with it, each attempt once per transaction.

The batch size needs no tuning by age: batches form only from coins already waiting, so
their size follows the backlog (docs/BENCHMARKS.md has the measurement).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from coinharvest.errors import StoreError
from coinharvest.models import CoinResult, JobRecord
from coinharvest.storage import writes
from coinharvest.storage.failures import describe, is_transient
from coinharvest.storage.writes import RunStart

__all__ = ["CoinWriter", "OpenRun", "Transact"]

#: Runs `body` in one transaction with retries: the store's ``_write(what, body)``.
Transact = Callable[[str, Callable[[AsyncConnection], Awaitable[Any]]], Awaitable[Any]]


@dataclass(slots=True)
class OpenRun:
    """The store's memory of one run in progress."""

    start: RunStart
    #: Whether the run row is known to be in the database.
    row_written: bool = False
    #: symbol → (result, last error) of coins that could not be written yet.
    unsaved: dict[str, tuple[CoinResult, str]] = field(default_factory=dict)
    #: (job id, attempt) → job attempts to write with the next coin.
    pending_jobs: dict[tuple[int, int], JobRecord] = field(default_factory=dict)
    #: symbol → keys of `pending_jobs` naming it (some may have been written since): a
    #: coin finds its jobs without scanning every pending one (CoinGecko's name 250 coins).
    jobs_by_symbol: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def add_jobs(self, jobs: Iterable[JobRecord]) -> None:
        """Keep `jobs` (new or changed attempts) for the transactions of their coins."""
        for job in jobs:
            key = (job.job_id, job.attempt)
            if key not in self.pending_jobs:  # else already indexed
                for symbol in job.symbols:
                    self.jobs_by_symbol.setdefault(symbol, []).append(key)
            self.pending_jobs[key] = job

    def jobs_of(self, symbol: str) -> list[JobRecord]:
        """The pending job attempts naming `symbol`, each once."""
        pending = self.pending_jobs
        keys = dict.fromkeys(self.jobs_by_symbol.get(symbol, ()))
        return [pending[key] for key in keys if key in pending]


@dataclass(slots=True)
class _Coin:
    run: OpenRun
    result: CoinResult
    done: asyncio.Future[None]
    jobs: list[tuple[JobRecord, tuple[float | None, Any]]] = field(default_factory=list)
    error: str | None = None


class CoinWriter:
    """Writes coins with group commit (see the module docstring)."""

    def __init__(self, transact: Transact, max_batch: int = 256) -> None:
        self._transact = transact
        self.max_batch = max_batch
        self._queue: list[_Coin] = []
        self._drainer: asyncio.Task[None] | None = None
        #: Transactions and coins written so far (for benchmarks and tests).
        self.transactions = 0
        self.coins = 0

    async def write(self, run: OpenRun, result: CoinResult) -> None:
        """Store `result` whole; return once committed.

        :raises StoreError: it could not be stored (the others of its batch may have been).
        """
        loop = asyncio.get_running_loop()
        coin = _Coin(run, result, loop.create_future())
        self._queue.append(coin)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(), name="coinharvest-group-commit")
        # Shielded: a caller cancelled while its coin is being written leaves the write be.
        await asyncio.shield(coin.done)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                await self._commit(batch)
            except BaseException as exc:  # a bug or a cancel: no caller may wait forever
                for coin in [*batch, *self._queue]:
                    coin.error = coin.error or f"not stored: {type(exc).__name__}: {exc}"
                    self._settle(coin)
                self._queue.clear()
                raise

    async def _commit(self, batch: list[_Coin]) -> None:
        """Bulk first; if the batch is refused, each coin in its savepoint; if even that
        fails, each coin in its own transaction (so a coin fails alone)."""
        error = await self._try(batch, self._bulk_body)
        if error is not None and len(batch) > 1:
            error = await self._try(batch, self._body)
            if error is not None:
                for coin in batch:
                    await self._commit([coin])
                return
        if error is not None:
            batch[0].error = error
        self.transactions += 1
        for coin in batch:
            self._settle(coin)

    async def _try(
        self, batch: list[_Coin], body: Callable[[AsyncConnection, list[_Coin]], Awaitable[None]]
    ) -> str | None:
        """Run `body` for `batch` in one transaction (with the store's retries); the error."""
        run_ids = sorted({c.run.start.run_id for c in batch})
        what = f"storing {_symbols(batch)} of run {', '.join(run_ids)}"
        try:
            await self._transact(what, lambda conn: body(conn, batch))
        except StoreError as exc:
            return str(exc)
        return None

    async def _bulk_body(self, conn: AsyncConnection, batch: list[_Coin]) -> None:
        """The whole batch in a few statements: run rows, results, observations, jobs."""
        for run in {id(c.run): c.run for c in batch if not c.run.row_written}.values():
            await writes.insert_run(conn, run.start)  # the start was lost
        await writes.write_coins(
            conn, [(c.run.start.run_id, c.result) for c in batch], datetime.now(UTC)
        )
        jobs: dict[tuple[str, int, int], JobRecord] = {}
        for coin in batch:
            run_id = coin.run.start.run_id
            mine = coin.run.jobs_of(coin.result.symbol)
            coin.error, coin.jobs = None, [(j, (j.ended_s, j.status)) for j in mine]
            jobs.update({(run_id, j.job_id, j.attempt): j for j in mine})
        for run_id in sorted({key[0] for key in jobs}):
            await writes.write_jobs(conn, run_id, [j for k, j in jobs.items() if k[0] == run_id])

    async def _body(self, conn: AsyncConnection, batch: list[_Coin]) -> None:
        """One transaction: every coin in its own savepoint (called again on a retry)."""
        runs_written: set[str] = set()
        jobs_written: set[tuple[str, int, int]] = set()
        stored_at = datetime.now(UTC)
        for coin in batch:
            coin.error, coin.jobs = None, []
            try:
                async with conn.begin_nested():
                    new_jobs = await _write_one(conn, coin, runs_written, jobs_written, stored_at)
            except SQLAlchemyError as exc:
                if is_transient(exc):
                    raise  # the whole transaction is retried
                run_id = coin.run.start.run_id
                coin.error = f"storing {coin.result.symbol} of run {run_id}: {describe(exc)}"
                continue
            jobs_written |= new_jobs
            runs_written.add(coin.run.start.run_id)

    def _settle(self, coin: _Coin) -> None:
        if coin.done.done():
            return
        if coin.error is not None:
            coin.done.set_exception(StoreError(coin.error))
            coin.done.exception()  # retrieved here too: a cancelled caller must not warn
            return
        run = coin.run
        run.row_written = True
        run.unsaved.pop(coin.result.symbol, None)
        for job, state in coin.jobs:
            if (job.ended_s, job.status) == state:  # unchanged since it was written
                run.pending_jobs.pop((job.job_id, job.attempt), None)
        # Its jobs are written or pending for the coins that share them; a job recorded
        # later naming it is indexed again.
        run.jobs_by_symbol.pop(coin.result.symbol, None)
        self.coins += 1
        coin.done.set_result(None)


async def _write_one(
    conn: AsyncConnection,
    coin: _Coin,
    runs_written: set[str],
    jobs_written: set[tuple[str, int, int]],
    stored_at: datetime,
) -> set[tuple[str, int, int]]:
    """Write one coin (inside its savepoint); return the job attempts it wrote."""
    run, run_id = coin.run, coin.run.start.run_id
    if not run.row_written and run_id not in runs_written:  # the start was lost
        await writes.insert_run(conn, run.start)
    await writes.write_coin(conn, run_id, coin.result, stored_at)
    # This coin's job attempts (another coin's never: a row that cannot be written must not
    # take an unrelated coin down with it), each once per transaction.
    jobs = [
        job
        for job in run.jobs_of(coin.result.symbol)
        if (run_id, job.job_id, job.attempt) not in jobs_written
    ]
    await writes.write_jobs(conn, run_id, jobs)
    coin.jobs = [(job, (job.ended_s, job.status)) for job in jobs]
    return {(run_id, job.job_id, job.attempt) for job in jobs}


def _symbols(batch: list[_Coin]) -> str:
    if len(batch) == 1:
        return batch[0].result.symbol
    return f"{len(batch)} coins ({batch[0].result.symbol}, …)"
