"""A relay whose store cannot grow, through a real `relay serve` process: the file-size limit
(RLIMIT_FSIZE) makes every write past it fail with EFBIG, as a full disk does. Intake then
answers 503 (never a 2xx for what was not committed), /readyz says why, and a body refused
meanwhile is still answered although its quarantine row cannot be written."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx

from tests.support.config import write_sections
from tests.support.data import TOKEN, sample
from tests.support.process import RelayProcess
from tests.support.smtp import free_port

# Room for the new database and a few conversations; the write-ahead log outgrows it.
FILE_SIZE_LIMIT = 3 * 1024 * 1024
MESSAGE_BYTES = 300_000  # each conversation's text: about ten fit under the limit


def large_conversation(n: int) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = 9_000 + n
    data["messages"][0]["content"] = f"conversation {n} " + "x" * MESSAGE_BYTES
    return json.dumps(data).encode()


def test_a_full_disk_is_answered_503_and_said_by_readiness(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    config = write_sections(
        tmp_path / "relay.toml",
        {
            "server": {"host": "127.0.0.1", "port": port, "hook_token": TOKEN},
            "storage": {"state_dir": str(state)},
            "delivery": {"render_processes": 0},
            # Nothing is sent: every conversation is kept, none planned for delivery.
            "routing": {"fallback": "drop"},
        },
    )
    hook = f"http://127.0.0.1:{port}/hooks/smartsupp/{TOKEN}"
    with RelayProcess(config, port, file_size=FILE_SIZE_LIMIT) as relay, httpx.Client() as client:
        accepted: list[int] = []
        statuses: list[int] = []
        for n in range(40):
            status = client.post(hook, content=large_conversation(n)).status_code
            statuses.append(status)
            if status != 200:
                break
            accepted.append(n)
        assert statuses[-1] == 503, statuses
        refused = client.post(hook, content=large_conversation(99))
        assert refused.status_code == 503
        assert refused.json() == {
            "error": "storage_unavailable",
            "message": "the store cannot write",
        }
        ready = client.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 503
        store = ready.json()["checks"]["store"]
        assert store["ok"] is False
        # SQLite reports the failed write of its log as an I/O error (or a full disk).
        assert store["detail"].startswith("the last intake could not be committed: ")
        assert ("disk I/O error" in store["detail"]) or ("disk is full" in store["detail"])
        # A large body that is not JSON is still answered 400, although its quarantine row
        # cannot be written.
        bad = client.post(hook, content=b"{not json " + b"x" * 1_000_000)
        assert bad.status_code == 400
        assert bad.json()["quarantine_id"] is None
        relay.wait_for_line(re.escape("could not quarantine a refused body"))
        relay.wait_for_line(re.escape("could not store conversation"))
    # Everything answered 200 was committed; nothing answered 503 was.
    assert accepted, "no conversation fitted under the limit"
    with closing(sqlite3.connect(state / "relay.db")) as db:
        keys = {row[0] for row in db.execute("SELECT conv_key FROM conversations")}
    assert {int(key.rsplit("-", 1)[1]) - 9_000 for key in keys} == set(accepted)
