"""The SQLite writer survives a write that was cancelled half-way (a time limit, a cancelled job)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tam.adapters.sqlite.database import sqlite_database


async def test_a_write_after_a_cancelled_begin_still_works(tmp_path: Path) -> None:
    async with sqlite_database(tmp_path / "t.db") as db:
        async with db.write() as conn:
            await conn.execute("create table t (x integer)")
        # What a cancelled `begin immediate` leaves behind: an open transaction on the writer.
        assert db._writer is not None
        await db._writer.execute("begin immediate")
        await db._writer.execute("insert into t values (1)")
        async with db.write() as conn:
            await conn.execute("insert into t values (2)")
        assert [tuple(r) for r in await db.fetch("select x from t")] == [(2,)]


async def test_a_write_cancelled_inside_its_transaction_rolls_back(tmp_path: Path) -> None:
    async with sqlite_database(tmp_path / "t.db") as db:
        async with db.write() as conn:
            await conn.execute("create table t (x integer)")
        started = asyncio.Event()

        async def slow_write() -> None:
            async with db.write() as conn:
                await conn.execute("insert into t values (1)")
                started.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(slow_write())
        await started.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with db.write() as conn:
            await conn.execute("insert into t values (2)")
        assert [tuple(r) for r in await db.fetch("select x from t")] == [(2,)]
