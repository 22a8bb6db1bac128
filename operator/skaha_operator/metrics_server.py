"""The /metrics endpoint: HTTPS with Kubernetes authentication and authorisation by default.

controller-runtime's secure-metrics pattern (docs/observability.md, docs/threat-model.md): TLS
with a certificate from `--metrics-cert-dir` (`tls.crt`, `tls.key`: a mounted kubernetes.io/tls
Secret, re-read when it changes) or, without one, a self-signed certificate made at start; each
request's bearer token goes through a TokenReview and a SubjectAccessReview for `get` on the
non-resource URL `/metrics` (k8s/reviews.py). No token or an unknown one is 401, a user without
the grant 403. `--metrics-insecure` serves plain HTTP without any check, for local use only.

The metrics are the ones `metrics.py` declares, in Prometheus' text format.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from skaha_operator.k8s.reviews import AccessReviewer, Verdict

log = logging.getLogger(__name__)

CERT_FILE, KEY_FILE = "tls.crt", "tls.key"
REQUEST_TIMEOUT = 15.0  # seconds a connection may take (handshake and request)


class Reviewer(Protocol):
    """Decides whether a request's bearer token may read /metrics (k8s/reviews.py)."""

    def check(self, token: str | None) -> Verdict:
        """The verdict for one request's token (None: none was sent)."""
        ...


def self_signed(directory: Path, hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A fresh EC key and a one-year self-signed certificate for `hosts`, written to `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skaha-operator-metrics")])
    sans: list[x509.GeneralName] = []
    for host in ("localhost", socket.gethostname(), *hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class _Certificates:
    """The server's TLS context: from a directory (re-read when its files change) or made once."""

    def __init__(self, cert_dir: Path | None) -> None:
        self.cert_dir = cert_dir
        self._stamp: tuple[float, float] | None = None
        self._lock = threading.Lock()
        if cert_dir is None:
            # Written to a private temporary directory only while it is loaded.
            tmp = Path(tempfile.mkdtemp(prefix="skaha-metrics-"))
            try:
                self._ctx = _context(*self_signed(tmp))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            self._ctx = self._load()

    def _load(self) -> ssl.SSLContext:
        assert self.cert_dir is not None
        cert, key = self.cert_dir / CERT_FILE, self.cert_dir / KEY_FILE
        self._stamp = (cert.stat().st_mtime, key.stat().st_mtime)
        return _context(cert, key)

    def context(self) -> ssl.SSLContext:
        """The current context; a renewed mounted certificate is picked up on the next request."""
        if self.cert_dir is None:
            return self._ctx
        with self._lock:
            try:
                cert, key = self.cert_dir / CERT_FILE, self.cert_dir / KEY_FILE
                if (cert.stat().st_mtime, key.stat().st_mtime) != self._stamp:
                    self._ctx = self._load()
            except (OSError, ssl.SSLError) as exc:
                log.warning("metrics certificate not reloaded (%s); keeping the old one", exc)
            return self._ctx


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    reviewer: Reviewer | None = None
    certificates: _Certificates | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(REQUEST_TIMEOUT)
        if self.certificates is None:
            super().finish_request(request, client_address)
            return
        try:
            conn = self.certificates.context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a failed handshake (a plain-HTTP client, a scanner): nothing to answer
        try:
            super().finish_request(conn, client_address)
        finally:
            with contextlib.suppress(OSError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "skaha-operator"
    sys_version = ""

    def do_GET(self) -> None:
        """Serve /metrics to whoever the reviewer allows."""
        if urlsplit(self.path).path != "/metrics":
            self._plain(404, "not found")
            return
        if self.server.reviewer is not None:
            verdict = self.server.reviewer.check(_bearer(self.headers.get("Authorization")))
            if verdict.code != 200:
                self._plain(verdict.code, verdict.reason)
                return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(REGISTRY)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _plain(self, code: int, text: str) -> None:
        body = f"{text}\n".encode()
        self.send_response(code)
        if code == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="skaha-operator metrics"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a scrape every few seconds is not news (and headers are never logged)."""


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class MetricsServer:
    """The running endpoint; `stop()` closes it."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def serve_metrics(
    port: int,
    address: str = "0.0.0.0",
    *,
    insecure: bool = False,
    cert_dir: Path | None = None,
    reviewer: Reviewer | None = None,
) -> MetricsServer:
    """Serve /metrics in a daemon thread: HTTPS + access reviews, or plain HTTP if `insecure`."""
    if not insecure and reviewer is None:
        from skaha_operator.k8s.api import make_api_client

        reviewer = AccessReviewer(make_api_client())
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server_class = type("MetricsHTTPServer", (_Server,), {"address_family": family})
    server: _Server = server_class((address, port), _Handler)
    if not insecure:
        server.reviewer = reviewer
        server.certificates = _Certificates(cert_dir)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    scheme = "http" if insecure else "https"
    log.info("serving metrics on %s://%s:%d/metrics", scheme, address, server.server_address[1])
    return MetricsServer(server, thread)


__all__ = ["MetricsServer", "self_signed", "serve_metrics"]
