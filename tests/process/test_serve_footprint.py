"""What a real `relay serve` on its built-in defaults imports while it takes a hook and writes the
email to the outbox: nothing of the console until it is opened, no templates (the render
helper renders), and no framework plugin for models the relay does not use; each was resident
memory in every relay."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.support.config import write_sections
from tests.support.data import TOKEN
from tests.support.footprint import RENDER_LIBRARIES, SENDER_LIBRARIES
from tests.support.paths import SAMPLES
from tests.support.process import RelayProcess
from tests.support.smtp import free_port

# Loaded into `relay serve` (and its render helper) through PYTHONPATH: each process writes its
# modules to <pid>.json when it exits.
RECORD_MODULES = """
import atexit, json, os, sys

def _record():
    path = os.path.join(os.environ["FOOTPRINT_MODULES"], f"{os.getpid()}.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(sorted(sys.modules), out)

atexit.register(_record)
"""

KEPT_OUT = (
    "jinja2",  # templates: compiled in the render helper; console and lead pages on first use
    "babel",  # dates and numbers: formatted in the render helper
    "argon2",  # console passwords: at the first login
    "relay.console.http",  # the console's pages and routes: at the first request for /console
    "ctypes",  # the render helper's prctl(): imported in the helper
    "statistics",  # the daily digest's median and the console's statistics
    "pydantic.v1",  # Litestar's pydantic plugin: the handlers take and answer no models
    "litestar.plugins.pydantic",
    "attr",  # Litestar's attrs plugin, as above
    "litestar.plugins.attrs",
    "email.policy",  # the message object: made from the flattened bytes only when asked for
    "email.headerregistry",  # with email.policy, as above
    "email.generator",  # flattening: in the render helper
    "relay.render.headers",  # the header check of flattening, as above
    "relay.leads.digest",  # the daily digest's email: when one is sent
    "relay.leads.pages",  # the lead pages: on the first request for one
    "relay.render.environment",  # Jinja environments' filters: lead pages, digest, helper
    "relay.render.view",  # the conversation's view for templates: in the render helper
    "markupsafe",  # the filters' escaping, as above
)


@pytest.mark.slow
def test_an_idle_relay_serve_on_the_defaults_imports_only_what_it_uses(tmp_path: Path) -> None:
    port = free_port()
    config = write_sections(
        tmp_path / "relay.toml",
        {
            "server": {"port": port, "hook_token": TOKEN},
            "storage": {"state_dir": str(tmp_path / "state")},
        },
    )
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RECORD_MODULES, encoding="utf-8")
    recorded = tmp_path / "modules"
    recorded.mkdir()
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"PYTHONPATH": os.pathsep.join(paths), "FOOTPRINT_MODULES": str(recorded)}
    with RelayProcess(config, port, env=env) as relay:
        missed = (SAMPLES / "missed-chat.json").read_bytes()  # the built-in rules email it
        assert httpx.post(relay.url, content=missed).status_code == 200
        relay.wait_for_line("delivery 1 written to the outbox, not sent")
        # No API description is built or served.
        assert httpx.get(f"http://127.0.0.1:{port}/schema").status_code == 404
        assert relay.proc is not None
        pid = relay.proc.pid
        assert relay.terminate() == 0
    imported = set(json.loads((recorded / f"{pid}.json").read_text(encoding="utf-8")))
    assert {"relay.app", "relay.console.auth", "relay.leads.http", "uvicorn"} <= imported
    for name in (*KEPT_OUT, *RENDER_LIBRARIES, *SENDER_LIBRARIES):
        assert name not in imported, name
