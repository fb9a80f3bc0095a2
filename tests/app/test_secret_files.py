"""Secrets the relay generates into its state directory (the hook token, the follow-up link key,
the console's session key): written whole, kept private, and a file too short to be one (a write
cut short by a crash or a full disk) refused instead of used."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from relay.config.settings import Settings
from relay.console.auth import session_key
from relay.leads.links import link_key
from relay.model.errors import ConfigError
from relay.ops.secretfile import kept_secret
from relay.runtime import hook_token

# (file name, the secret as the relay reads it from a state directory)
SECRETS: dict[str, Callable[[Settings, Path], str | bytes]] = {
    "hook_token": lambda settings, state: hook_token(settings),
    "link_key": lambda settings, state: link_key(settings.follow_up, state),
    "console_key": lambda settings, state: session_key(settings.console, state),
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(server={"hook_token": None})


@pytest.mark.parametrize("name", SECRETS)
def test_a_generated_secret_is_private_whole_and_kept(settings: Settings, name: str) -> None:
    state = Path(settings.storage.state_dir)
    first = SECRETS[name](settings, state)
    assert len(first) >= 32
    assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert SECRETS[name](settings, state) == first
    # Nothing left beside it: the temporary file it was written to is gone.
    assert [p.name for p in state.iterdir() if name in p.name] == [name]


@pytest.mark.parametrize("name", SECRETS)
@pytest.mark.parametrize("written", [b"", b"\n", b"short\n", b"\xff\xfe not text at all " * 4])
def test_a_secret_file_that_is_not_a_whole_secret_is_refused(
    settings: Settings, name: str, written: bytes
) -> None:
    state = Path(settings.storage.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / name).write_bytes(written)
    with pytest.raises(ConfigError, match=rf"{name}.*(delete it|not text)"):
        SECRETS[name](settings, state)
    assert (state / name).read_bytes() == written  # left for the operator to look at


def test_relays_making_the_secret_at_once_all_use_the_first(tmp_path: Path) -> None:
    path = tmp_path / "state" / "key"
    start = threading.Barrier(8)
    found: list[str] = []
    made: list[bool] = []
    lock = threading.Lock()

    def make(n: int) -> None:
        start.wait()
        secret, new = kept_secret(path, lambda: f"secret-of-thread-{n:02d}" * 2, min_length=32,
                                  what="a test secret")  # fmt: skip
        with lock:
            found.append(secret)
            made.append(new)

    threads = [threading.Thread(target=make, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and made.count(True) == 1
    assert path.read_text(encoding="utf-8") == found[0] + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["key"]
