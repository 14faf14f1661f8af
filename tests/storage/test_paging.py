"""History pages, runs pages and downsampling, on SQLite and PostgreSQL, at fixed times."""

from __future__ import annotations

import pytest
from serieskit import T0, fill_run, secs

from coinharvest.errors import ConfigError
from coinharvest.storage import open_database
from coinharvest.storage.downsample import bucket_seconds, downsample
from coinharvest.storage.paging import history_page, runs_page


async def test_history_pages_give_every_row_once_in_order(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        # 250 points, with ties on observed_at (several points share a second)
        points = [(T0 + secs(i // 3), float(i)) for i in range(250)]
        await fill_run(db, "r1", T0, points)
        seen: list[float] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await history_page(db, "btc", "price_usd", limit=40, cursor=cursor)
            seen += [p.value or 0.0 for p in page.rows]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == [float(i) for i in range(250)] and len(set(seen)) == 250
        assert pages == 7
        window = await history_page(
            db, "BTC", "price_usd", since=T0 + secs(10), until=T0 + secs(20)
        )
        assert [p.value for p in window.rows] == [float(i) for i in range(30, 60)]
        assert window.next_cursor is None
    finally:
        await db.dispose()


async def test_cursors_are_checked(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        await fill_run(db, "r1", T0, [(T0 + secs(i), float(i)) for i in range(5)])
        page = await history_page(db, "BTC", "price_usd", limit=2)
        assert page.next_cursor
        body, _, check = page.next_cursor.partition(".")
        for bad in (body[:-2] + "AA." + check, body + ".0000", "garbage", page.next_cursor + "x"):
            with pytest.raises(ConfigError, match="cursor"):
                await history_page(db, "BTC", "price_usd", cursor=bad)
        with pytest.raises(ConfigError, match="cursor"):  # another series' cursor
            await history_page(db, "ETH", "price_usd", cursor=page.next_cursor)
        with pytest.raises(ConfigError, match="cursor"):
            await runs_page(db, cursor=page.next_cursor)
    finally:
        await db.dispose()


async def test_runs_pages_newest_first(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        for i in range(7):  # two runs share each start time: run_id breaks the tie
            await fill_run(db, f"r{i}", T0 + secs(i // 2), [])
        got, cursor = [], None
        while True:
            page = await runs_page(db, limit=3, cursor=cursor)
            got += [r.run_id for r in page.rows]
            if (cursor := page.next_cursor) is None:
                break
        assert got == ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]
    finally:
        await db.dispose()


async def test_downsampling_keeps_the_last_value_of_each_bucket(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        # one point every 10 s for 1000 s; ask for 10 points: buckets of 100 s
        await fill_run(db, "r1", T0, [(T0 + secs(10 * i), float(i)) for i in range(100)])
        thin = await downsample(
            db, "BTC", "price_usd", since=T0, until=T0 + secs(1000), max_points=10
        )
        assert thin.bucket_s == 100 and thin.downsampled
        assert [p.value for p in thin.points] == [float(10 * b + 9) for b in range(10)]
        assert [p.observed_at for p in thin.points] == [T0 + secs(100 * b + 90) for b in range(10)]
        few = await downsample(db, "BTC", "price_usd", since=T0, until=T0 + secs(50), max_points=10)
        assert [p.value for p in few.points] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert not few.downsampled and few.bucket_s == 5
        whole = await downsample(
            db, "BTC", "price_usd", since=None, until=T0 + secs(991), max_points=7
        )
        assert len(whole.points) <= 7 and whole.points[-1].value == 99.0
        none = await downsample(db, "XYZ", "price_usd", since=None, until=T0, max_points=7)
        assert none.points == [] and not none.downsampled
    finally:
        await db.dispose()


@pytest.mark.parametrize("n", [2, 3, 7, 100, 5000])
@pytest.mark.parametrize("span", [1, 59, 86400, 86401, 10**7 + 3])
def test_bucket_count_never_exceeds_max_points(n: int, span: int) -> None:
    start = T0 + secs(0.25)
    size = bucket_seconds(start, start + secs(span), n)
    last_bucket = (int((start + secs(span - 0.001)).timestamp()) - int(start.timestamp())) // size
    assert last_bucket + 1 <= n


async def test_pages_and_downsampling_read_the_series_index(db_url: str) -> None:
    """EXPLAIN (QUERY PLAN) of the statements really sent names the (symbol, metric,
    observed_at) index."""
    from sqlalchemy import event, text

    db = await open_database(db_url)
    sent: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "FROM observations" in statement and not statement.startswith("EXPLAIN"):
            sent.append((statement, params))

    event.listen(db.sync_engine, "before_cursor_execute", record)
    try:
        await fill_run(db, "r1", T0, [(T0 + secs(i), float(i)) for i in range(50)])
        page = await history_page(db, "BTC", "price_usd", since=T0, limit=10)
        await history_page(db, "BTC", "price_usd", limit=10, cursor=page.next_cursor)
        await downsample(db, "BTC", "price_usd", since=T0, until=T0 + secs(50), max_points=5)
        event.remove(db.sync_engine, "before_cursor_execute", record)
        assert len(sent) == 3
        sqlite = db.dialect.name == "sqlite"
        async with db.connect() as conn:
            if not sqlite:  # a tiny table: make the planner show what it would do at scale
                await conn.execute(text("SET enable_seqscan = off"))
            for statement, params in sent:
                explain = ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement
                raw = await conn.exec_driver_sql(explain, params)  # type: ignore[arg-type]
                plan = "\n".join(str(row) for row in raw)
                assert "ix_observations_symbol_metric_observed_at" in plan, plan
    finally:
        await db.dispose()
