"""The metrics server's own behaviour, with a stand-in for the API server's reviews: a mounted
certificate is served (and a renewed one picked up), verdicts become HTTP statuses, and
`--metrics-insecure` serves plain HTTP without asking anyone."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skaha_operator.k8s.reviews import Verdict
from skaha_operator.metrics_server import MetricsServer, self_signed, serve_metrics


class Reviewer:
    """Allows one token, refuses another, and counts what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def check(self, token: str | None) -> Verdict:
        self.asked.append(token)
        if token == "good":
            return Verdict(200, "allowed")
        if token == "known":
            return Verdict(403, "known may not get /metrics")
        return Verdict(401, "token not authenticated")


@contextmanager
def serving(
    *, reviewer: Reviewer, insecure: bool = False, cert_dir: Path | None = None
) -> Iterator[MetricsServer]:
    server = serve_metrics(0, "127.0.0.1", insecure=insecure, cert_dir=cert_dir, reviewer=reviewer)
    try:
        yield server
    finally:
        server.stop()


def get(url: str, token: str | None, context: ssl.SSLContext | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=10, context=context
        ) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def verifying(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def test_a_mounted_certificate_is_served_and_verdicts_become_statuses(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    reviewer = Reviewer()
    with serving(cert_dir=tmp_path, reviewer=reviewer) as server:
        url = f"https://127.0.0.1:{server.port}/metrics"
        ctx = verifying(cert)  # verified against the mounted certificate, name 127.0.0.1
        assert get(url, None, ctx)[0] == 401
        assert get(url, "bad", ctx)[0] == 401
        assert get(url, "known", ctx) == (403, "known may not get /metrics\n")
        code, body = get(url, "good", ctx)
        assert code == 200
        assert "python_info" in body
        assert get(f"https://127.0.0.1:{server.port}/other", "good", ctx)[0] == 404
        assert reviewer.asked == [None, "bad", "known", "good"]

        # A renewed certificate (cert-manager rotating the Secret) is served from then on.
        renewed = tmp_path / "renewed"
        renewed.mkdir()
        new_cert, new_key = self_signed(renewed)
        (tmp_path / "tls.key").write_bytes(new_key.read_bytes())
        (tmp_path / "tls.crt").write_bytes(new_cert.read_bytes())
        assert get(url, "good", verifying(new_cert))[0] == 200


def test_insecure_serves_plain_http_without_asking() -> None:
    reviewer = Reviewer()
    with serving(insecure=True, reviewer=reviewer) as server:
        code, body = get(f"http://127.0.0.1:{server.port}/metrics", None, None)
        assert code == 200
        assert "python_info" in body
    assert reviewer.asked == []
