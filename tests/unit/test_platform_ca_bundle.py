"""A site CA: the operator's --ca-bundle and a platform's caBundleSecretRef make the Skaha,
Cavern and Rucio clients trust a server whose certificate only that CA signs."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from skaha_operator.controllers.platforms import PlatformCache
from skaha_operator.k8s.api import SecretError
from skaha_operator.platform.base import make_http_client, trust_context


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback whose self-signed certificate is the 'site CA'."""
    d = tmp_path_factory.mktemp("ca")
    cert, key = d / "ca.crt", d / "ca.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def _get(url: str, verify: ssl.SSLContext | bool) -> int:
    async with make_http_client(url, verify=verify, timeout=httpx.Timeout(5.0)) as http:
        return (await http.get("/")).status_code


def test_the_public_cas_alone_refuse_the_site(site: tuple[str, Path]) -> None:
    url, _ = site
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_get(url, trust_context()))


def test_the_ca_bundle_file_is_trusted(site: tuple[str, Path]) -> None:
    url, cert = site
    assert asyncio.run(_get(url, trust_context(ca_file=str(cert)))) == 200
    assert asyncio.run(_get(url, trust_context(ca_pem=cert.read_text()))) == 200


def test_a_bad_bundle_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ssl.SSLError):
        trust_context(ca_pem="-----BEGIN CERTIFICATE-----\nnot pem\n-----END CERTIFICATE-----\n")


class _FakeKube:
    def __init__(self, secrets: dict[tuple[str, str], str]) -> None:
        self.secrets = secrets

    async def read_secret(self, ns: str, name: str, key: str) -> str:
        try:
            return self.secrets[(name, key)]
        except KeyError:
            raise SecretError(f"Secret {ns}/{name} not found") from None


def _platform(url: str, ca: dict[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "skaha": {"url": f"{url}/skaha", "apiVersion": "v1"},
        "cavern": {"url": f"{url}/arc", "user": "alice"},
        "tokenSecretRef": {"name": "tok"},
    }
    if ca is not None:
        spec["caBundleSecretRef"] = ca
    return {
        "apiVersion": "skaha.broker.dev/v1alpha1",
        "kind": "SkahaPlatform",
        "metadata": {"name": "site", "namespace": "science", "uid": "u", "generation": 1},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("ca_ref", "ca_file", "trusted"),
    [
        (None, False, False),
        ({"name": "site-ca"}, False, True),  # the Secret's ca.crt key, the default
        (None, True, True),  # the operator's --ca-bundle
    ],
    ids=["public-only", "caBundleSecretRef", "--ca-bundle"],
)
def test_platform_clients_trust_the_platform_or_operator_ca(
    site: tuple[str, Path], ca_ref: dict[str, str] | None, ca_file: bool, trusted: bool
) -> None:
    url, cert = site
    kube = _FakeKube({("tok", "token"): "t0k3n", ("site-ca", "ca.crt"): cert.read_text()})

    async def read(plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return _platform(url, ca_ref)

    async def run() -> None:
        cache = PlatformCache(
            kube,  # type: ignore[arg-type]
            reader=read,
            ca_file=str(cert) if ca_file else None,
        )
        try:
            found = await cache.get("science", "site")
            assert found is not None
            clients = found[1]
            for http in (clients.skaha._http, clients.cavern._http):
                if trusted:
                    assert (await http.get("/")).status_code == 200
                else:
                    with pytest.raises(httpx.ConnectError):
                        await http.get("/")
        finally:
            await cache.aclose()

    asyncio.run(run())


def test_a_missing_ca_secret_is_a_secret_error(site: tuple[str, Path]) -> None:
    url, _ = site
    kube = _FakeKube({("tok", "token"): "t0k3n"})

    async def read(plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return _platform(url, {"name": "nope", "key": "bundle.pem"})

    async def run() -> None:
        cache = PlatformCache(kube, reader=read)  # type: ignore[arg-type]
        try:
            with pytest.raises(SecretError, match="science/nope"):
                await cache.get("science", "site")
        finally:
            await cache.aclose()

    asyncio.run(run())
