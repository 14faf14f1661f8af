"""SQLite connections go back to the pool outside any transaction, whatever their user did.

The pool rolls a returning connection back only when it is in a transaction (a trip to
aiosqlite's thread saved after every commit). A caller cancelled while its BEGIN waits on
that thread must still leave no transaction open behind it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from coinharvest.storage.database import open_database


async def test_a_transaction_cancelled_at_any_point_leaves_the_pool_clean(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    failures: list[str] = []
    try:
        for i in range(120):

            async def work() -> None:
                async with db.begin() as conn:
                    await conn.execute(text("SELECT 1"))

            task = asyncio.create_task(work())
            for _ in range(i % 6):  # cancel it at a different step each time
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.002)  # the BEGIN, if sent, runs on the thread meanwhile
            try:
                async with db.begin() as conn:
                    await conn.execute(text("SELECT 1"))
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:120])
    finally:
        await db.dispose()
    assert failures == []
