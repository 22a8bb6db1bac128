"""CavernClient against a mock Cavern that, like the real one, has no mkdir -p.

Facts: docs/platform-api.md §7.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import httpx
import pytest

from skaha_operator.platform.cavern import clean_path
from skaha_operator.platform.errors import AuthError, NotFound, Rejected
from skaha_operator.platform.wire import VOS_NS, XSI_NS, NodeKind
from tests.unit.platform_mock import cavern, text

AUTH = "vos://cadc.nrc.ca~arc"


class MiniCavern:
    """Just enough Cavern: containers need their parent, delete refuses non-empty containers."""

    def __init__(self) -> None:
        self.nodes: dict[str, str] = {"home": "container", "home/alice": "container"}
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/arc")
        kind, _, node = path.lstrip("/").partition("/")
        self.log.append((request.method, path))
        if request.method == "PUT" and kind == "nodes":
            return self.mkdir(node, request.content)
        if request.method == "PUT" and kind == "files":
            return self.upload(node, request.content)
        if request.method == "GET" and kind == "nodes":
            if node not in self.nodes:
                return text(404, f"NodeNotFound: {AUTH}/{node}")
            return httpx.Response(200, text=self.xml(node))
        if request.method == "DELETE":
            return self.delete(node)
        return text(405, "unsupported")

    def mkdir(self, node: str, body: bytes) -> httpx.Response:
        parent = node.rpartition("/")[0]
        doc = ET.fromstring(body)
        if doc.attrib["uri"] != f"{AUTH}/{node}":
            return text(400, "InvalidURI: invalid input: vos URI mismatch")
        if node in self.nodes:
            return text(409, f"DuplicateNode: {AUTH}/{node}")
        if parent == "":
            return text(403, "PermissionDenied: top level")
        if self.nodes.get(parent) != "container":
            return text(404, f"ContainerNotFound: {AUTH}/{parent}")
        self.nodes[node] = "container"
        return httpx.Response(201, text=body.decode())

    def upload(self, node: str, body: bytes) -> httpx.Response:
        if self.nodes.get(node.rpartition("/")[0]) != "container":
            return text(404, f"not found: parent container {node}")
        self.nodes[node] = "data"
        self.files[node] = body
        return httpx.Response(201)

    def delete(self, node: str) -> httpx.Response:
        if node not in self.nodes:
            return text(404, f"NodeNotFound: {AUTH}/{node}")
        if any(n.startswith(node + "/") for n in self.nodes):
            return text(400, f"container node '{node.rsplit('/', 1)[-1]}' is not empty")
        del self.nodes[node]
        return httpx.Response(200)

    def xml(self, node: str) -> str:
        children = "".join(
            f'<vos:node uri="{AUTH}/{n}" xsi:type="vos:{self.type(n)}"/>'
            for n in sorted(self.nodes)
            if n.rpartition("/")[0] == node
        )
        return (
            f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" uri="{AUTH}/{node}" '
            f'xsi:type="vos:{self.type(node)}"><vos:properties>'
            '<vos:property uri="ivo://ivoa.net/vospace/core#length">0</vos:property>'
            f"</vos:properties><vos:nodes>{children}</vos:nodes></vos:node>"
        )

    def type(self, node: str) -> str:
        return "ContainerNode" if self.nodes[node] == "container" else "DataNode"


async def test_make_dirs_creates_missing_levels_only() -> None:
    server = MiniCavern()
    await cavern(server).make_dirs("/home/alice/runs/2026/a/")
    puts = [path for method, path in server.log if method == "PUT"]
    # Leaf first, walking up on 404 until an existing level, then back down one level at a time.
    assert puts == [
        "/nodes/home/alice/runs/2026/a",
        "/nodes/home/alice/runs/2026",
        "/nodes/home/alice/runs",
        "/nodes/home/alice/runs/2026",
        "/nodes/home/alice/runs/2026/a",
    ]
    assert {"home/alice/runs", "home/alice/runs/2026", "home/alice/runs/2026/a"} <= set(
        server.nodes
    )


async def test_make_dirs_treats_existing_as_success() -> None:
    server = MiniCavern()
    client = cavern(server)
    await client.make_dirs("home/alice/x")
    assert await client.make_dir("home/alice/x") is False
    await client.make_dirs("home/alice/x")
    assert server.nodes["home/alice/x"] == "container"


async def test_make_dirs_surfaces_refusal_at_the_top() -> None:
    server = MiniCavern()
    with pytest.raises(AuthError, match="PermissionDenied"):
        await cavern(server).make_dirs("projects/big/data")


async def test_container_body_is_a_vospace_container_node() -> None:
    server = MiniCavern()
    await cavern(server).make_dir("home/alice/new")
    assert server.nodes["home/alice/new"] == "container"


async def test_put_file_sends_bytes_type_and_md5_digest() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201)

    data = b'{"cells": []}'
    await cavern(handler).put_file("home/alice/nb/a.ipynb", data, "application/x-ipynb+json")
    (request,) = seen
    assert request.method == "PUT"
    assert request.url.path == "/arc/files/home/alice/nb/a.ipynb"
    assert request.content == data
    assert request.headers["Content-Type"] == "application/x-ipynb+json"
    digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    assert request.headers["Digest"] == f"md5={digest}"


async def test_put_file_without_parent_is_not_found() -> None:
    with pytest.raises(NotFound, match="parent container"):
        await cavern(MiniCavern()).put_file("home/alice/missing/f.txt", b"x")


async def test_get_node_parses_kind_properties_and_children() -> None:
    server = MiniCavern()
    client = cavern(server)
    await client.make_dirs("home/alice/d")
    await client.put_file("home/alice/d/f.txt", b"abc", "text/plain")
    node = await client.get_node("home/alice/d")
    assert node.kind is NodeKind.CONTAINER
    assert node.uri == f"{AUTH}/home/alice/d"
    assert node.properties["ivo://ivoa.net/vospace/core#length"] == "0"
    assert [(c.name, c.kind) for c in node.children] == [("f.txt", NodeKind.DATA)]
    assert [c.name for c in await client.list_dir("home/alice")] == ["d"]


async def test_delete_of_non_empty_container_is_rejected() -> None:
    server = MiniCavern()
    client = cavern(server)
    await client.make_dirs("home/alice/d")
    await client.put_file("home/alice/d/f.txt", b"abc")
    with pytest.raises(Rejected, match="is not empty"):
        await client.delete("home/alice/d")
    assert await client.delete("home/alice/gone") is False


async def test_delete_tree_removes_children_first() -> None:
    server = MiniCavern()
    client = cavern(server)
    await client.make_dirs("home/alice/d/e")
    await client.put_file("home/alice/d/f.txt", b"abc")
    await client.put_file("home/alice/d/e/g.txt", b"abc")
    assert await client.delete_tree("home/alice/d") == 4
    deletes = [path for method, path in server.log if method == "DELETE"]
    assert deletes == [
        "/nodes/home/alice/d/e/g.txt",
        "/nodes/home/alice/d/e",
        "/nodes/home/alice/d/f.txt",
        "/nodes/home/alice/d",
    ]
    assert set(server.nodes) == {"home", "home/alice"}
    assert await client.delete_tree("home/alice/d") == 0


@pytest.mark.parametrize("bad", ["", "/", "home/../etc", "home/./x"])
def test_paths_that_could_escape_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Cavern node path"):
        clean_path(bad)
