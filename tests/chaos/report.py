"""A campaign's report fragment: what was injected, what was checked, figures, the verdict.

Each campaign writes one JSON file; `bench/chaos_report.py` assembles them into
docs/reliability.md (one table per campaign).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    """One campaign's findings."""

    test: str
    scale: str
    campaign: str = ""
    seed: int = 0
    injected: dict[str, Any] = field(default_factory=dict)
    checked: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    result: str = "not run"

    def inject(self, what: str, count: Any) -> None:
        """Record one kind of fault and how many were injected."""
        self.injected[what] = count

    def check(self, what: str, outcome: Any) -> None:
        """Record one property checked and what was found."""
        self.checked[what] = outcome

    def command(self) -> str:
        """The command that reproduces this campaign at this size."""
        env = "CHAOS_SCALE=full " if self.scale == "full" else ""
        return f"{env}.venv/bin/pytest -q '{self.test}'"

    def write(self, out_dir: Path) -> Path:
        """Write `<campaign>.<scale>.json` into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", (self.campaign or self.test).lower()).strip("-")
        path = out_dir / f"{slug}.{self.scale}.json"
        path.write_text(json.dumps({**asdict(self), "command": self.command()}, indent=2) + "\n")
        return path
