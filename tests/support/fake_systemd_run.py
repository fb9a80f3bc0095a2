"""A stand-in for ``systemd-run --pipe --wait`` under a scratch root, for systemd/relay-ctl.

Implements only what a transient service needs to find its files: ``--setenv``,
``StateDirectory=``, ``ConfigurationDirectory=``, ``LoadCredential=`` (a file or a whole
directory, named as systemd names them) and ``SetCredential=`` (the fallback), with the
absolute paths /etc, /var/lib and /opt/relay/venv/bin/relay taken from the scratch root and
the test's virtualenv. Every other property is written to ``$FAKE_SYSTEMD_ROOT/properties``
so the test can compare them with the unit. Options it does not know are refused.

Environment: FAKE_SYSTEMD_ROOT (the scratch root), FAKE_RELAY (the relay executable).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = {"--quiet", "--pipe", "--wait", "--collect"}
RELAY = "/opt/relay/venv/bin/relay"


def main(argv: list[str]) -> int:
    root = Path(os.environ["FAKE_SYSTEMD_ROOT"])
    properties: list[tuple[str, str]] = []
    env: dict[str, str] = {}
    args = list(argv)
    while args and args[0] != "--":
        option = args.pop(0)
        if option in FLAGS:
            continue
        name, sep, value = option.partition("=")
        if not sep:
            print(f"fake systemd-run: unsupported option {option}", file=sys.stderr)
            return 2
        if name == "--property":
            key, _, setting = value.partition("=")
            properties.append((key, setting))
        elif name == "--setenv":
            key, _, setting = value.partition("=")
            env[key] = inside(root, setting)
        elif name == "--service-type" and value == "exec":
            continue
        else:
            print(f"fake systemd-run: unsupported option {option}", file=sys.stderr)
            return 2
    if not args:
        print("fake systemd-run: no command after --", file=sys.stderr)
        return 2
    command = args[1:]
    (root / "properties").write_text(json.dumps(properties), encoding="utf-8")
    with tempfile.TemporaryDirectory() as credentials:
        for key, value in properties:
            if key == "StateDirectory":
                (root / "var/lib" / value).mkdir(parents=True, exist_ok=True)
            elif key == "ConfigurationDirectory":
                (root / "etc" / value).mkdir(parents=True, exist_ok=True)
        if not load_credentials(root, properties, Path(credentials)):
            return 1
        env["PATH"] = os.environ["PATH"]
        env["CREDENTIALS_DIRECTORY"] = credentials
        exe = os.environ["FAKE_RELAY"] if command[0] == RELAY else command[0]
        return subprocess.run([exe, *command[1:]], env=env, cwd="/", check=False).returncode


def inside(root: Path, value: str) -> str:
    """An absolute path under /etc or /var/lib, moved under the scratch root."""
    if value.startswith(("/etc/", "/var/lib/")):
        return str(root / value.lstrip("/"))
    return value


def load_credentials(root: Path, properties: list[tuple[str, str]], target: Path) -> bool:
    fallbacks = dict(v.split(":", 1) for k, v in properties if k == "SetCredential")
    for key, value in properties:
        if key != "LoadCredential":
            continue
        cred_id, _, path = value.partition(":")
        source = Path(inside(root, path))
        if source.is_dir():
            # systemd: every regular file of the tree becomes "<ID>_<path with / as _>";
            # symbolic links are skipped.
            for file in sorted(source.rglob("*")):
                if file.is_file() and not file.is_symlink():
                    name = "_".join((cred_id, *file.relative_to(source).parts))
                    shutil.copyfile(file, target / name)
        elif source.is_file():
            shutil.copyfile(source, target / cred_id)
        elif cred_id not in fallbacks:
            print(f"fake systemd-run: credential {cred_id}: {path} missing", file=sys.stderr)
            return False
    for cred_id, value in fallbacks.items():
        if not (target / cred_id).exists():
            (target / cred_id).write_text(value, encoding="utf-8")
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
