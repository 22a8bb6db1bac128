"""`skaha-operator run --downloader-image/--ca-bundle` reach the operator's configuration; the
environment variable stays the fallback; an unreadable CA bundle stops the start."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from skaha_operator import cli
from skaha_operator.controllers.context import OperatorConfig
from skaha_operator.reconcile.data import DEFAULT_DOWNLOADER_IMAGE


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[OperatorConfig]:
    """The configs `run` would start the operator with (the operator itself is not started)."""
    from skaha_operator.runtime import run

    seen: list[OperatorConfig] = []

    def fake(config: OperatorConfig, **_: Any) -> None:
        seen.append(config)

    monkeypatch.setattr(run, "run_operator", fake)
    monkeypatch.setenv("SKAHA_OPERATOR_RESYNC", "60")  # `run` sets it; restored afterwards
    monkeypatch.delenv("SKAHA_OPERATOR_DOWNLOADER_IMAGE", raising=False)
    return seen


def test_downloader_image_flag_wins_over_the_environment(
    started: list[OperatorConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["run"]) == 0
    monkeypatch.setenv("SKAHA_OPERATOR_DOWNLOADER_IMAGE", "env.example.org/t/curl:7")
    assert cli.main(["run"]) == 0
    assert cli.main(["run", "--downloader-image", "flag.example.org/t/curl:8"]) == 0
    assert [c.downloader_image for c in started] == [
        DEFAULT_DOWNLOADER_IMAGE,
        "env.example.org/t/curl:7",
        "flag.example.org/t/curl:8",
    ]


def test_ca_bundle_flag_is_checked_and_passed(
    started: list[OperatorConfig], tmp_path: Path
) -> None:
    cert = tmp_path / "ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
         str(tmp_path / "k"), "-out", str(cert), "-days", "1", "-subj", "/CN=site-ca"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert cli.main(["run", "--ca-bundle", str(cert)]) == 0
    assert started[-1].ca_bundle == str(cert)
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        cli.main(["run", "--ca-bundle", str(bad)])
    with pytest.raises(FileNotFoundError):
        cli.main(["run", "--ca-bundle", str(tmp_path / "missing.crt")])
    assert len(started) == 1  # neither bad bundle started the operator


def test_a_namespace_pattern_is_refused_with_the_flag_named(
    started: list[OperatorConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "-n", "science", "-n", "team-a"]) == 0
    for bad in ("team-*", "!kube-system", "Science"):
        with pytest.raises(SystemExit) as exited:
            cli.main(["run", "-n", "science", "-n", bad])
        assert exited.value.code == 2
        assert f"--namespace {bad!r}: a namespace name" in capsys.readouterr().err
    assert len(started) == 1
