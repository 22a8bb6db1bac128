"""Request parameters with OpenCADC CORE `SyncInput` semantics (`docs/platform-api.md` §2, §9.1).

For POST, query and body parameters are merged only when the content type is form-urlencoded
(or multipart); otherwise none are read, so a correct launch without that header fails with
`Missing parameter 'image'`. Names are case-insensitive and may repeat (`env`).
"""

from __future__ import annotations

from aiohttp import web

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

Params = dict[str, list[str]]


async def read_params(request: web.Request, *, strict_content_type: bool) -> Params:
    """Merged parameters keyed by lower-cased name, values in arrival order."""
    out: Params = {}
    is_form = request.content_type in FORM_TYPES
    if request.method != "POST" or is_form or not strict_content_type:
        for key, value in request.query.items():
            out.setdefault(key.lower(), []).append(value)
    if request.method == "POST" and is_form:
        body = await request.post()
        for key, field in body.items():
            if isinstance(field, str):
                out.setdefault(key.lower(), []).append(field)
    return out


def first(params: Params, key: str) -> str | None:
    """The first value of a parameter, if any."""
    values = params.get(key)
    return values[0] if values else None
