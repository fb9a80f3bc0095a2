"""`relay serve` as a real process on 127.0.0.1, with its log lines collected as they come."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

READY_LINE = "relay ready: listening on"  # logged once the store, worker and socket are up
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


def toml_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists of them read the same in TOML


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class RelayProcess:
    """Starts ``relay serve --config CONFIG`` and waits until it listens; with ``open_files``,
    under that open-file limit (RLIMIT_NOFILE); with ``file_size``, under that file-size limit
    in bytes (RLIMIT_FSIZE)."""

    def __init__(
        self,
        config: Path,
        timeout: float = 30.0,
        open_files: int | None = None,
        file_size: int | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.open_files = open_files
        self.file_size = file_size
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> RelayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.pop("JOURNAL_STREAM", None)  # the tests read stderr, whoever runs them
        command = [str(Path(sys.executable).with_name("relay")), "serve", "--config"]
        if self.open_files is not None:
            command = [sys.executable, "-c", WITH_OPEN_FILES, str(self.open_files), *command]
        if self.file_size is not None:
            command = [sys.executable, "-c", WITH_FILE_SIZE, str(self.file_size), *command]
        self._process = subprocess.Popen(
            [*command, str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for_line(READY_LINE)
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, fragment: str) -> str:
        """The first stderr line containing ``fragment``; fails if the process ends first."""

        def found() -> str | None:
            return next((line for line in self.lines if fragment in line), None)

        def done() -> bool:
            ended = self._reader is not None and not self._reader.is_alive()
            return found() is not None or ended

        with self._changed:
            self._changed.wait_for(done, timeout=self.timeout)
            line = found()
        assert line is not None, f"no line with {fragment!r}; stderr so far:\n" + "\n".join(
            self.lines
        )
        return line

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=self.timeout)
        finally:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            if self._reader is not None:
                self._reader.join(timeout=self.timeout)
            if self._process.stderr is not None:
                self._process.stderr.close()
