"""Cavern routes under `/arc`: nodes, files, synctrans (`docs/platform-api.md` §7, §9.8)."""

from __future__ import annotations

from aiohttp import web

from skaha_operator.simulator import replies, vosi
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.state import state_of, user_of

PREAUTH = "preauth:"


async def put_node(request: web.Request) -> web.Response:
    """PUT /arc/nodes/<path>: create one node level (201 with the node XML)."""
    state = state_of(request)
    body = await request.read()
    doc = state.cavern.create_node(user_of(request), request.match_info["path"], body)
    return replies.xml(doc, status=201)


async def get_node(request: web.Request) -> web.Response:
    """GET /arc/nodes/<path>: XML, or JSON only via the `Accept` *query* parameter (§7)."""
    state = state_of(request)
    path = request.match_info.get("path", "")
    limit_raw = request.query.get("limit")
    try:
        limit = int(limit_raw) if limit_raw is not None else None
    except ValueError:
        raise SimError(400, f"InvalidArgument: limit={limit_raw}") from None
    start_after = request.query.get("uri")
    if request.query.get("Accept") == "application/json":
        doc = state.cavern.node_json(user_of(request), path, limit, start_after)
        return web.json_response(doc)
    return replies.xml(state.cavern.node_xml(user_of(request), path, limit, start_after))


async def post_node(request: web.Request) -> web.Response:
    """POST /arc/nodes/<path>: set properties (200 with the node XML)."""
    state = state_of(request)
    body = await request.read()
    return replies.xml(
        state.cavern.set_properties(user_of(request), request.match_info["path"], body)
    )


async def delete_node(request: web.Request) -> web.Response:
    """DELETE /arc/nodes/<path>: 200; non-empty container 400 (§7)."""
    state_of(request).cavern.delete_node(user_of(request), request.match_info["path"])
    return web.Response(status=200)


def _file_target(request: web.Request) -> tuple[str, str]:
    """(user, path) for /files, resolving `preauth:<token>/...` endpoints without a bearer token."""
    path = request.match_info["path"]
    if path.startswith(PREAUTH):
        token, _, rest = path[len(PREAUTH) :].partition("/")
        return state_of(request).cavern.preauth_user(token, rest), rest
    return user_of(request), path


async def put_file(request: web.Request) -> web.Response:
    """PUT /arc/files/<path>: 201, empty body, `Digest` header (§7)."""
    user, path = _file_target(request)
    data = await request.read()
    digest = state_of(request).cavern.put_file(user, path, data, request.headers.get("Digest"))
    return web.Response(status=201, headers={"Digest": digest})


async def get_file(request: web.Request) -> web.Response:
    """GET /arc/files/<path>: the bytes."""
    user, path = _file_target(request)
    data = state_of(request).cavern.read_file(user, path)
    return web.Response(body=data, content_type="application/octet-stream")


async def synctrans(request: web.Request) -> web.Response:
    """POST /arc/synctrans: 303 to the transfer details (§7 negotiated upload)."""
    state = state_of(request)
    body = await request.read()
    job_id = state.cavern.negotiate(user_of(request), body, state.base_url)
    location = f"{state.base_url}/arc/synctrans/{job_id}/results/transferDetails"
    return web.Response(status=303, headers={"Location": location})


async def transfer_details(request: web.Request) -> web.Response:
    """GET the transfer document with its `<vos:endpoint>`."""
    return replies.xml(state_of(request).cavern.transfer_xml(request.match_info["job"]))


async def capabilities(request: web.Request) -> web.Response:
    """GET /arc/capabilities (VOSI, anonymous)."""
    return replies.xml(vosi.cavern_capabilities(f"{state_of(request).base_url}/arc"))


async def availability(request: web.Request) -> web.Response:
    """GET /arc/availability (VOSI, anonymous)."""
    return replies.xml(vosi.availability("cavern simulator is accepting requests"))


def add_routes(app: web.Application) -> None:
    """Register the Cavern routes."""
    app.router.add_get("/arc/capabilities", capabilities)
    app.router.add_get("/arc/availability", availability)
    app.router.add_get("/arc/nodes", get_node)
    app.router.add_get("/arc/nodes/{path:.*}", get_node)
    app.router.add_put("/arc/nodes/{path:.+}", put_node)
    app.router.add_post("/arc/nodes/{path:.+}", post_node)
    app.router.add_delete("/arc/nodes/{path:.+}", delete_node)
    app.router.add_put("/arc/files/{path:.+}", put_file)
    app.router.add_get("/arc/files/{path:.+}", get_file)
    app.router.add_post("/arc/synctrans", synctrans)
    app.router.add_get("/arc/synctrans/{job}/results/transferDetails", transfer_details)
