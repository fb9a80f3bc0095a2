"""Run `relay serve` as a real process: start it, wait for log lines, post to it, stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.support.data import TOKEN

READY = "relay ready: listening on"  # bound first, then store and worker, then this line
# Runs argv[2:] with the open-file limit (soft and hard) set to argv[1].
WITH_OPEN_FILES = (
    "import os, resource, sys; n = int(sys.argv[1]);"
    " resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)
# Runs argv[2:] with the file-size limit (soft and hard) set to argv[1] bytes: a write that
# would make any file larger fails with EFBIG (Python ignores SIGXFSZ), as on a full disk.
WITH_FILE_SIZE = (
    "import os, resource, sys; n = int(sys.argv[1]);"
    " resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


def relay_command() -> list[str]:
    """The installed console script next to this interpreter (the venv's ``relay``)."""
    script = Path(sys.executable).with_name("relay")
    assert script.exists(), f"console script {script} is missing: pip install -e ."
    return [str(script)]


def relay_environment() -> dict[str, str]:
    """This environment without the relay's own variables (``RELAY_*``, a credentials
    directory, a journal stream): a relay under test reads only what its test wrote."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("RELAY_")
        and name not in ("CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


class RelayProcess:
    """``relay serve --config PATH``; every stderr line is kept and can be waited for.
    ``open_files`` runs it under that open-file limit (RLIMIT_NOFILE), ``file_size`` under that
    file-size limit in bytes (RLIMIT_FSIZE); as a context manager it is started on entry and
    stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(
        self,
        config: Path,
        port: int = 0,
        *,
        args: tuple[str, ...] = (),
        open_files: int | None = None,
        file_size: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.port = port
        self.args = args  # more `relay serve` options
        self.open_files = open_files
        self.file_size = file_size
        self.env = env or {}  # added to the environment the relay starts with
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/smartsupp/{TOKEN}"

    def start(self, timeout: float = 30.0, *, ready: str | None = READY) -> None:
        """Start, and unless ``ready`` is None wait for that line (default: the relay is up)."""
        with self._changed:
            self.lines.clear()
        command = [*relay_command(), "serve", "--config", str(self.config), *self.args]
        if self.open_files is not None:
            command = [sys.executable, "-c", WITH_OPEN_FILES, str(self.open_files), *command]
        if self.file_size is not None:
            command = [sys.executable, "-c", WITH_FILE_SIZE, str(self.file_size), *command]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**relay_environment(), **self.env},
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        if ready is not None:
            self.wait_for_line(ready, timeout)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for line in proc.stderr:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> str:
        """Block until a stderr line matches ``pattern`` (a regex); fail if the process ends."""
        regex = re.compile(pattern)
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.lines if regex.search(line)]
            exited = self.proc is not None and self.proc.poll() is not None
            return bool(found) or (exited and not self._reader_alive())

        with self._changed:
            self._changed.wait_for(seen, timeout=timeout)
        assert found, f"no line matching {pattern!r}; stderr so far:\n" + "\n".join(self.lines)
        return found[0]

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def post(self, client: httpx.Client, content: bytes) -> httpx.Response:
        return client.post(self.url, content=content)

    def hup(self) -> None:
        """SIGHUP: reload the settings."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def kill(self) -> int:
        return self._signal(signal.SIGKILL)

    def terminate(self, timeout: float = 30.0) -> int:
        return self._signal(signal.SIGTERM, timeout)

    def _signal(self, sig: signal.Signals, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=timeout)
        return code

    def ensure_stopped(self, timeout: float = 30.0) -> None:
        """Stop the relay if it still runs: SIGTERM, as systemd would (so that it ends its
        own way, and a coverage run keeps what it measured), SIGKILL if it has not ended
        within ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)

    def __enter__(self) -> RelayProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.terminate()
        finally:
            self.ensure_stopped()
