"""The operator is not a confused deputy (docs/threat-model.md), with the real operator and API
server: a Secret is used only when it is marked for the operator, a platform only when its hosts
are allowed, and what a platform answers reaches status only bounded and scrubbed.

The platform here is a small HTTP server of the test's own on 127.0.0.1 that records every
request (method, path, headers, body) and answers with what the test chooses. The operator
(the module's `operator` fixture) runs with `--allowed-hosts=127.0.0.1`, as the harness starts
it; `localhost` names the same server but is not listed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import FINALIZER, GROUP, VERSION
from skaha_operator.platform.errors import MAX_SERVER_TEXT
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import MARKED, create, get, platform_objects, wait_for

pytestmark = pytest.mark.integration

CREDENTIALS_LABEL = "skaha.broker.dev/credentials"
# Room for our own words around a platform's (bounded) text in a status message.
CONTEXT = 200


@dataclass(frozen=True)
class Seen:
    """One request the recorder received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def carries(self, value: str) -> bool:
        """Whether `value` appears anywhere in the request."""
        text = " ".join([self.path, *self.headers.values()])
        return value in text or value.encode() in self.body


Reply = tuple[int, str]


class Recorder:
    """Requests received so far, and the reply every request gets."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.port = 0

    def requests(self, prefix: str = "") -> list[Seen]:
        """Requests whose path starts with `prefix`."""
        with self.lock:
            return [s for s in self.seen if s.path.startswith(prefix)]


@contextmanager
def recorder(reply: Reply = (503, "the test server answers nothing useful")) -> Iterator[Recorder]:
    """A recording HTTP server on 127.0.0.1, stopped (and its thread joined) on exit."""
    rec = Recorder(reply)

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with rec.lock:
                rec.seen.append(Seen(self.command, self.path, dict(self.headers), body))
            code, text = rec.reply
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._any()

        def do_POST(self) -> None:
            self._any()

        def do_PUT(self) -> None:
            self._any()

        def do_DELETE(self) -> None:
            self._any()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def secret(name: str, data: dict[str, str], *, marked: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if marked:
        meta["labels"] = dict(MARKED)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": data}


def platform(name: str, base: str, token_secret: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SkahaPlatform",
        "metadata": {"name": name},
        "spec": {
            "skaha": {"url": f"{base}/skaha"},
            "cavern": {"url": f"{base}/arc", "user": "alice"},
            "tokenSecretRef": {"name": token_secret, "key": "token"},
        },
    }


def status_of(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return ((get(api, ns, "SkahaPlatform", name) or {}).get("status")) or {}


def reason_is(api: client.ApiClient, ns: str, name: str, reason: str) -> Callable[[], Any]:
    def probe() -> dict[str, Any] | None:
        status = status_of(api, ns, name)
        return status if status.get("reason") == reason else None

    return probe


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [c for c in status.get("conditions") or [] if c["type"] == kind]
    return found


def events_of(api: client.ApiClient, ns: str, name: str) -> list[str]:
    """The messages of the Events about one object."""
    events = client.CoreV1Api(api).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}"
    )
    return [e.message or "" for e in events.items]


def messages(api: client.ApiClient, ns: str, name: str) -> list[str]:
    """Every message the operator wrote about a platform: status, its conditions, Events."""
    status = status_of(api, ns, name)
    texts = [str(status.get("message") or "")]
    texts += [str(c.get("message") or "") for c in status.get("conditions") or []]
    return texts + events_of(api, ns, name)


def token() -> str:
    return f"tok-tenant-{uuid.uuid4().hex}"


def test_an_unmarked_secret_is_never_sent_and_the_platform_says_how_to_mark_it(
    api_client: client.ApiClient, namespace: str, operator: Path
) -> None:
    ns, value = namespace, token()
    with recorder() as rec:
        create(api_client, ns, secret("skaha-token", {"token": value}, marked=False))
        create(api_client, ns, platform("tenant", f"http://127.0.0.1:{rec.port}", "skaha-token"))

        status = wait_for(
            "the platform refusing the unmarked Secret",
            reason_is(api_client, ns, "tenant", "CredentialsNotMarked"),
            60,
        )
        assert status["phase"] == "Preparing"
        assert condition(status, "Stalled")["status"] == "True"
        assert condition(status, "Ready")["status"] == "False"
        how = f"kubectl -n {ns} label secret skaha-token {CREDENTIALS_LABEL}=true"
        assert how in status["message"]
        assert rec.requests() == []
        # Not held either: the operator leaves a Secret that is not its own alone.
        held = client.CoreV1Api(api_client).read_namespaced_secret("skaha-token", ns)
        assert FINALIZER not in (held.metadata.finalizers or [])

        # The label is the only thing that stood in the way: once set, the token is used.
        client.CoreV1Api(api_client).patch_namespaced_secret(
            "skaha-token", ns, {"metadata": {"labels": MARKED}}
        )
        wait_for(
            "a request carrying the now-marked token",
            lambda: [s for s in rec.requests() if s.carries(value)],
            60,
        )
        wait_for(
            "the platform reporting the test server's 503",
            reason_is(api_client, ns, "tenant", "PlatformUnreachable"),
            60,
        )


def test_a_platform_outside_the_allowed_hosts_gets_no_request(
    api_client: client.ApiClient, namespace: str, operator: Path
) -> None:
    ns, inside, outside = namespace, token(), token()
    with recorder() as rec:
        create(api_client, ns, secret("inside", {"token": inside}, marked=True))
        create(api_client, ns, secret("outside", {"token": outside}, marked=True))
        # The same server twice: by its listed address, and by a name the list does not hold.
        create(api_client, ns, platform("inside", f"http://127.0.0.1:{rec.port}/a", "inside"))
        create(api_client, ns, platform("outside", f"http://localhost:{rec.port}/b", "outside"))

        status = wait_for(
            "the platform outside the allowed hosts refused",
            reason_is(api_client, ns, "outside", "HostNotAllowed"),
            60,
        )
        assert "--allowed-hosts" in status["message"]
        assert "allowedHosts" in status["message"]
        assert "'localhost'" in status["message"]
        assert "spec.skaha.url" in status["message"]
        assert condition(status, "Stalled")["status"] == "True"
        # The other platform on the same server is probed, and probed again (its 503 is
        # retried and re-probed), while the refused one never sends anything.
        wait_for(
            "the allowed platform probed more than once",
            lambda: len(rec.requests("/a/")) >= 3 and status_of(api_client, ns, "inside"),
            60,
        )
        wait_for(
            "the refused platform re-decided",
            lambda: (
                status_of(api_client, ns, "outside").get("lastProbeTime")
                != status.get("lastProbeTime")
            ),
            60,
        )
        assert rec.requests("/b") == []
        assert not [s for s in rec.requests() if s.carries(outside)]
        assert not [s for s in rec.requests() if "localhost" in s.headers.get("Host", "")]
        core = client.CoreV1Api(api_client)
        assert FINALIZER in (core.read_namespaced_secret("inside", ns).metadata.finalizers or [])
        # Deleting the platform lets its Secret go (the finalizer is removed, metadata only).
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            GROUP, VERSION, ns, "skahaplatforms", "inside"
        )
        wait_for(
            "the Secret released",
            lambda: (
                FINALIZER
                not in (core.read_namespaced_secret("inside", ns).metadata.finalizers or [])
            ),
            60,
        )


def test_long_error_replies_stay_bounded_and_scrubbed(
    api_client: client.ApiClient, namespace: str, operator: Path
) -> None:
    ns, value = namespace, token()
    long_text = "denied: " + "A" * 20_000 + f" (you sent Bearer {value}) " + "B" * 20_000
    with recorder(reply=(401, long_text)) as rec:
        create(api_client, ns, secret("skaha-token", {"token": value}, marked=True))
        create(api_client, ns, platform("loud", f"http://127.0.0.1:{rec.port}", "skaha-token"))
        status = wait_for(
            "the platform reporting the 401",
            reason_is(api_client, ns, "loud", "Unauthorized"),
            60,
        )
        assert rec.requests()  # the reply really was sent, and long
        assert "denied: AAAA" in status["message"]
        assert "more characters]" in status["message"]
        wait_for("an Event about the platform", lambda: events_of(api_client, ns, "loud"))
        # The status message, Ready and Stalled (Reconciling is absent while False), the Events.
        assert len(messages(api_client, ns, "loud")) >= 4
        for text in messages(api_client, ns, "loud"):
            assert len(text) <= MAX_SERVER_TEXT + CONTEXT, text[:300]
            assert value not in text


def test_an_unmarked_registry_secret_holds_the_launch(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    ns, password = namespace, token()
    for obj in platform_objects(ns, sim.base_url):  # type: ignore[attr-defined]
        create(api_client, ns, obj)
    create(api_client, ns, secret("reg", {"username": "alice", "password": password}, marked=False))
    create(api_client, ns, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DockerContainer",
        "metadata": {"name": "img"},
        "spec": {"image": "images.canfar.net/private/tool:2", "platformRef": "local",
                 "registrySecretRef": {"name": "reg"}},
    })  # fmt: skip
    create(api_client, ns, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Compute", "metadata": {"name": "c"},
        "spec": {"platformRef": "local", "type": "notebook",
                 "executableRef": {"kind": "DockerContainer", "name": "img"}},
    })  # fmt: skip

    def compute() -> dict[str, Any]:
        return ((get(api_client, ns, "Compute", "c") or {}).get("status")) or {}

    status = wait_for(
        "the Compute waiting for the registry Secret's label",
        lambda: (s := compute()).get("reason") == "CredentialsNotMarked" and s,
        60,
    )
    assert f"kubectl -n {ns} label secret reg {CREDENTIALS_LABEL}=true" in status["message"]
    assert password not in str(status)
    uid = (get(api_client, ns, "Compute", "c") or {})["metadata"]["uid"].replace("-", "")
    assert not [r for r in sim.launches() if uid in str(r.get("name"))]

    client.CoreV1Api(api_client).patch_namespaced_secret(
        "reg", ns, {"metadata": {"labels": MARKED}}
    )
    wait_for("the Compute launched once marked", lambda: compute().get("phase") == "Available", 90)
    # The simulator refuses an unlisted image without registry credentials: they were sent.
    assert len([r for r in sim.launches() if uid in str(r.get("name"))]) == 1
