"""Cavern over HTTP: docs/platform-api.md §7 and §9.8, §9.11 l."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

from skaha_operator.simulator import Simulator
from tests.simulator.helpers import Api

AUTH = "cadc.nrc.ca~arc"
VOS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML = {"Content-Type": "text/xml"}


def container(path: str) -> str:
    """A minimal vos:ContainerNode document for `path`."""
    return (
        '<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'uri="vos://{AUTH}/{path}" xsi:type="vos:ContainerNode"><vos:properties/></vos:node>'
    )


async def mkdir(api: Api, path: str) -> int:
    """PUT one container node; returns the status."""
    reply = await api.call("PUT", f"/arc/nodes/{path}", data=container(path), headers=XML)
    return reply.status


async def test_container_create_is_level_by_level(alice: Api) -> None:
    """(l) no mkdir -p: a missing parent is 404 ContainerNotFound; then 201; again 409."""
    assert await mkdir(alice, "home/alice") == 201
    reply = await alice.call(
        "PUT", "/arc/nodes/home/alice/a/b", data=container("home/alice/a/b"), headers=XML
    )
    assert reply.status == 404
    assert reply.text.startswith("ContainerNotFound: ")
    created = await alice.call(
        "PUT", "/arc/nodes/home/alice/a", data=container("home/alice/a"), headers=XML
    )
    assert created.status == 201
    assert 'xsi:type="vos:ContainerNode"' in created.text
    assert await mkdir(alice, "home/alice/a/b") == 201
    dup = await alice.call(
        "PUT", "/arc/nodes/home/alice/a", data=container("home/alice/a"), headers=XML
    )
    assert (dup.status, dup.text) == (409, f"DuplicateNode: vos://{AUTH}/home/alice/a\n")


async def test_uri_mismatch_and_permission(alice: Api) -> None:
    """§7: body URI must match the path (400 InvalidURI); others' homes are 403."""
    await mkdir(alice, "home/alice")
    reply = await alice.call(
        "PUT", "/arc/nodes/home/alice/x", data=container("home/alice/y"), headers=XML
    )
    assert reply.status == 400
    assert reply.text.startswith("InvalidURI: invalid input: vos URI mismatch: doc=")
    denied = await alice.call(
        "PUT", "/arc/nodes/home/bob/x", data=container("home/bob/x"), headers=XML
    )
    assert denied.status == 403
    assert denied.text.startswith("PermissionDenied: ")


async def test_upload_overwrite_and_list(alice: Api) -> None:
    """§7: PUT /files 201 with Digest; overwrite; listing names the child; JSON via ?Accept."""
    await mkdir(alice, "home/alice")
    await mkdir(alice, "home/alice/nb")
    first = await alice.call("PUT", "/arc/files/home/alice/nb/requirements.txt", data=b"numpy\n")
    assert (first.status, first.text) == (201, "")
    md5 = base64.b64encode(hashlib.md5(b"numpy\n").digest()).decode()
    assert first.headers["Digest"] == f"md5={md5}"
    second = await alice.call("PUT", "/arc/files/home/alice/nb/requirements.txt", data=b"scipy\n")
    assert second.status == 201
    got = await alice.call("GET", "/arc/files/home/alice/nb/requirements.txt")
    assert got.text == "scipy\n"
    listing = await alice.call("GET", "/arc/nodes/home/alice/nb")
    assert listing.content_type == "text/xml"
    root = ET.fromstring(listing.text)
    uris = [n.get("uri") for n in root.iter("{http://www.ivoa.net/xml/VOSpace/v2.0}node")]
    assert f"vos://{AUTH}/home/alice/nb/requirements.txt" in uris
    as_json = await alice.call(
        "GET", "/arc/nodes/home/alice/nb", params={"Accept": "application/json"}
    )
    assert as_json.json()["nodes"][0]["uri"].endswith("/requirements.txt")


async def test_upload_needs_parent_and_checks_md5(alice: Api) -> None:
    """§7: 404 without a parent; 412 on MD5 mismatch, leaving the file truncated."""
    await mkdir(alice, "home/alice")
    orphan = await alice.call("PUT", "/arc/files/home/alice/missing/f.txt", data=b"x")
    assert orphan.status == 404
    assert orphan.text.startswith("not found: parent container ")
    bad = await alice.call(
        "PUT", "/arc/files/home/alice/f.txt", data=b"data", headers={"Digest": "md5=AAAA"}
    )
    assert bad.status == 412
    assert (await alice.call("GET", "/arc/files/home/alice/f.txt")).text == ""


async def test_delete_refuses_non_empty_container(alice: Api) -> None:
    """(l) no recursive delete: 400 `container node '<n>' is not empty`; files first, then dir."""
    await mkdir(alice, "home/alice")
    await mkdir(alice, "home/alice/d")
    await alice.call("PUT", "/arc/files/home/alice/d/f", data=b"1")
    reply = await alice.call("DELETE", "/arc/nodes/home/alice/d")
    assert (reply.status, reply.text) == (400, "container node 'd' is not empty\n")
    assert (await alice.call("DELETE", "/arc/nodes/home/alice/d/f")).status == 200
    assert (await alice.call("DELETE", "/arc/nodes/home/alice/d")).status == 200
    gone = await alice.call("GET", "/arc/nodes/home/alice/d")
    assert gone.status == 404
    assert gone.text.startswith("NodeNotFound: ")


async def test_synctrans_preauth_upload(alice: Api, http: object, base_url: str) -> None:
    """§7 negotiated upload: 303 → transfer doc → PUT bytes to a preauth endpoint, no token."""
    await mkdir(alice, "home/alice")
    transfer = (
        '<vos:transfer xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" version="2.1">'
        f"<vos:target>vos://{AUTH}/home/alice/up.ipynb</vos:target>"
        "<vos:direction>pushToVoSpace</vos:direction>"
        '<vos:protocol uri="ivo://ivoa.net/vospace/core#httpsput"/></vos:transfer>'
    )
    redirect = await alice.http.post(
        f"{base_url}/arc/synctrans",
        data=transfer,
        headers={"Authorization": "Bearer tok-alice", **XML},
        allow_redirects=False,
    )
    assert redirect.status == 303
    location = redirect.headers["Location"]
    redirect.release()
    details = await alice.call("GET", location.removeprefix(base_url))
    endpoint = ET.fromstring(details.text).findtext(".//{*}endpoint")
    assert endpoint is not None
    assert "/arc/files/preauth:" in endpoint
    anonymous = Api(alice.http, base_url, None)
    put = await anonymous.call("PUT", endpoint.removeprefix(base_url), data=b"{}")
    assert put.status == 201
    assert (await alice.call("GET", "/arc/files/home/alice/up.ipynb")).text == "{}"


async def test_cavern_requires_a_token(http: object, alice: Api, base_url: str) -> None:
    """Cavern nodes and files need the bearer token."""
    anonymous = Api(alice.http, base_url, None)
    assert (await anonymous.call("GET", "/arc/nodes/home")).status == 401
    assert (await anonymous.call("PUT", "/arc/files/home/alice/x", data=b"1")).status == 401


async def test_symbolic_links_made_by_sessions_are_link_nodes_never_followed(
    alice: Api, sim: Simulator
) -> None:
    """A session's virtualenv has `lib64 -> lib` and `bin/python -> /usr/bin/python3`."""
    venv = sim.state.cavern.root / "home" / "alice" / "venv"
    (venv / "lib" / "site").mkdir(parents=True)
    (venv / "lib" / "site" / "m.py").write_text("x = 1\n")
    (venv / "lib64").symlink_to("lib")
    (venv / "gone").symlink_to("/nonexistent/python3")  # dangling
    (venv / "etc").symlink_to("/etc")  # out of the tree
    reply = await alice.call("GET", "/arc/nodes/home/alice/venv")
    kinds = {
        node.get("uri", "").rsplit("/", 1)[-1]: node.get(f"{{{XSI}}}type")
        for node in ET.fromstring(reply.text).iter(f"{{{VOS}}}node")
    }
    assert kinds == {
        "venv": "vos:ContainerNode",
        "lib": "vos:ContainerNode",
        "lib64": "vos:LinkNode",
        "gone": "vos:LinkNode",
        "etc": "vos:LinkNode",
    }
    through = await alice.call("GET", "/arc/nodes/home/alice/venv/lib64/site")
    assert through.status == 400
    assert (await alice.call("GET", "/arc/files/home/alice/venv/etc/passwd")).status == 400
    assert (await alice.call("GET", "/arc/files/home/alice/venv/etc")).status == 404
    for link in ("lib64", "gone", "etc"):
        assert (await alice.call("DELETE", f"/arc/nodes/home/alice/venv/{link}")).status == 200
    assert (venv / "lib" / "site" / "m.py").is_file()  # the link went, not its target
    assert sorted(p.name for p in venv.iterdir()) == ["lib"]
