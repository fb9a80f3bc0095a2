"""A write-ahead log created afresh (every start: the check before it closes the last
connection, which deletes the log) is named durably in its directory before the first commit
in it is acknowledged; the relay-sync thread's fdatasync flushes the file, not its name. Seen
in the system calls of a real process (strace)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay.store import Store
from tests.support.paths import ROOT
from tests.support.tools import require_program

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def strace_present() -> None:
    """strace is an apt package (.ci/run installs it)."""
    require_program(shutil.which("strace"), "strace")


# Opens the store as `relay serve` does, commits one intake and ends without closing anything
# once it is answered (as a kill would).
PROGRAM = """
import asyncio, os, sys
from pathlib import Path
from relay.store import Store
from relay.store.storethread import StoreThread
from tests.support.store import bare_intake

async def main() -> None:
    thread = StoreThread(Store(Path(sys.argv[1])))
    accepted = await thread.accept(bare_intake(1))
    print("answered", accepted.conversation_id, flush=True)
    os._exit(0)

asyncio.run(main())
"""

SYNC = re.compile(r"^\d+ +f(?:data)?sync\(\d+<(?P<path>[^>]*)>\)")


def test_a_new_log_is_named_durably_before_its_first_commit_is_answered(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    database = state / "relay.db"
    Store(database).close()  # as the check at start does: the log goes with the connection
    assert not Path(f"{database}-wal").exists()
    trace = tmp_path / "trace.txt"
    strace = ["strace", "-f", "-y", "-e", "trace=openat,fsync,fdatasync", "-o", str(trace)]
    done = subprocess.run(
        [*strace, sys.executable, "-c", PROGRAM, str(database)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "answered 1\n"
    lines = trace.read_text().splitlines()
    wal = f"{database}-wal"
    created = max(i for i, line in enumerate(lines) if f'"{wal}"' in line and "O_CREAT" in line)
    syncs = [
        (i, match["path"])
        for i, line in enumerate(lines)
        if i > created and (match := SYNC.match(line)) is not None
    ]
    # The first flush of the new log: the one the answer to its first commit waited for.
    answered = min(i for i, path in syncs if path == wal)
    directory = [i for i, path in syncs if path == str(state) and i < answered]
    assert directory, f"no flush of {state} between the log's creation and the answer"
