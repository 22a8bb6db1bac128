"""Where the control-plane binaries live: the cache that `hack/controlplane.sh` fills.

Owns only path lookup and version pins; never builds anything itself (the shell script does).
"""

from __future__ import annotations

import os
from pathlib import Path

# Keep in step with hack/controlplane.sh (a unit test compares the two).
K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.22.0"
KWOK_VERSION = "v0.8.0"


class BinaryMissingError(RuntimeError):
    """A control-plane binary is not in the cache; `make controlplane` builds it."""


def cache_dir() -> Path:
    """The cache root, honouring SKAHA_CACHE and XDG_CACHE_HOME like the build script."""
    if explicit := os.environ.get("SKAHA_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "skaha-operator"


def binary(name: str) -> Path:
    """Path of one cached binary, checked to exist and to carry the pinned version stamp."""
    path = cache_dir() / "bin" / name
    stamp = path.with_name(f"{name}.version")
    if not path.is_file() or not stamp.is_file():
        raise BinaryMissingError(f"{path} is missing: run `make controlplane` to build it")
    want = {"etcd": ETCD_VERSION, "helm": HELM_VERSION, "kwok": KWOK_VERSION}.get(name, K8S_VERSION)
    have = stamp.read_text().strip()
    if have != want:
        raise BinaryMissingError(f"{path} is {have}, want {want}: run `make controlplane`")
    return path
