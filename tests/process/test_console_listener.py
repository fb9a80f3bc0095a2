"""[console] port: the console answers on its own listener of `relay serve` and not where the
hook is, which still takes hooks; the console's listener answers nothing but the console."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from relay.cli import main
from tests.support.config import write_config
from tests.support.data import TOKEN, body, sample
from tests.support.process import RelayProcess
from tests.support.smtp import free_port


@pytest.mark.slow
def test_the_console_listens_on_its_own_port_only(tmp_path: Path) -> None:
    port, console_port = free_port(), free_port()
    config, _ = write_config(
        tmp_path, server={"port": port}, console={"host": "127.0.0.1", "port": console_port}
    )
    added = CliRunner().invoke(
        main, ["user", "add", "jana", "--config", str(config)], input="a long password\n"
    )
    assert added.exit_code == 0, added.output
    with RelayProcess(config) as relay:
        relay.wait_for_line(
            re.escape(f"console on its own listener: http://127.0.0.1:{console_port}")
        )
        hook = f"http://127.0.0.1:{port}"
        console = f"http://127.0.0.1:{console_port}"
        assert httpx.get(f"{console}/console/login").status_code == 200
        assert httpx.get(f"{console}/console/static/console.css").status_code == 200
        assert httpx.get(f"{hook}/console/login").status_code == 404
        assert httpx.get(f"{hook}/console/static/console.css").status_code == 404
        posted = httpx.post(f"{hook}/hooks/smartsupp/{TOKEN}", content=body(sample("v1")))
        assert posted.status_code == 200
        # And the other way round: the console's listener answers nothing but the console.
        sneaked = httpx.post(f"{console}/hooks/smartsupp/{TOKEN}", content=body(sample("v2")))
        assert sneaked.status_code == 404
        for path in ("/metrics", "/healthz", "/readyz", "/console-not"):
            assert httpx.get(f"{console}{path}").status_code == 404, path
        assert httpx.get(f"{hook}/healthz").status_code == 200


@pytest.mark.slow
def test_a_user_header_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    port = free_port()
    config, _ = write_config(
        tmp_path,
        server={"port": port, "trusted_proxies": ["127.0.0.1/32"]},
        console={"user_header": "X-Remote-User"},
    )
    added = CliRunner().invoke(
        main, ["user", "add", "admin", "--config", str(config)], input="a long password\n"
    )
    assert added.exit_code == 0, added.output
    with RelayProcess(config):
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/console/leads", headers={"X-Remote-User": "sso.user"})
        assert page.status_code == 200 and "Signed in as sso.user" in page.text
        bad = httpx.get(f"{base}/console/leads", headers={"X-Remote-User": "bad name\t<x>"})
        assert bad.status_code == 303  # not a user name: sign in
        assert httpx.get(f"{base}/console/leads").status_code == 303
        # Behind a trusted TLS proxy the session cookie is Secure.
        with httpx.Client(base_url=base, headers={"X-Forwarded-Proto": "https"}) as client:
            form = client.get("/console/login")
            found = re.search(r'name="csrf" value="([^"]+)"', form.text)
            nonce = form.headers["set-cookie"]
            assert found is not None and "Secure" in nonce
            # A browser sends Secure cookies over HTTPS to the proxy; here the test does.
            signed = client.post(
                "/console/login",
                data={"csrf": found.group(1), "user": "admin", "password": "a long password"},
                headers={"Cookie": nonce.split(";")[0]},
            )
            assert signed.status_code == 303
            cookie = signed.headers["set-cookie"]
            assert cookie.startswith("relay_console=") and "Secure" in cookie
    # The same relay without the proxy trusted: the header is ignored.
    config, _ = write_config(
        tmp_path,
        server={"port": port, "trusted_proxies": []},
        console={"user_header": "X-Remote-User"},
    )
    with RelayProcess(config):
        page = httpx.get(f"{base}/console/leads", headers={"X-Remote-User": "sso.user"})
        assert page.status_code == 303 and page.headers["location"] == "/console/login"
