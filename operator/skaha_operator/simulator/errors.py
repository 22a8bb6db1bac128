"""The simulator's error: an HTTP status, the server's message and any extra headers.

Handlers raise `SimError`; `replies.py` renders it in the style of the service that owns the
route (OpenCADC text/plain for Skaha and Cavern, Rucio's header+JSON form for Rucio).
"""

from __future__ import annotations


class SimError(Exception):
    """An error reply the simulated service would send."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        exception_class: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        # Rucio names the server-side exception class in its error replies (§8).
        self.exception_class = exception_class
