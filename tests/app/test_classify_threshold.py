"""``classify.low_rating_threshold`` is honoured everywhere a conversation is classified: intake,
``relay routes test`` and ``relay replay``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from litestar.testing import TestClient

from relay.app import create_app
from relay.cli.main import main
from tests.support.config import write_config
from tests.support.data import TOKEN, sample
from tests.support.store import select_rows

HOOK = f"/hooks/smartsupp/{TOKEN}"


def rated(channel_id: int, rating: int) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = channel_id
    data["channel"]["rating"] = rating
    return json.dumps(data).encode()


def test_a_raised_threshold_makes_intake_routes_test_and_replay_say_low_rated(
    tmp_path: Path,
) -> None:
    # Rating 4 is normal under the default threshold of 2, low-rated under a threshold of 4.
    config, settings = write_config(tmp_path, classify={"low_rating_threshold": 4})
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=rated(41, 4)).status_code == 200
        assert client.post(HOOK, content=rated(51, 5)).status_code == 200
    stored = select_rows(settings, "SELECT conv_key, category FROM conversations ORDER BY id")
    assert stored == [
        {"conv_key": "208-41", "category": "low-rated"},
        {"conv_key": "208-51", "category": "normal"},
    ]

    payload = tmp_path / "rated-4.json"
    payload.write_bytes(rated(41, 4))
    runner = CliRunner()
    explained = runner.invoke(main, ["routes", "test", str(payload), "--config", str(config)])
    assert explained.exit_code == 0, explained.output
    assert explained.output.startswith("conversation 208-41: category low-rated,")

    replayed = runner.invoke(main, ["replay", "208-41", "--config", str(config)])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.startswith("conversation 208-41 (id 1, low-rated): ")


def test_the_default_threshold_keeps_rating_4_normal(tmp_path: Path) -> None:
    """The same steps without the setting: the test above is not passing by accident."""
    config, settings = write_config(tmp_path)
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=rated(41, 4)).status_code == 200
    assert select_rows(settings, "SELECT category FROM conversations") == [{"category": "normal"}]
    payload = tmp_path / "rated-4.json"
    payload.write_bytes(rated(41, 4))
    runner = CliRunner()
    explained = runner.invoke(main, ["routes", "test", str(payload), "--config", str(config)])
    assert explained.output.startswith("conversation 208-41: category normal,")
    replayed = runner.invoke(main, ["replay", "208-41", "--config", str(config)])
    assert replayed.output.startswith("conversation 208-41 (id 1, normal): ")
