"""The system's Chromium for the browser tests, started so that it reaches nothing off loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.tools import require_program

# Every host name but the loopback ones resolves to nothing, inside Chromium, without asking
# any resolver: background fetches (component updates, safe browsing, Google hosts) and any
# off-loopback name in a page fail at once with ERR_NAME_NOT_RESOLVED.
HOST_RESOLVER_RULES = "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost"
# What every test that starts Chromium passes, headless or through Playwright.
OFFLINE_ARGS = [
    f"--host-resolver-rules={HOST_RESOLVER_RULES}",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-quic",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--no-sandbox",
]
WINDOW = (800, 1400)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def require_chromium() -> str:
    """The Chromium binary; a skip without one, or a failure when CI=true needs it."""
    return require_program(chromium(), "chromium")


def screenshot(
    page: Path | str,
    png: Path,
    profile: Path,
    binary: str,
    *,
    window: tuple[int, int] = WINDOW,
    net_log: Path | None = None,
) -> None:
    """Render ``page`` (a file, or a loopback URL) with headless Chromium into ``png``
    (``window`` in px); with ``net_log``, Chromium's network log is written there."""
    url = page.as_uri() if isinstance(page, Path) else page
    extra = [f"--log-net-log={net_log}"] if net_log is not None else []
    subprocess.run(
        [
            binary,
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            *OFFLINE_ARGS,
            *extra,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={window[0]},{window[1]}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@dataclass(frozen=True)
class NetLog:
    """What a Chromium network log (--log-net-log) says the browser looked up and connected to."""

    resolved: list[str]  # the host of every resolution request, after the resolver rules
    lookups: list[str]  # the event names of resolutions that left Chromium (DNS or getaddrinfo)
    connects: list[str]  # the address of every TCP connection attempt
    udp_sent: int  # UDP datagrams sent (DNS queries would be)

    @classmethod
    def read(cls, path: Path) -> NetLog:
        log: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
        events = [(names[event["type"]], event.get("params") or {}) for event in log["events"]]
        return cls(
            resolved=[
                urlsplit(params["host"]).hostname or params["host"]
                for name, params in events
                if name == "HOST_RESOLVER_MANAGER_REQUEST" and "host" in params
            ],
            lookups=[
                name
                for name, _ in events
                if name in {"HOST_RESOLVER_DNS_TASK", "HOST_RESOLVER_SYSTEM_TASK"}
            ],
            connects=[
                params["address"]
                for name, params in events
                if name == "TCP_CONNECT_ATTEMPT" and "address" in params
            ],
            udp_sent=sum(1 for name, _ in events if name == "UDP_BYTES_SENT"),
        )

    def off_loopback(self) -> Iterator[str]:
        """Each name resolved or address connected to that is not loopback."""
        for host in self.resolved:
            if host != "~notfound" and host not in LOOPBACK_HOSTS:
                yield f"resolved {host}"
        for address in self.connects:
            if not address.startswith(("127.", "[::1]")):
                yield f"connected to {address}"
