"""The small HTML page behind every connectURL, so links from the demo open something real.

connectURL shapes keep Skaha's paths (`docs/platform-api.md` §3.1) with the host replaced by
the simulator's base URL; the page shows the session's current status.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.state import state_of

# URL segment → session type (`contrib` is the URL name of `contributed`).
SEGMENT_TYPES = {
    "notebook": "notebook",
    "desktop": "desktop",
    "carta": "carta",
    "contrib": "contributed",
    "firefly": "firefly",
}


async def session_page(request: web.Request) -> web.Response:
    """GET /session/<segment>/<id>/...: an HTML page naming the session and its status."""
    state = state_of(request)
    segment = request.match_info["segment"]
    session_id = request.match_info["id"]
    try:
        session = state.sessions.find(session_id)
    except SimError:
        session = None
    if session is None or SEGMENT_TYPES.get(segment) != session.type.value:
        return web.Response(
            status=404,
            text=_page("Session not found", f"No {segment} session {session_id}."),
            content_type="text/html",
        )
    status = session.phase_at(state.clock.now()).value
    body = (
        f"Simulated {session.type.value} session <code>{escape(session.id)}</code> "
        f"(<code>{escape(session.name)}</code>) for user <code>{escape(session.user)}</code> "
        f"is <strong>{escape(status)}</strong>."
    )
    return web.Response(
        text=_page(f"{session.type.value} {session.id}", body), content_type="text/html"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n"
        f"<body><h1>Skaha simulator</h1><p>{body}</p></body></html>\n"
    )


def add_routes(app: web.Application) -> None:
    """Register the connect pages."""
    app.router.add_get("/session/{segment}/{id}", session_page)
    app.router.add_get("/session/{segment}/{id}/{tail:.*}", session_page)
