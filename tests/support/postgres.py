"""A throwaway PostgreSQL server for the test session, or the one RELAY_TEST_POSTGRES_URL names.

The cluster is made with the machine's own binaries (Debian's ``postgresql`` package) in a
temporary directory, listens on a free loopback port only, and runs as an unprivileged user:
the ``postgres`` system user when the tests run as root (PostgreSQL refuses root), else the
current user. fsync and synchronous_commit stay on: the store's durability is tested on it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from tests.support.smtp import free_port

URL_VARIABLE = "RELAY_TEST_POSTGRES_URL"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "relay_test"
START_ATTEMPTS = 3  # another process may take the free port between choosing and binding it
READY_SECONDS = 30.0  # an upper bound for a slow machine; the wait ends as soon as it is ready
SETTINGS = """
# tests/support/postgres.py: a throwaway cluster, reachable on loopback only.
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
# The store's promise is a commit flushed to disk: keep PostgreSQL's defaults, explicitly.
fsync = on
synchronous_commit = on
full_page_writes = on
"""


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries, or no unprivileged user to run them as."""


def unavailable(reason: str) -> NoReturn:
    """Under CI (CI=true) a missing PostgreSQL fails the tests that need it; elsewhere they
    are skipped with ``reason``, so a developer without the server can still run the rest."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
    pytest.skip(
        f"no PostgreSQL server: {reason} (apt-get install postgresql, or set {URL_VARIABLE})"
    )


def server_bindir(pg_config_bindir: str | None, roots: Iterable[Path]) -> Path | None:
    """The first directory holding initdb, pg_ctl and postgres: pg_config's (which on Debian
    names the client's directory), then each root's newest ``<version>/bin``."""
    candidates: list[Path] = [Path(pg_config_bindir)] if pg_config_bindir else []
    for root in roots:
        versions = sorted(root.glob("*/bin"), key=lambda path: _version(path.parent.name))
        candidates.extend(reversed(versions))
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in SERVER_BINARIES):
            return directory
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))


def find_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    configured = None
    if pg_config:
        done = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
        )
        configured = done.stdout.strip() if done.returncode == 0 else None
    found = server_bindir(configured, [DEBIAN_ROOT])
    if found is None:
        raise PostgresUnavailable(
            f"no directory with {', '.join(SERVER_BINARIES)} "
            f"(pg_config --bindir: {configured or 'none'}; {DEBIAN_ROOT}/*/bin)"
        )
    return found


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account the server's processes run as."""

    name: str
    uid: int
    gid: int

    @staticmethod
    def choose() -> RunAs:
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return RunAs(entry.pw_name, entry.pw_uid, os.getegid())
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root and there is no 'postgres' system user to start the server as"
            ) from None
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def run(
        self, command: list[str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``command`` as this user, with only the environment the server tools need."""
        switch = os.geteuid() == 0
        return subprocess.run(
            command,
            cwd=cwd,
            env={"PATH": os.defpath, "LC_ALL": "C", "HOME": str(cwd)},
            user=self.uid if switch else None,
            group=self.gid if switch else None,
            extra_groups=[] if switch else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


def with_database(url: str, name: str) -> str:
    """``url`` with its database (the path) replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


@dataclass
class PostgresServer:
    """A running server: ``url`` reaches its maintenance database as a superuser (or as the
    user RELAY_TEST_POSTGRES_URL names); ``fresh_database()`` makes an empty database."""

    url: str
    data_dir: Path | None = None  # None: a server this suite did not start
    run_as: RunAs | None = None
    startup_seconds: float = 0.0
    created: list[str] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return self.data_dir is not None

    def fresh_database(self) -> str:
        """The URL of a new, empty database (unique across concurrent test runs)."""
        name = f"relay_test_{os.getpid()}_{len(self.created)}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return with_database(self.url, name)

    def drop_created(self) -> None:
        """Drop the databases this session made on a server it did not start."""
        with psycopg.connect(self.url, autocommit=True) as admin:
            for name in self.created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def wait_until_accepting(url: str, deadline_seconds: float = READY_SECONDS) -> None:
    """Return once ``url`` accepts a connection; fail after ``deadline_seconds``."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        remaining = deadline - time.monotonic()
        try:
            with psycopg.connect(url, connect_timeout=max(1, int(remaining))) as probe:
                probe.execute("SELECT 1")
            return
        except psycopg.OperationalError as error:
            if remaining <= 0:
                raise AssertionError(
                    f"PostgreSQL at {redacted(url)} not accepting connections: {error}"
                ) from error
        # A refused connection answers at once: pace the retries instead of spinning.
        time.sleep(0.05)


def redacted(url: str) -> str:
    from relay.store.pgconnect import redacted as redact  # noqa: PLC0415

    return redact(url)


class LocalCluster:
    """initdb, pg_ctl start and stop of a cluster in a temporary directory."""

    def __init__(self, bindir: Path, run_as: RunAs) -> None:
        self.bindir = bindir
        self.run_as = run_as
        self.root = Path(tempfile.mkdtemp(prefix="relay-pg-"))
        self.data_dir = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_urlsafe(18)
        self.port = 0

    def _tool(self, name: str, *args: str, timeout: float = 60.0) -> str:
        done = self.run_as.run([str(self.bindir / name), *args], self.root, timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{name} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n--- server log ---\n{log}"
            )
        return done.stdout

    def init(self) -> None:
        os.chown(self.root, self.run_as.uid, self.run_as.gid)
        self.root.chmod(0o700)
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        os.chown(password_file, self.run_as.uid, self.run_as.gid)
        # --no-sync only skips initdb's final flush of the new files (a crash of the machine
        # during the tests loses a throwaway cluster); the server's own fsync stays on.
        self._tool(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, f"--pwfile={password_file}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        password_file.unlink()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(socket_dir=self.root))

    def start(self) -> None:
        """pg_ctl start -w: returns once the postmaster reports it accepts connections."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self._tool(
                    "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log),
                    "-w", "-t", str(int(READY_SECONDS)), "-o", f"-p {self.port}",
                )  # fmt: skip
                return
            except RuntimeError:
                taken = "Address already in use" in self.log.read_text(errors="replace")
                if not taken or attempt == START_ATTEMPTS:
                    raise

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                try:
                    self._tool("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
                except RuntimeError:
                    self._tool("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        password = quote(self.password, safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/postgres"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The server for a test session: RELAY_TEST_POSTGRES_URL's, or a throwaway cluster."""
    given = os.environ.get(URL_VARIABLE, "").strip()
    if given:
        wait_until_accepting(given)
        server = PostgresServer(given)
        try:
            yield server
        finally:
            server.drop_created()
        return
    try:
        bindir = find_bindir()
        run_as = RunAs.choose()
    except PostgresUnavailable as missing:
        unavailable(str(missing))
    began = time.monotonic()
    cluster = LocalCluster(bindir, run_as)
    try:
        cluster.init()
        cluster.start()
        wait_until_accepting(cluster.url)
        yield PostgresServer(
            cluster.url,
            data_dir=cluster.data_dir,
            run_as=run_as,
            startup_seconds=time.monotonic() - began,
        )
    finally:
        cluster.stop()
