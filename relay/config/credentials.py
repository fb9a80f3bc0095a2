"""Secret files: one file per setting, named by the setting's path (``smtp__password``)."""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_settings import EnvSettingsSource

from relay.model.errors import ConfigError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

# Path segments of a setting in a file name: destinations__webhook__helpdesk__secret is
# [destinations.webhook.helpdesk] secret.
DELIMITER = "__"
# systemd/relay.service loads the directory /etc/relay/credentials with
# LoadCredential=relay:/etc/relay/credentials, which names each file F "relay_F"; its
# SetCredential=relay:... fallback (for a missing directory) is named "relay".
SYSTEMD_ID = "relay"
# systemd refuses larger credentials too.
MAX_BYTES = 1024 * 1024


def read_credentials(directory: Path, sections: Collection[str]) -> dict[str, str]:
    """Setting path (``smtp__password``) -> the file's text without surrounding whitespace.

    A file is named by its setting path, optionally prefixed with ``relay_`` (as systemd
    names the files of a loaded directory). Names without ``__`` and without the prefix are
    not settings and are ignored (e.g. the ``relay`` fallback credential); hidden files and
    symbolic links are ignored as systemd ignores them."""
    found: dict[str, str] = {}
    origin: dict[str, str] = {}
    for entry, path in _setting_files(directory):
        problem = _path_problem(path, sections)
        if problem:
            raise ConfigError(
                f"credential {entry.name} in {directory}: {problem}; name each file in "
                "/etc/relay/credentials after its setting, e.g. smtp__password or "
                "destinations__webhook__NAME__secret (docs/deploy.md)"
            )
        if path in found:
            raise ConfigError(
                f"credentials {origin[path]} and {entry.name} in {directory} both set {path}"
            )
        found[path] = _read(directory / entry.name, entry.stat(follow_symlinks=False).st_mode)
        origin[path] = entry.name
    return found


def undeclared_destinations(directory: Path, declared: Mapping[str, Any]) -> list[str]:
    """Problems with credential files for a named destination that ``declared`` (the settings
    file's [destinations] table) lacks: a misspelt name would otherwise quietly create a
    destination of its own, and the declared one would go without its secret."""
    problems = []
    for entry, path in _setting_files(directory):
        parts = path.split(DELIMITER)
        if parts[0] != "destinations" or len(parts) < 3:  # destinations, kind, name[, key]
            continue
        table = declared.get(parts[1])
        if not (isinstance(table, Mapping) and parts[2] in table):
            problems.append(
                f"credential {entry.name}: [destinations.{parts[1]}.{parts[2]}] is not declared"
                " in the settings file"
            )
    return problems


def _setting_files(directory: Path) -> Iterator[tuple[os.DirEntry[str], str]]:
    """Each file of ``directory`` that is meant to set a setting, with its setting path."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        raise ConfigError(f"credentials directory {directory} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"credentials directory {directory} cannot be read: {exc}") from None
    for entry in entries:
        name = entry.name
        if name.startswith(".") or entry.is_symlink():
            continue
        prefixed = name.startswith(SYSTEMD_ID + "_")
        path = name.removeprefix(SYSTEMD_ID + "_") if prefixed else name
        if DELIMITER in path or prefixed:
            yield entry, path


def _path_problem(path: str, sections: Collection[str]) -> str | None:
    parts = path.split(DELIMITER)
    if len(parts) < 2 or not all(parts):  # a section and at least one key
        return "not a setting path <section>__<key>"
    if parts[0] not in sections:
        return f"{parts[0]!r} is not a settings section (known: {', '.join(sorted(sections))})"
    return None


def _read(file: Path, mode: int) -> str:
    if not stat.S_ISREG(mode):
        raise ConfigError(f"credential {file} is not a regular file")
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"credential {file} cannot be read: {exc}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"credential {file} is larger than {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"credential {file} is not UTF-8 text") from None


class CredentialsSource(EnvSettingsSource):
    """The files of a credentials directory as a settings source. Names are matched exactly
    (destination names keep their case); a value for a list or table is read as JSON."""

    def __init__(self, settings_cls: type[BaseSettings], directory: Path | None) -> None:
        self._credentials = (
            {} if directory is None else read_credentials(directory, settings_cls.model_fields)
        )
        super().__init__(
            settings_cls,
            case_sensitive=True,
            env_prefix="",
            env_nested_delimiter=DELIMITER,
            env_ignore_empty=False,
            env_parse_none_str=None,
        )

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._credentials

    def __repr__(self) -> str:
        return f"CredentialsSource({sorted(self._credentials)!r})"
