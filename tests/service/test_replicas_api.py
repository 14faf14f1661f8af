"""``POST /api/runs`` on a follower is forwarded to the leader through the database, and each
replica's ``/health`` names the leader: two real ``coinharvest run`` processes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from storage.conftest import pg_server  # noqa: F401  # the session's PostgreSQL server
from storage.pgserver import PgServer

from coinharvest.emulator import RunningEmulator

from .conftest import TOKEN
from .test_replicas_failover import emu, start_replicas  # noqa: F401  # the fixture

pytestmark = pytest.mark.usefixtures("emu")


async def test_a_run_asked_of_a_follower_runs_on_the_leader(
    pg_server: PgServer,  # noqa: F811
    emu: RunningEmulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    replicas = await start_replicas(
        pg_server,
        emu,
        tmp_path,
        "forward",
        count=2,
        COLLECTION_INTERVAL_MINUTES="60",
        COINHARVEST_API_TOKEN=TOKEN,
    )
    try:
        leader = await replicas.leader()
        follower = next(r for r in replicas.alive if r is not leader)
        urls = await replicas.urls()
        async with httpx.AsyncClient(timeout=20) as http:
            health = (await http.get(f"{urls[follower.pid]}/health")).json()["replication"]
            assert health["role"] == "follower"
            assert health["leader"]["replica_id"].split(":")[1] == str(leader.pid)
            await replicas.wait_runs(1)  # the tick due at start-up (the leader's)
            answer = await http.post(
                f"{urls[follower.pid]}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        row = await replicas.conn.fetchrow(
            "SELECT q.claimed_by, r.trigger, r.owner FROM run_requests q "
            "JOIN runs r ON r.run_id = q.run_id WHERE q.run_id = $1",
            run_id,
        )
        assert row is not None
        assert row["trigger"] == "api"
        assert row["owner"].endswith(f":{leader.pid}")  # it ran on the leader
        await replicas.stop_all()
    except BaseException:
        await replicas.kill_all()
        print(replicas.logs_text())
        raise
    finally:
        await replicas.conn.close()
