"""Cavern (VOSpace 2.1) nodes and files backed by a directory (`docs/platform-api.md` §7, §9.8).

Owns the node tree under `root` (`home/`, `projects/`), node properties (in memory), and
pre-authorised transfer tokens. Faithful points: no mkdir -p (a missing parent is 404
`ContainerNotFound`), no recursive delete (non-empty container is 400), files overwrite,
MD5 mismatch is 412 and leaves the file truncated. A user may write under `home/<self>` and
`projects/`; anything else is 403 `PermissionDenied`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from skaha_operator.simulator.errors import SimError

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
CORE = "ivo://ivoa.net/vospace/core"
TOP_LEVEL = ("home", "projects")


@dataclass(frozen=True)
class Preauth:
    """A pre-authorised transfer endpoint issued by /synctrans."""

    user: str
    path: str
    direction: str


@dataclass(frozen=True)
class Transfer:
    """A negotiated transfer and the endpoint it offers."""

    target: str
    direction: str
    protocol: str
    endpoint: str


class CavernStore:
    """The Cavern tree on disk plus properties and transfer tokens."""

    def __init__(self, authority: str, root: Path | None) -> None:
        self.authority = authority
        self._owned_tmp = root is None
        self.root = Path(tempfile.mkdtemp(prefix="skaha-sim-cavern-")) if root is None else root
        for top in TOP_LEVEL:
            (self.root / top).mkdir(parents=True, exist_ok=True)
        self._properties: dict[str, dict[str, str]] = {}
        self._preauth: dict[str, Preauth] = {}
        self._transfers: dict[str, Transfer] = {}

    def seed(self, files: dict[str, str]) -> None:
        """Write start-up files (config `cavern_files`), creating their directories."""
        for path, text in files.items():
            target = self._resolve(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def close(self) -> None:
        """Remove the backing directory when the store created it."""
        if self._owned_tmp:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- paths ----------------------------------------------------------------------------
    def uri(self, path: str) -> str:
        """`vos://<authority>/<path>`."""
        return f"vos://{self.authority}/{path}"

    def _resolve(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") or "\\" in p for p in parts):
            raise SimError(400, f"InvalidURI: invalid input: {path}")
        # A symbolic link (made by a session, e.g. a virtualenv's lib64) is a LinkNode: shown
        # and deletable, never followed, so no path leaves the tree through one.
        for depth in range(1, len(parts)):
            if self.root.joinpath(*parts[:depth]).is_symlink():
                raise SimError(400, f"InvalidURI: {path} goes through a link node")
        return self.root.joinpath(*parts)

    def _check_write(self, user: str, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        own_home = len(parts) >= 2 and parts[0] == "home" and parts[1] == user
        project = len(parts) >= 2 and parts[0] == "projects"
        if not (own_home or project):
            raise SimError(403, f"PermissionDenied: {self.uri(path)}")

    def _check_read(self, user: str, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "home" and parts[1] != user:
            raise SimError(403, f"PermissionDenied: {self.uri(path)}")

    def ensure_home(self, user: str) -> None:
        """Allocate `home/<user>` if missing (what Skaha does on every launch, §7)."""
        (self.root / "home" / user).mkdir(parents=True, exist_ok=True)

    # -- nodes ----------------------------------------------------------------------------
    def create_node(self, user: str, path: str, body: bytes) -> str:
        """PUT /nodes: create one container (or empty data) node; returns the node XML."""
        target = self._resolve(path)
        try:
            doc = ET.fromstring(body)
        except ET.ParseError as exc:
            raise SimError(400, f"InvalidArgument: invalid node document: {exc}") from None
        doc_uri = doc.get("uri", "")
        path_uri = self.uri(path.strip("/"))
        if doc_uri != path_uri:
            raise SimError(
                400,
                f"InvalidURI: invalid input: vos URI mismatch: doc={doc_uri} and path={path_uri}",
            )
        self._check_write(user, path)
        if os.path.lexists(target):
            raise SimError(409, f"DuplicateNode: {path_uri}")
        parent = target.parent
        if not parent.exists():
            raise SimError(404, f"ContainerNotFound: {self.uri(self._rel(parent))}")
        if not parent.is_dir():
            raise SimError(400, "parent is not a container node")
        node_type = doc.get(f"{{{XSI_NS}}}type", "")
        if node_type.endswith("ContainerNode"):
            target.mkdir()
        elif node_type.endswith("DataNode"):
            target.touch()
        else:
            raise SimError(400, f"InvalidArgument: unsupported node type {node_type!r}")
        self._properties[self._rel(target)] = _read_properties(doc)
        return self.node_xml(user, path)

    def set_properties(self, user: str, path: str, body: bytes) -> str:
        """POST /nodes: merge node properties (permissions); returns the node XML."""
        target = self._resolve(path)
        self._check_write(user, path)
        if not os.path.lexists(target):
            raise SimError(404, f"NodeNotFound: {self.uri(path.strip('/'))}")
        try:
            doc = ET.fromstring(body)
        except ET.ParseError as exc:
            raise SimError(400, f"InvalidArgument: invalid node document: {exc}") from None
        self._properties.setdefault(self._rel(target), {}).update(_read_properties(doc))
        return self.node_xml(user, path)

    def delete_node(self, user: str, path: str) -> None:
        """DELETE /nodes: files and empty containers only; non-empty is 400 (§7, §9.11 l)."""
        target = self._resolve(path)
        self._check_write(user, path)
        if not os.path.lexists(target):
            raise SimError(404, f"NodeNotFound: {self.uri(path.strip('/'))}")
        if _is_container(target):
            if any(target.iterdir()):
                raise SimError(400, f"container node '{target.name}' is not empty")
            target.rmdir()
        else:
            target.unlink()
        self._properties.pop(self._rel(target), None)

    def node_xml(
        self, user: str, path: str, limit: int | None = None, start_after: str | None = None
    ) -> str:
        """GET /nodes: the node document, children listed for containers (§7)."""
        target = self._stat_target(user, path)
        children = self._children(target, limit, start_after)
        lines = ['<?xml version="1.0" encoding="UTF-8"?>']
        lines.append(
            f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" '
            f'uri={quoteattr(self.uri(self._rel(target)))} xsi:type="{_type(target)}">'
        )
        lines.extend(self._properties_xml(target, "  "))
        if _is_container(target):
            lines.append("  <vos:nodes>")
            for child in children:
                lines.append(
                    f"    <vos:node uri={quoteattr(self.uri(self._rel(child)))} "
                    f'xsi:type="{_type(child)}">'
                )
                lines.extend(self._properties_xml(child, "      "))
                lines.append("    </vos:node>")
            lines.append("  </vos:nodes>")
        lines.append("</vos:node>")
        return "\n".join(lines) + "\n"

    def node_json(
        self, user: str, path: str, limit: int | None = None, start_after: str | None = None
    ) -> dict[str, object]:
        """GET /nodes?Accept=application/json; the layout is the simulator's own (§7 gives none)."""
        target = self._stat_target(user, path)
        doc: dict[str, object] = self._node_dict(target)
        if _is_container(target):
            doc["nodes"] = [self._node_dict(c) for c in self._children(target, limit, start_after)]
        return doc

    def _stat_target(self, user: str, path: str) -> Path:
        target = self._resolve(path) if path.strip("/") else self.root
        if path.strip("/"):
            self._check_read(user, path)
        if not os.path.lexists(target):
            raise SimError(404, f"NodeNotFound: {self.uri(path.strip('/'))}")
        return target

    def _children(self, target: Path, limit: int | None, start_after: str | None) -> list[Path]:
        if not _is_container(target):
            return []
        children = sorted(target.iterdir(), key=lambda p: p.name)
        if start_after:
            children = [c for c in children if self.uri(self._rel(c)) > start_after]
        return children[:limit] if limit is not None else children

    def _node_dict(self, target: Path) -> dict[str, object]:
        return {
            "uri": self.uri(self._rel(target)),
            "type": _type(target),
            "properties": self._property_values(target),
        }

    def _property_values(self, target: Path) -> dict[str, str]:
        stat = target.lstat()
        values = {
            f"{CORE}#length": str(0 if _is_container(target) else stat.st_size),
            f"{CORE}#date": datetime.fromtimestamp(stat.st_mtime, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%f"
            )[:-3],
        }
        values.update(self._properties.get(self._rel(target), {}))
        return values

    def _properties_xml(self, target: Path, indent: str) -> list[str]:
        out = [f"{indent}<vos:properties>"]
        for uri, value in self._property_values(target).items():
            out.append(
                f"{indent}  <vos:property uri={quoteattr(uri)}>{escape(value)}</vos:property>"
            )
        out.append(f"{indent}</vos:properties>")
        return out

    def _rel(self, target: Path) -> str:
        return target.relative_to(self.root).as_posix()

    # -- files ----------------------------------------------------------------------------
    def put_file(self, user: str, path: str, data: bytes, digest: str | None) -> str:
        """PUT /files: create or overwrite; returns `md5=<base64>`; 412 on mismatch (§7)."""
        target = self._resolve(path)
        self._check_write(user, path)
        parent = target.parent
        if not parent.exists():
            raise SimError(404, f"not found: parent container {self.uri(self._rel(parent))}")
        if not parent.is_dir():
            raise SimError(400, "parent is not a container node")
        if target.is_dir() or target.is_symlink():
            raise SimError(400, f"not a data node: {self.uri(path.strip('/'))}")
        actual = "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()
        if (
            digest is not None
            and digest.strip().lower().startswith("md5=")
            and (digest.strip()[4:] != actual[4:])
        ):
            target.write_bytes(b"")
            raise SimError(412, f"checksum mismatch: expected {digest.strip()} got {actual}")
        target.write_bytes(data)
        return actual

    def read_file(self, user: str, path: str) -> bytes:
        """GET /files: the file's bytes."""
        target = self._resolve(path)
        self._check_read(user, path)
        if target.is_symlink() or not target.is_file():
            raise SimError(404, f"NodeNotFound: {self.uri(path.strip('/'))}")
        return target.read_bytes()

    # -- transfers ------------------------------------------------------------------------
    def negotiate(self, user: str, body: bytes, base_url: str) -> str:
        """POST /synctrans: record the transfer, issue a preauth endpoint, return the job id."""
        try:
            doc = ET.fromstring(body)
        except ET.ParseError as exc:
            raise SimError(400, f"InvalidArgument: invalid transfer document: {exc}") from None
        target = (doc.findtext(f"{{{VOS_NS}}}target") or "").strip()
        direction = (doc.findtext(f"{{{VOS_NS}}}direction") or "").strip()
        protocol_el = doc.find(f"{{{VOS_NS}}}protocol")
        protocol = protocol_el.get("uri", "") if protocol_el is not None else ""
        prefix = f"vos://{self.authority}/"
        if not target.startswith(prefix):
            raise SimError(400, f"InvalidURI: invalid input: {target}")
        if direction not in ("pushToVoSpace", "pullFromVoSpace"):
            raise SimError(400, f"InvalidArgument: unsupported direction {direction!r}")
        path = target[len(prefix) :]
        self._resolve(path)
        if direction == "pushToVoSpace":
            self._check_write(user, path)
        else:
            self._check_read(user, path)
        token = secrets.token_urlsafe(16)
        self._preauth[token] = Preauth(user=user, path=path, direction=direction)
        endpoint = f"{base_url}/arc/files/preauth:{token}/{path}"
        job_id = secrets.token_hex(8)
        self._transfers[job_id] = Transfer(target, direction, protocol, endpoint)
        return job_id

    def transfer_xml(self, job_id: str) -> str:
        """The transfer details document with its `<vos:endpoint>` (§7 negotiated upload)."""
        transfer = self._transfers.get(job_id)
        if transfer is None:
            raise SimError(404, f"job not found: {job_id}")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">\n'
            f"  <vos:target>{escape(transfer.target)}</vos:target>\n"
            f"  <vos:direction>{escape(transfer.direction)}</vos:direction>\n"
            f"  <vos:protocol uri={quoteattr(transfer.protocol)}>\n"
            f"    <vos:endpoint>{escape(transfer.endpoint)}</vos:endpoint>\n"
            "  </vos:protocol>\n"
            "</vos:transfer>\n"
        )

    def preauth_user(self, token: str, path: str) -> str:
        """The user a preauth token stands for, if it was issued for `path`."""
        grant = self._preauth.get(token)
        if grant is None or grant.path.strip("/") != path.strip("/"):
            raise SimError(403, f"PermissionDenied: {self.uri(path.strip('/'))}")
        return grant.user


def _is_container(target: Path) -> bool:
    return target.is_dir() and not target.is_symlink()


def _type(target: Path) -> str:
    if target.is_symlink():
        return "vos:LinkNode"
    return "vos:ContainerNode" if target.is_dir() else "vos:DataNode"


def _read_properties(doc: ET.Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for prop in doc.iter(f"{{{VOS_NS}}}property"):
        uri = prop.get("uri")
        if uri:
            out[uri] = prop.text or ""
    return out
