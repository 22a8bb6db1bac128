"""A Cavern tree made out of band, and a read-back of the whole tree, for tests.

`seed` creates directories and files as if a user had made them before the operator existed
(parents are created, existing files are overwritten, nothing is deleted); the config knob
`cavern_seed` applies it at start. `tree` lists every node under a path with its type, and for
files the size and sha256, so a test can assert that nothing it seeded was removed or changed.
Routes: `POST /_sim/cavern/seed` with `{"dirs": [...], "files": {"<path>": "<text>"}}` and
`GET /_sim/cavern/tree[?under=<path>]`. Paths are relative to the Cavern root (`home/<u>/…`,
`projects/…`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from skaha_operator.simulator.cavern_store import CavernStore
from skaha_operator.simulator.config import CavernSeed
from skaha_operator.simulator.control_api import read_json
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.state import state_of


def _target(store: CavernStore, path: str) -> Path:
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") or "\\" in p for p in parts):
        raise SimError(400, f"invalid path: {path!r}")
    return store.root.joinpath(*parts)


def seed(store: CavernStore, tree: CavernSeed) -> None:
    """Create `tree.dirs` and `tree.files` (with their parents) under the Cavern root."""
    targets = {path: _target(store, path) for path in [*tree.dirs, *tree.files]}
    try:
        for path in tree.dirs:
            targets[path].mkdir(parents=True, exist_ok=True)
        for path, text in tree.files.items():
            targets[path].parent.mkdir(parents=True, exist_ok=True)
            targets[path].write_text(text, encoding="utf-8")
    except OSError as exc:
        # A file where a directory should be, or the reverse.
        raise SimError(400, f"cannot seed: {exc.strerror}: {exc.filename}") from None


def tree(store: CavernStore, under: str = "") -> list[dict[str, Any]]:
    """Every node at and below `under` (default: the whole tree), sorted by path."""
    top = _target(store, under) if under.strip("/") else store.root
    if not top.exists():
        raise SimError(404, f"not found: {under}")
    nodes = [top, *top.rglob("*")] if top != store.root else list(top.rglob("*"))
    return [_describe(store, node) for node in sorted(nodes)]


def _describe(store: CavernStore, node: Path) -> dict[str, Any]:
    path = node.relative_to(store.root).as_posix()
    if node.is_dir():
        return {"path": path, "type": "container"}
    data = node.read_bytes()
    return {
        "path": path,
        "type": "data",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


async def post_seed(request: web.Request) -> web.Response:
    """POST /_sim/cavern/seed: create the given tree; answers the whole tree."""
    body = await read_json(request)
    try:
        wanted = CavernSeed.model_validate(body or {})
    except ValidationError as exc:
        raise SimError(400, f"invalid seed: {exc}") from None
    store = state_of(request).cavern
    seed(store, wanted)
    return web.json_response(tree(store))


async def get_tree(request: web.Request) -> web.Response:
    """GET /_sim/cavern/tree[?under=]."""
    return web.json_response(tree(state_of(request).cavern, request.query.get("under", "")))


def add_routes(app: web.Application) -> None:
    """Register the seed and tree routes."""
    app.router.add_post("/_sim/cavern/seed", post_seed)
    app.router.add_get("/_sim/cavern/tree", get_tree)
