"""The SQLite store's file: one that cannot be opened is named, and once open, a file that is
replaced or whose directory is no longer one is noticed before anything is committed into it
(``Store.file_problem``)."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from relay.model.errors import StoreError
from relay.store import Store, StoreProtocol
from relay.store.storethread import StoreThread
from tests.support.store import bare_intake


def test_a_database_path_that_is_a_directory_cannot_be_opened(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    path.mkdir()
    with pytest.raises(StoreError) as refused:
        Store(path)
    assert str(refused.value).startswith(f"the database {path} cannot be opened: ")


async def test_a_replaced_database_file_is_noticed_and_nothing_is_committed_into_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.db"
    thread = StoreThread(Store(path))
    try:
        assert (await thread.accept(bare_intake(1))).conversation_id == 1
        # A restore copies another file over it while the relay runs.
        other = tmp_path / "restored.db"
        with closing(sqlite3.connect(other)) as db:
            db.execute("CREATE TABLE t (x)")
        other.replace(path)
        with pytest.raises(StoreError) as refused:
            await thread.accept(bare_intake(2))
    finally:
        thread.close()
    problem = f"the database file {path} was replaced while the relay had it open"
    assert str(refused.value) == problem
    assert thread.intake_error == problem


def test_a_state_directory_that_is_no_longer_one_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = Store(state / "relay.db")
    try:
        shutil.rmtree(state)
        state.write_text("not a directory")
        problem = store.file_problem()
    finally:
        store.close()
    assert problem is not None
    assert problem.startswith(f"the database file {state / 'relay.db'} cannot be checked: ")


async def test_what_was_written_into_a_file_deleted_meanwhile_is_not_acknowledged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.db"
    thread = StoreThread(Store(path))

    def deleted_during_the_write(store: StoreProtocol) -> int:
        path.unlink()  # as an operator's rm would, between the check and the commit
        return store.accept(bare_intake(1)).conversation_id

    try:
        with pytest.raises(StoreError) as refused:
            await thread.call(deleted_during_the_write)
    finally:
        thread.close()
    assert str(refused.value) == f"the database file {path} was deleted while the relay had it open"
