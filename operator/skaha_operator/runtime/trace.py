"""An optional trace of what the runtime does, for the time-to-usable profile (bench/timeline.py).

With `SKAHA_OPERATOR_TRACE=<file>` every watch event received, wake-up fired,
step, Kubernetes request and platform call is written as one JSON line with wall-clock times, so
one Session can be followed from its create to its usable status across its parts (the benchmark
client uses the same clock on the same machine). Off by default: then every hook is a single
`if` on a None attribute, and nothing is recorded.
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from typing import IO, Any

from skaha_operator.runtime.requeue import Key

# The object whose step is running in this task (platform calls are attributed to it).
current: contextvars.ContextVar[Key | None] = contextvars.ContextVar("trace_key", default=None)


class Tracer:
    """JSON lines into one file, flushed every 256 records and at close."""

    def __init__(self, path: str) -> None:
        self._out: IO[str] = open(path, "a", buffering=1 << 16)  # noqa: SIM115 (closed in close)
        self._count = 0

    def record(self, kind: str, **fields: Any) -> None:
        """One record; `t` defaults to now."""
        fields.setdefault("t", time.time())
        self._out.write(json.dumps({"k": kind, **fields}, separators=(",", ":")) + "\n")
        self._count += 1
        if self._count % 256 == 0:
            self._out.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._out.close()


def from_env() -> Tracer | None:
    """The tracer `SKAHA_OPERATOR_TRACE` asks for, or None."""
    path = os.environ.get("SKAHA_OPERATOR_TRACE")
    return Tracer(path) if path else None
