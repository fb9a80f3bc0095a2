"""A store that cannot keep what it is given says so: a database file deleted under a running
relay makes /readyz and the hook answer 503, a damaged file stops `relay serve` and `relay queue`
with one message naming it, and failing intake commits make the store not ready."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from relay.model.errors import StoreError
from relay.ops.health import readiness
from relay.store import Accepted, Intake, Store
from relay.store.storethread import StoreThread
from tests.support.config import write_config
from tests.support.data import body, sample
from tests.support.process import RelayProcess, relay_command
from tests.support.smtp import free_port
from tests.support.store import bare_intake


def missed(channel_id: int) -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["channel"]["id"] = channel_id
    return body(data)


def start(tmp_path: Path) -> tuple[RelayProcess, Path]:
    port = free_port()
    config, settings = write_config(tmp_path, server={"port": port})
    relay = RelayProcess(config, port)
    relay.start()
    return relay, Path(settings.storage.state_dir)


@pytest.mark.slow
def test_a_deleted_state_dir_makes_readiness_and_the_hook_answer_503(tmp_path: Path) -> None:
    relay, state = start(tmp_path)
    ready = f"http://127.0.0.1:{relay.port}/readyz"
    try:
        with httpx.Client(timeout=10) as client:
            assert relay.post(client, missed(1)).status_code == 200
            assert client.get(ready).status_code == 200

            shutil.rmtree(state)

            response = client.get(ready)
            assert response.status_code == 503
            store = response.json()["checks"]["store"]
            assert store["ok"] is False
            assert store["detail"] == (
                f"the database file {state / 'relay.db'} was deleted while the relay had it open"
            )
            hook = relay.post(client, missed(2))
            assert hook.status_code == 503  # not acknowledged into a deleted file
            assert hook.json()["error"] == "storage_unavailable"
        relay.wait_for_line(r"was deleted while the relay had it open: nothing can be stored")
    finally:
        relay.ensure_stopped()


def damage_deliveries(database: Path) -> None:
    """Overwrite the pages of the deliveries table in the file (as a failing disk would)."""
    conn = sqlite3.connect(database)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every committed row in the file
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        roots = [
            row[0]
            for row in conn.execute(
                "SELECT rootpage FROM sqlite_master WHERE tbl_name = 'deliveries'"
            )
        ]
    finally:
        conn.close()
    with database.open("r+b") as file:
        for page in roots:  # small tables and indexes: each is a single page, its root
            file.seek((page - 1) * page_size)
            file.write(b"\xa5" * page_size)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [*relay_command(), *args], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`relay {' '.join(args)}` kept running on a damaged store")


@pytest.mark.slow
def test_a_damaged_store_stops_serve_and_queue_with_a_message_naming_the_file(
    tmp_path: Path,
) -> None:
    relay, state = start(tmp_path)
    try:
        with httpx.Client(timeout=10) as client:
            for channel_id in range(1, 4):
                assert relay.post(client, missed(channel_id)).status_code == 200
    finally:
        relay.terminate()
    database = state / "relay.db"
    damage_deliveries(database)

    served = run("serve", "--config", str(relay.config))
    assert served.returncode != 0
    assert f"the database {database} is damaged: " in served.stderr
    assert "Traceback" not in served.stderr
    assert "Uvicorn running" not in served.stderr

    queued = run("queue", "--config", str(relay.config))
    assert queued.returncode != 0
    assert f"the database {database} is damaged: " in queued.stderr
    assert "restore it from a backup or move it aside" in queued.stderr
    assert "Traceback" not in queued.stderr


class DamagedPages(Store):
    """A store whose intake pages cannot be written while ``damaged`` (as with a corrupt
    b-tree page of the conversations or deliveries table); the health probe's row still can."""

    damaged = True

    def accept_many(self, intakes: list[Intake], now: float | None = None) -> list[Accepted]:
        if self.damaged:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return super().accept_many(intakes, now)


async def test_failing_intake_commits_make_the_store_not_ready_until_one_succeeds(
    tmp_path: Path,
) -> None:
    store = DamagedPages(tmp_path / "relay.db")
    thread = StoreThread(store)

    async def verdict() -> tuple[bool, str]:
        found = await readiness(
            thread, worker_running=True, now=time.time(), max_backlog_age=900.0, within=5.0
        )
        return found.ready, found.checks["store"].detail

    try:
        assert await verdict() == (True, "writable")
        with pytest.raises(StoreError, match=r"could not be committed: .* malformed"):
            await thread.accept(bare_intake(1))
        assert await verdict() == (
            False,
            "the last intake could not be committed: database disk image is malformed",
        )
        store.damaged = False
        assert (await thread.accept(bare_intake(2))).version == 1
        assert await verdict() == (True, "writable")
    finally:
        thread.close()


async def test_a_damaged_store_logs_one_traceback_then_one_line_per_failed_intake(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    thread = StoreThread(DamagedPages(tmp_path / "relay.db"))
    try:
        for n in range(5):
            with pytest.raises(StoreError) as failure:
                await thread.accept(bare_intake(n))
            assert str(failure.value) == (
                "the conversation could not be committed: database disk image is malformed"
            )
    finally:
        thread.close()
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
