"""`CavernClient`: the Cavern (VOSpace 2.1) calls the operator uses (`docs/platform-api.md` §7).

Cavern has no `mkdir -p` (a missing parent is 404 `ContainerNotFound`) and will not delete a
non-empty container (400), so this client creates directories level by level and deletes trees
children first. Paths are relative to the service root, e.g. `home/alice/run1/notebook.ipynb`.
"""

from __future__ import annotations

import base64
import hashlib
from xml.etree.ElementTree import ParseError

import httpx
from pydantic import SecretStr

from skaha_operator.platform.base import CallRecorder, ServiceClient
from skaha_operator.platform.errors import Conflict, NotFound
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.platform.wire import CavernNode, NodeKind, container_node_xml, parse_node

#: CANFAR's Cavern deployment `arc` names its nodes `vos://cadc.nrc.ca~arc/...` (§7).
DEFAULT_AUTHORITY = "cadc.nrc.ca~arc"


def clean_path(path: str) -> str:
    """Normalise a node path (no leading/trailing or doubled `/`); refuse `.`, `..` and empty."""
    parts = [part for part in path.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"not a Cavern node path: {path!r}")
    return "/".join(parts)


def parent_path(path: str) -> str:
    """The parent of a cleaned path, or "" for a top-level node."""
    return path.rpartition("/")[0]


class CavernClient(ServiceClient):
    """Directories and files in one Cavern service (`https://<host>/arc`)."""

    service = "cavern"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token: SecretStr,
        authority: str = DEFAULT_AUTHORITY,
        retry: RetryPolicy | None = None,
        on_call: CallRecorder | None = None,
        concurrency: int | None = None,
    ) -> None:
        super().__init__(
            http, secrets=(token,), retry=retry, on_call=on_call, concurrency=concurrency
        )
        self.authority = authority

    def uri(self, path: str) -> str:
        """The VOSpace URI of a path (§7: `vos://<authority>/<path>`)."""
        return f"vos://{self.authority}/{clean_path(path)}"

    async def make_dir(self, path: str) -> bool:
        """Create one container node; True if created, False if it already existed (409)."""
        path = clean_path(path)
        try:
            # PUT of a container is safe to repeat: a repeat answers 409, which we accept.
            await self._request(
                "PUT",
                "/nodes/{path}",
                path={"path": path},
                content=container_node_xml(self.uri(path)).encode(),
                headers={"Content-Type": "text/xml"},
            )
        except Conflict:
            return False
        return True

    async def make_dirs(self, path: str) -> None:
        """Create a container and any missing ancestors, one level at a time (§7: no mkdir -p).

        It starts at the leaf and walks up only on 404, so existing ancestors such as a user's
        home (which the caller may not be allowed to create) are never touched.
        """
        path = clean_path(path)
        try:
            await self.make_dir(path)
        except NotFound:
            parent = parent_path(path)
            if not parent:
                raise
            await self.make_dirs(parent)
            await self.make_dir(path)

    async def put_file(
        self,
        path: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        md5: bool = True,
    ) -> None:
        """Upload bytes to `/files/<path>` (§7: creates or overwrites; parent must exist)."""
        headers = {"Content-Type": content_type}
        if md5:
            # With a Digest, Cavern checks the bytes and answers 412 on a mismatch (§7).
            digest = hashlib.md5(data, usedforsecurity=False).digest()
            headers["Digest"] = "md5=" + base64.b64encode(digest).decode("ascii")
        await self._request(
            "PUT", "/files/{path}", path={"path": clean_path(path)}, content=data, headers=headers
        )

    async def get_file(self, path: str) -> bytes:
        """Download the bytes of a data node from `/files/<path>`."""
        response = await self._request("GET", "/files/{path}", path={"path": clean_path(path)})
        return response.content

    async def get_node(self, path: str) -> CavernNode:
        """`GET /nodes/<path>?detail=max`: the node, with children for a container (§7)."""
        response = await self._request(
            "GET",
            "/nodes/{path}",
            path={"path": clean_path(path)},
            params={"detail": "max"},
            headers={"Accept": "text/xml"},
        )
        try:
            return parse_node(response.text)
        except ParseError as exc:
            raise self._bad_reply(response, f"node is not VOSpace XML: {exc}") from exc

    async def list_dir(self, path: str) -> list[CavernNode]:
        """The children of a container node."""
        return (await self.get_node(path)).children

    async def delete(self, path: str) -> bool:
        """`DELETE /nodes/<path>`; False if already gone; Rejected if a non-empty container."""
        try:
            await self._request("DELETE", "/nodes/{path}", path={"path": clean_path(path)})
        except NotFound:
            return False
        return True

    async def delete_tree(self, path: str) -> int:
        """Delete a node and everything under it, children first (§7: no recursive DELETE)."""
        path = clean_path(path)
        try:
            node = await self.get_node(path)
        except NotFound:
            return 0
        removed = 0
        if node.kind is NodeKind.CONTAINER:
            for child in node.children:
                removed += await self.delete_tree(f"{path}/{child.name}")
        return removed + int(await self.delete(path))
