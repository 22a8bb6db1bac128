"""The Python launcher and the build script agree on the pinned versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skaha_operator.controlplane import binaries

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "controlplane.sh"


@pytest.mark.parametrize(
    ("variable", "pinned"),
    [
        ("K8S_VERSION", binaries.K8S_VERSION),
        ("ETCD_VERSION", binaries.ETCD_VERSION),
        ("HELM_VERSION", binaries.HELM_VERSION),
        ("KWOK_VERSION", binaries.KWOK_VERSION),
    ],
)
def test_script_and_launcher_pin_the_same_versions(variable: str, pinned: str) -> None:
    match = re.search(rf'^{variable}="\$\{{{variable}:-(v[0-9.]+)\}}"', SCRIPT.read_text(), re.M)
    assert match is not None, f"{variable} not found in {SCRIPT}"
    assert match.group(1) == pinned


def test_missing_binary_names_the_make_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKAHA_CACHE", str(tmp_path))
    with pytest.raises(binaries.BinaryMissingError, match="make controlplane"):
        binaries.binary("kube-apiserver")


def test_stale_binary_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKAHA_CACHE", str(tmp_path))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "etcd").write_text("")
    (tmp_path / "bin" / "etcd.version").write_text("v3.4.0\n")
    with pytest.raises(binaries.BinaryMissingError, match=r"want v3\.6\.16"):
        binaries.binary("etcd")
