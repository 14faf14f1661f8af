"""Can PostgreSQL decide a shared rate limit fast enough? Admission latency, measured.

Groundwork for issue "Replicas" (shared limits across processes): before building the
shared limiter on PostgreSQL, measure what one admission costs when several processes ask at
once. The prototype is one PL/pgSQL function, `limiter_acquire`, that decides every
constraint of one source in one atomic step on the database's clock (`clock_timestamp()`),
as the reference's Redis design does in one Lua call (ratelimit-concurrency.md §9):

- the source's row is locked (``FOR UPDATE``): admissions of one source are serialised;
- expired in-flight leases are dropped (a crashed process's lease frees its slot);
- the wait is the largest of: cooldown, spacing since the last start, the rolling window
  (the n-th most recent start + window), and "no slot" (-1) when the in-flight cap is full;
- with no wait, the lease and the start are recorded and 0 is returned.

`limiter_release` deletes a lease. The benchmark starts a throwaway PostgreSQL 15 (fsync on,
as the tests' server), then runs ``--procs`` processes × ``--tasks`` asyncio tasks, each
doing acquire → (hold ``--hold-ms``) → release in a loop for ``--seconds``, against one
source with no spacing and a cap above the concurrency (so nothing waits and every call is
an admission: the worst case for the lock), then the same with a CoinGecko-like limit
(spacing 2 s: almost every call is a refusal); both with ordinary tables (every admission
commits to the WAL and waits for fsync) and with UNLOGGED tables (no WAL: limiter state is
lost if PostgreSQL itself crashes, which forgets at most one window of starts). Prints
admissions/s and the latency of one acquire (p50/p90/p99/max) as JSON.

``python bench/shared_limiter_pg.py --procs 2 --tasks 8 --seconds 10``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SCHEMA = """
DROP TABLE IF EXISTS limiter_source, limiter_lease, limiter_start;
CREATE {kind} TABLE limiter_source (
    source text PRIMARY KEY,
    next_start timestamptz NOT NULL DEFAULT 'epoch',
    cooldown_until timestamptz NOT NULL DEFAULT 'epoch'
);
CREATE {kind} TABLE limiter_lease (
    source text NOT NULL, lease uuid NOT NULL, expires timestamptz NOT NULL,
    PRIMARY KEY (source, lease)
);
CREATE {kind} TABLE limiter_start (
    source text NOT NULL, at timestamptz NOT NULL
);
CREATE INDEX limiter_start_at ON limiter_start (source, at DESC);

CREATE OR REPLACE FUNCTION limiter_acquire(
    p_source text, p_lease uuid, p_lease_ms int, p_cap int,
    p_spacing_ms int, p_window_ms int, p_window_n int
) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    now_ts timestamptz := clock_timestamp();
    st limiter_source%ROWTYPE;
    wait_ms double precision := 0;
    nth timestamptz;
    leases int;
BEGIN
    SELECT * INTO st FROM limiter_source WHERE source = p_source FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO limiter_source (source) VALUES (p_source) ON CONFLICT DO NOTHING;
        SELECT * INTO st FROM limiter_source WHERE source = p_source FOR UPDATE;
    END IF;
    now_ts := clock_timestamp();  -- after the lock: the decision's own time
    DELETE FROM limiter_lease WHERE source = p_source AND expires < now_ts;
    DELETE FROM limiter_start
        WHERE source = p_source AND at < now_ts - make_interval(secs => p_window_ms / 1000.0);
    wait_ms := greatest(
        0,
        extract(epoch FROM st.cooldown_until - now_ts) * 1000,
        extract(epoch FROM st.next_start - now_ts) * 1000
    );
    SELECT at INTO nth FROM limiter_start WHERE source = p_source
        ORDER BY at DESC OFFSET p_window_n - 1 LIMIT 1;
    IF FOUND THEN
        wait_ms := greatest(wait_ms,
            extract(epoch FROM nth + make_interval(secs => p_window_ms / 1000.0) - now_ts) * 1000);
    END IF;
    IF wait_ms > 0 THEN
        RETURN ceil(wait_ms)::int;
    END IF;
    SELECT count(*) INTO leases FROM limiter_lease WHERE source = p_source;
    IF leases >= p_cap THEN
        RETURN -1;
    END IF;
    INSERT INTO limiter_lease VALUES (p_source, p_lease,
        now_ts + make_interval(secs => p_lease_ms / 1000.0));
    INSERT INTO limiter_start VALUES (p_source, now_ts);
    UPDATE limiter_source SET next_start = now_ts + make_interval(secs => p_spacing_ms / 1000.0)
        WHERE source = p_source;
    RETURN 0;
END $$;

CREATE OR REPLACE FUNCTION limiter_release(p_source text, p_lease uuid) RETURNS void
LANGUAGE sql AS $$ DELETE FROM limiter_lease WHERE source = p_source AND lease = p_lease $$;
"""

#: (name, cap, spacing_ms, window_ms, window_n)
PROFILES = {
    "admit-all": ("free", 1_000, 0, 60_000, 1_000_000),
    "coingecko-like": ("coingecko", 3, 2_000, 60_000, 30),
}


async def _worker(
    dsn: str, profile: str, tasks: int, seconds: float, hold_ms: float
) -> dict[str, Any]:
    import asyncpg  # type: ignore[import-untyped]

    source, cap, spacing, window, n = PROFILES[profile]
    pool = await asyncpg.create_pool(dsn, min_size=tasks, max_size=tasks)
    latencies: list[float] = []
    admitted = refused = 0
    deadline = time.perf_counter() + seconds

    async def task() -> None:
        nonlocal admitted, refused
        while time.perf_counter() < deadline:
            lease = uuid.uuid4()
            t0 = time.perf_counter()
            wait = await pool.fetchval(
                "SELECT limiter_acquire($1, $2, 30000, $3, $4, $5, $6)",
                source, lease, cap, spacing, window, n,
            )  # fmt: skip
            latencies.append(time.perf_counter() - t0)
            if wait == 0:
                admitted += 1
                await asyncio.sleep(hold_ms / 1000)
                await pool.execute("SELECT limiter_release($1, $2)", source, lease)
            else:
                refused += 1
                await asyncio.sleep(0.005)  # a refusal: back off briefly, ask again

    await asyncio.gather(*(task() for _ in range(tasks)))
    await pool.close()
    return {"latencies": latencies, "admitted": admitted, "refused": refused}


def _process(dsn: str, profile: str, tasks: int, seconds: float, hold_ms: float) -> dict[str, Any]:
    return asyncio.run(_worker(dsn, profile, tasks, seconds, hold_ms))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_profile(
    dsn: str, profile: str, procs: int, tasks: int, seconds: float, hold_ms: float
) -> dict[str, Any]:
    """`procs` processes × `tasks` tasks asking for `profile`'s source for `seconds`."""
    args = [(dsn, profile, tasks, seconds, hold_ms)] * procs
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        results = pool.starmap(_process, args)
    lat = [x for r in results for x in r["latencies"]]
    admitted = sum(r["admitted"] for r in results)
    return {
        "profile": profile,
        "procs": procs,
        "tasks_per_proc": tasks,
        "calls": len(lat),
        "admitted": admitted,
        "admitted_per_s": round(admitted / seconds, 1),
        "calls_per_s": round(len(lat) / seconds, 1),
        "acquire_ms": {
            "p50": round(1000 * statistics.median(lat), 3),
            "p90": round(1000 * _percentile(lat, 0.9), 3),
            "p99": round(1000 * _percentile(lat, 0.99), 3),
            "max": round(1000 * max(lat), 3),
        },
    }


async def _prepare(dsn: str, unlogged: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA.replace("{kind}", "UNLOGGED" if unlogged else ""))
    finally:
        await conn.close()


def _violations(dsn: str, spacing_ms: int) -> dict[str, Any]:
    """Gaps between consecutive recorded starts of the coingecko-like source."""

    async def go() -> list[float]:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT extract(epoch FROM at) AS t FROM limiter_start "
                "WHERE source = 'coingecko' ORDER BY at"
            )
        finally:
            await conn.close()
        return [float(r["t"]) for r in rows]

    starts = asyncio.run(go())
    gaps = [1000 * (b - a) for a, b in itertools.pairwise(starts)]
    return {
        "starts": len(starts),
        "min_gap_ms": round(min(gaps), 3) if gaps else None,
        "gaps_below_spacing": sum(1 for g in gaps if g < spacing_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hold-ms", type=float, default=20.0, help="time a lease is held")
    args = parser.parse_args()
    from storage.pgserver import PgServer

    pg = PgServer(fsync=True).start()
    try:
        dsn = pg.url.replace("postgresql+asyncpg", "postgresql")
        out = []
        for unlogged in (False, True):
            asyncio.run(_prepare(dsn, unlogged))
            for p in PROFILES:
                figures = run_profile(dsn, p, args.procs, args.tasks, args.seconds, args.hold_ms)
                figures["tables"] = "unlogged" if unlogged else "logged (WAL, fsync on)"
                if p == "coingecko-like":
                    figures |= _violations(dsn, PROFILES[p][2])
                out.append(figures)
        print(json.dumps(out, indent=2))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
