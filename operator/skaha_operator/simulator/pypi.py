"""The simulated site's package index: `/_sim/pypi/simple/` (PEP 503), for real setup jobs.

A container job's pip uses this index unless the site's `job_env` names another, so a job never
reaches the internet. Every project exists as a stand-in wheel (one empty module named after the
project) at version 1.0 and at every version that a requirements file in the Cavern tree names for
it (`astropy>=6` offers 6, `specutils==1.15.0` offers 1.15.0), so the operator's requirements are
satisfiable; projects named in `pip_unavailable` are 404, and pip then fails with its own message.
Wheels are built on request, in memory.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from html import escape

from aiohttp import web

from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.state import state_of

INDEX_ROUTE = "/_sim/pypi/simple/"
FILES_ROUTE = "/_sim/pypi/files/"
DEFAULT_VERSION = "1.0"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PINS = re.compile(r"(?:===|==|~=|>=|<=|!=|>|<)\s*([0-9][0-9A-Za-z.+!-]*)")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]*$")


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_stem(name: str, version: str) -> str:
    """`<name>-<version>` as wheel file names spell it (PEP 427)."""
    return f"{normalize(name).replace('-', '_')}-{version}"


def versions_named(texts: list[str], project: str) -> set[str]:
    """Versions the requirement lines of `texts` give for `project` (specifiers, not ranges)."""
    wanted = normalize(project)
    found = {DEFAULT_VERSION}
    for text in texts:
        for line in text.splitlines():
            match = _NAME.match(line.split("#", 1)[0])
            if match is None or normalize(match.group(1)) != wanted:
                continue
            rest = line[match.end() :].split(";", 1)[0]
            found.update(v.rstrip(".*") for v in _PINS.findall(rest))
    return {v for v in found if _VERSION.match(v)}


def build_wheel(name: str, version: str) -> bytes:
    """A pure-Python wheel holding one module named after the project, with a hashed RECORD."""
    stem = wheel_stem(name, version)
    module = normalize(name).replace("-", "_")
    files = {
        f"{module}/__init__.py": f'"""Stand-in for {name} from the simulator\'s index."""\n'
        f'__version__ = "{version}"\n'.encode(),
        f"{stem}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: a stand-in package served by the skaha-operator simulator\n"
        ).encode(),
        f"{stem}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: skaha-operator-simulator\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{stem}.dist-info/RECORD,,")
    files[f"{stem}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def add_routes(app: web.Application) -> None:
    """Register the index page of each project and its wheels."""

    async def project(request: web.Request) -> web.Response:
        state = state_of(request)
        name = request.match_info["project"]
        if normalize(name) in {normalize(n) for n in state.config.pip_unavailable}:
            raise SimError(404, f"not found: {request.path}")
        texts = [
            path.read_text(errors="replace")
            for path in state.cavern.root.rglob("*requirements*.txt")
            if path.is_file()
        ]
        links = []
        for version in sorted(versions_named(texts, name)):
            file = f"{wheel_stem(name, version)}-py3-none-any.whl"
            digest = hashlib.sha256(build_wheel(name, version)).hexdigest()
            href = f"{FILES_ROUTE}{escape(name)}/{file}#sha256={digest}"
            links.append(f'<a href="{href}">{escape(file)}</a><br/>')
        body = "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
        return web.Response(text=body, content_type="text/html")

    async def wheel(request: web.Request) -> web.Response:
        name = request.match_info["project"]
        file = request.match_info["file"]
        match = re.fullmatch(r"(.+?)-([^-]+)-py3-none-any\.whl", file)
        if match is None or match.group(1) != normalize(name).replace("-", "_"):
            raise SimError(404, f"not found: {request.path}")
        return web.Response(
            body=build_wheel(name, match.group(2)), content_type="application/octet-stream"
        )

    app.router.add_get(INDEX_ROUTE + "{project}/", project)
    app.router.add_get(INDEX_ROUTE + "{project}", project)
    app.router.add_get(FILES_ROUTE + "{project}/{file}", wheel)
