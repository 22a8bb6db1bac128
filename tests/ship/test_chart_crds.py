"""The chart's files/crds/ is an exact copy of the generated crds/ (`make crds` copies them)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART_CRDS = ROOT / "helm" / "skaha-operator" / "files" / "crds"


def test_chart_crds_match_the_generated_crds() -> None:
    generated = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    copied = {p.name: p.read_text() for p in CHART_CRDS.glob("*.yaml")}
    assert sorted(copied) == sorted(generated), (
        "run `make crds` (it copies crds/ into the chart's files/crds/)"
    )
    stale = [name for name in generated if copied[name] != generated[name]]
    assert stale == [], f"chart CRDs differ from crds/: {stale}; run `make crds`"
    assert len(generated) == 7
