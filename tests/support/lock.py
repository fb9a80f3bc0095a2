"""What uv.lock pins, compared with what is installed in the running interpreter."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tests.support.paths import ROOT

LOCK = ROOT / "uv.lock"


def canonicalize_name(name: str) -> str:
    """PEP 503 normalisation: runs of -, _ and . become one -, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class LockCheck:
    path: Path
    sha256: str
    locked: int
    installed: int
    mismatches: tuple[str, ...]

    def header(self) -> str:
        state = "all match" if not self.mismatches else f"{len(self.mismatches)} differ"
        return (
            f"dependencies: {self.path.name} sha256 {self.sha256[:16]}, "
            f"{self.installed} of {self.locked} locked packages installed, {state}"
        )


def check(lock: Path = LOCK) -> LockCheck:
    """Every installed distribution that uv.lock names must carry the locked version."""
    raw = lock.read_bytes()
    packages = tomllib.loads(raw.decode())["package"]
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    mismatches = []
    found = 0
    for package in packages:
        if "editable" in package.get("source", {}) or "virtual" in package.get("source", {}):
            continue
        name = canonicalize_name(package["name"])
        if name not in installed:
            continue  # not for this platform or not in the installed extras
        found += 1
        if installed[name] != package["version"]:
            mismatches.append(f"{name}: locked {package['version']}, installed {installed[name]}")
    return LockCheck(
        path=lock,
        sha256=hashlib.sha256(raw).hexdigest(),
        locked=len(packages),
        installed=found,
        mismatches=tuple(mismatches),
    )
