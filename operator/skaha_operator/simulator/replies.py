"""Response builders in the wire formats of the simulated services.

OpenCADC services (Skaha, Cavern) answer errors as `text/plain` `<message>\\n`
(`docs/platform-api.md` §5); Rucio answers with `ExceptionClass`/`ExceptionMessage` headers and a
JSON body typed `application/octet-stream` (§8). Skaha JSON is Gson pretty-printed with nulls
omitted (§3).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from skaha_operator.simulator.errors import SimError

RUCIO_HEADER_MAX = 125


def text(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A `text/plain` reply."""
    return web.Response(status=status, text=body, content_type="text/plain", headers=headers)


def pretty_json(doc: Any, status: int = 200) -> web.Response:
    """Gson-style pretty JSON (two-space indent); callers never put None values in `doc`."""
    return web.Response(
        status=status, text=json.dumps(doc, indent=2), content_type="application/json"
    )


def xml(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A `text/xml` reply."""
    return web.Response(status=status, text=body, content_type="text/xml", headers=headers)


def opencadc_error(error: SimError) -> web.Response:
    """OpenCADC error: text/plain `<message>\\n` with Content-Length (§5)."""
    return text(error.message + "\n", status=error.status, headers=error.headers)


def rucio_error(error: SimError) -> web.Response:
    """Rucio error: status, ExceptionClass/ExceptionMessage headers, JSON body (§8)."""
    cls = error.exception_class or "RucioException"
    headers = dict(error.headers)
    headers["ExceptionClass"] = cls
    headers["ExceptionMessage"] = _header_safe(error.message)[:RUCIO_HEADER_MAX]
    body = json.dumps({"ExceptionClass": cls, "ExceptionMessage": error.message})
    return web.Response(
        status=error.status, text=body, content_type="application/octet-stream", headers=headers
    )


def render_error(path: str, error: SimError) -> web.Response:
    """Pick the error style of the service that owns `path`."""
    if path.startswith("/rucio/"):
        return rucio_error(error)
    return opencadc_error(error)


def _header_safe(message: str) -> str:
    """Header values cannot hold line breaks."""
    return " ".join(message.splitlines())
