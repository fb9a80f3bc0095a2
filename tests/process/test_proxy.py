"""Behind a reverse proxy: the client address from X-Forwarded-For, and the hook allowlist,
through a real `relay serve` process on 127.0.0.1."""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from relay.runtime import Network, client_address
from tests.support.config import write_sections
from tests.support.data import TOKEN, body, sample
from tests.support.process import RelayProcess
from tests.support.smtp import free_port

LOOPBACK: list[Network] = [ipaddress.ip_network("127.0.0.0/8")]
PROXIES: list[Network] = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        # No trusted proxies: the header is ignored, whoever sends it.
        ("198.51.100.9", "203.0.113.7", [], "198.51.100.9"),
        # The peer is not a trusted proxy: its header is a claim, not evidence.
        ("198.51.100.9", "203.0.113.7", PROXIES, "198.51.100.9"),
        # One trusted proxy: the entry it appended is the client.
        ("10.0.0.2", "203.0.113.7", PROXIES, "203.0.113.7"),
        # The client forged an entry; the proxy appended the real address on the right.
        ("10.0.0.2", "192.0.2.1, 203.0.113.7", PROXIES, "203.0.113.7"),
        # Two trusted proxies in a chain: skip both, take the first untrusted hop.
        ("10.0.0.2", "192.0.2.1, 203.0.113.7, 10.0.0.9", PROXIES, "203.0.113.7"),
        # Spaces, IPv6, and a trusted IPv6 peer.
        ("::1", " 2001:db8::5 ", PROXIES, "2001:db8::5"),
        ("::1", "[2001:db8::5]", PROXIES, "2001:db8::5"),
        # A dual-stack socket reports an IPv4 proxy as ::ffff:a.b.c.d.
        ("::ffff:10.0.0.2", "203.0.113.7", PROXIES, "203.0.113.7"),
        # Trusted peer without a header, or with only trusted hops: the nearest trusted hop.
        ("10.0.0.2", "", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "10.0.0.3", PROXIES, "10.0.0.3"),
        # An entry that is not an address ends the walk at the last trusted hop.
        ("10.0.0.2", "203.0.113.7, garbage", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "garbage, 10.0.0.3", PROXIES, "10.0.0.3"),
        (None, "203.0.113.7", PROXIES, None),
    ],
)
def test_client_address_walks_forwarded_for_from_the_right(
    peer: str | None, forwarded: str, trusted: list[Network], expected: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def stored(state: Path) -> dict[str, int]:
    with sqlite3.connect(state / "relay.db") as db:
        return {
            table: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 -- fixed table names
            for table in ("conversations", "quarantine", "deliveries")
        }


def serve(tmp_path: Path, **server: object) -> tuple[RelayProcess, str, Path]:
    state = tmp_path / "state"
    port = free_port()
    config = write_sections(
        tmp_path / "relay.toml",
        {
            "server": {"host": "127.0.0.1", "port": port, "hook_token": TOKEN, **server},
            "storage": {"state_dir": str(state)},
            "logging": {"format": "json"},
        },
    )
    return RelayProcess(config, port), f"http://127.0.0.1:{port}/hooks/smartsupp/{TOKEN}", state


@pytest.fixture
def missed() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return body(data)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as http:
        yield http


def test_allowlist_without_the_caller_refuses_and_stores_nothing(
    tmp_path: Path, missed: bytes, client: httpx.Client
) -> None:
    process, url, state = serve(
        tmp_path, hook_allowlist=["203.0.113.0/24"], trusted_proxies=["127.0.0.0/8"]
    )
    with process:
        # Straight from 127.0.0.1 (a trusted proxy, but no header): the client is 127.0.0.1.
        direct = client.post(url, content=missed)
        # Forged on the left, the proxy's own entry on the right decides.
        forged = client.post(
            url, content=missed, headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}
        )
        # A wrong token from outside the allowlist is refused for the address too.
        wrong_token = client.post(url.replace(TOKEN, "guess"), content=missed)
        # A broken body from outside is not even read, so not quarantined.
        broken = client.post(url, content=b"{not json")
        assert [r.status_code for r in (direct, forged, wrong_token, broken)] == [403] * 4
        assert direct.json()["error"] == "forbidden"
        assert "127.0.0.1" in direct.json()["message"]
        assert "198.51.100.2" in forged.json()["message"]
        assert stored(state) == {"conversations": 0, "quarantine": 0, "deliveries": 0}

        # Through the trusted proxy for an allowed client: accepted and stored.
        allowed = client.post(url, content=missed, headers={"X-Forwarded-For": "203.0.113.7"})
        assert allowed.status_code == 200, allowed.text
        assert stored(state)["conversations"] == 1

        # The refusal was logged (as JSON) with the address and the request's id.
        rid = forged.headers["X-Request-ID"]
        line = process.wait_for_line(re.escape(f'"request_id": "{rid}"'))
    event = json.loads(line)
    assert event["level"] == "warning"
    refusal = "hook call from 198.51.100.2 refused: not in server.hook_allowlist"
    assert event["message"] == refusal
    for text in process.lines:
        json.loads(text)  # every line, uvicorn's included, is one JSON event


def test_allowlist_with_the_caller_accepts_and_ignores_untrusted_forwarded_for(
    tmp_path: Path, missed: bytes, client: httpx.Client
) -> None:
    process, url, state = serve(tmp_path, hook_allowlist=["127.0.0.0/8"])
    with process:
        # No trusted proxies: a header claiming an outside address changes nothing.
        response = client.post(url, content=missed, headers={"X-Forwarded-For": "198.51.100.2"})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        assert stored(state)["conversations"] == 1
        # A body the relay refuses is quarantined with the real peer address.
        refused = client.post(url, content=b"{not json")
        assert refused.status_code == 400
    with sqlite3.connect(state / "relay.db") as db:
        assert db.execute("SELECT remote FROM quarantine").fetchall() == [("127.0.0.1",)]


def post_with_forwarded_lines(url: str, content: bytes, lines: list[str]) -> tuple[int, str]:
    """POST with one X-Forwarded-For header line per entry of ``lines``, sent as separate
    lines on the wire (most clients would merge them into one)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        connection.putrequest("POST", parts.path)
        for line in lines:
            connection.putheader("X-Forwarded-For", line)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(content)))
        connection.endheaders(content)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.slow
def test_allowlist_reads_every_forwarded_for_line(tmp_path: Path, missed: bytes) -> None:
    # 127.0.0.1 plays a proxy that appends its own X-Forwarded-For line (as HAProxy does)
    # after whatever lines the client sent.
    process, url, state = serve(
        tmp_path, hook_allowlist=["203.0.113.0/24"], trusted_proxies=["127.0.0.0/8"]
    )
    with process:
        # A forbidden client claims an allowed address in its own line; the proxy's line
        # names the real client and decides.
        status, text = post_with_forwarded_lines(url, missed, ["203.0.113.7", "198.51.100.2"])
        assert status == 403, text
        assert json.loads(text)["error"] == "forbidden"
        assert "198.51.100.2" in json.loads(text)["message"]
        # Several entries per line and several lines: one list, walked from the right.
        status, text = post_with_forwarded_lines(
            url, missed, ["203.0.113.7, 203.0.113.8", "198.51.100.2, 127.0.0.5"]
        )
        assert status == 403, text
        assert "198.51.100.2" in json.loads(text)["message"]
        assert stored(state) == {"conversations": 0, "quarantine": 0, "deliveries": 0}

        # An allowed client behind the same proxy, whatever it claimed before: accepted.
        status, text = post_with_forwarded_lines(url, missed, ["198.51.100.2", "203.0.113.7"])
        assert status == 200, text
        assert json.loads(text)["status"] == "accepted"
        assert stored(state)["conversations"] == 1
