"""The operator's own Kubernetes access: reads, creates, deletes and guarded status writes.

kopf's `patch` is last-writer-wins (docs/kubernetes-notes.md §1), so every phase change goes
through `write_status`: a JSON patch to `/status` that first `test`s the phase the decision was
made from (or the resourceVersion, for the first write and for create-pending markers). A failed
test is a 422 and a stale resourceVersion a 409 (both shown in tests/integration/
test_concurrency_primitives.py); either raises `ConflictError`: re-read and requeue, never
overwrite. Our kinds and Events go over `k8s/http.py` on the event loop; Secrets and ConfigMaps
(rare) over the official client, which is synchronous, in worker threads.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.k8s.http import JSON_PATCH, MERGE_PATCH, USER_AGENT, Http

T = TypeVar("T")


class ConflictError(Exception):
    """Someone else changed the object first (HTTP 409 or a failed JSON-patch test, 422)."""


class NamespaceTerminating(Exception):
    """The namespace is being deleted: the API server refuses every create in it (HTTP 403,
    cause NamespaceTerminating, docs/kubernetes-notes.md). Its objects are about to be deleted."""


class SecretError(Exception):
    """A Secret or key cannot be used; the message names them, never the value."""


#: The label that makes a Secret usable by the operator (docs/threat-model.md §3): credentials
#: are opt-in, so naming a Secret in a spec is not enough to have the operator read it.
CREDENTIALS_LABEL = "skaha.broker.dev/credentials"
CREDENTIALS_VALUE = "true"

# Ask the API server for a Secret's metadata only: its data never reaches the operator.
_METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"}


class CredentialsNotMarked(SecretError):
    """The Secret exists but does not carry the credentials label; its data was not read."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(
            f"Secret {namespace}/{name} is not marked for use by skaha-operator; if it is meant "
            f"for it, label it: kubectl -n {namespace} label secret {name} "
            f"{CREDENTIALS_LABEL}={CREDENTIALS_VALUE}"
        )
        self.namespace = namespace
        self.name = name


def marked(labels: dict[str, str] | None) -> bool:
    """Whether a Secret's labels opt it in for the operator."""
    return (labels or {}).get(CREDENTIALS_LABEL) == CREDENTIALS_VALUE


def status_patch(
    observed: dict[str, Any], new_status: dict[str, Any], *, strict: bool
) -> list[dict[str, Any]]:
    """JSON-patch ops moving `observed.status` to `new_status`, guarded; [] when nothing changes.

    Only changed top-level status fields are written, so a writer with an older view never
    clobbers fields it did not decide about. `strict` guards on resourceVersion (nothing at all
    changed since we looked), otherwise on the phase the decision was made from.
    """
    old = observed.get("status") or {}
    changed = {k: v for k, v in new_status.items() if old.get(k) != v}
    if not changed:
        return []
    rv = observed["metadata"]["resourceVersion"]
    if strict or "phase" not in old or "status" not in observed:
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}]
    else:
        ops = [{"op": "test", "path": "/status/phase", "value": old["phase"]}]
    if "status" not in observed:
        return [*ops, {"op": "add", "path": "/status", "value": new_status}]
    return ops + [
        {"op": "add", "path": f"/status/{_escape(k)}", "value": v} for k, v in changed.items()
    ]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# A page of objects (`list` inside Kube names its method).
Items = list[dict[str, Any]]


def path(plural: str, namespace: str | None, name: str = "", sub: str = "") -> str:
    """The URL path of one of our kinds' collections, objects or subresources."""
    where = f"/namespaces/{namespace}" if namespace else ""
    tail = "".join(f"/{part}" for part in (name, sub) if part)
    return f"/apis/{GROUP}/{VERSION}{where}/{plural}{tail}"


class Kube:
    """Async access to our custom resources and Events (aiohttp, on the loop) and to Secrets
    and ConfigMaps (the official client, in threads)."""

    def __init__(
        self,
        api: client.ApiClient,
        on_conflict: Callable[[str], None] | None = None,
        on_stored: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        # As many connections as the official client pools (make_api_client's `pool`).
        self.http = Http(api.configuration, int(api.configuration.connection_pool_maxsize or 16))
        self._on_conflict = on_conflict or (lambda kind: None)
        # Told of every object a status write stored (the handlers' watch-fed cache).
        self.on_stored = on_stored or (lambda plural, body: None)
        # Told of every request (client method, wall-clock start and end): the runtime's trace.
        self.on_request: Callable[[str, float, float], None] | None = None

    async def _traced(self, name: str, request: Awaitable[T]) -> T:
        # Told to the trace by `name` (the official client's method name for the same call).
        if self.on_request is None:
            return await request
        started = time.time()
        try:
            return await request
        finally:
            self.on_request(name, started, time.time())

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # The official client blocks; keep the event loop free (docs/design.md §7.7).
        return await self._traced(
            fn.__name__, asyncio.to_thread(functools.partial(fn, *args, **kwargs))
        )

    async def _send(self, name: str, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return await self._traced(name, self.http.request(method, url, **kwargs))

    async def aclose(self) -> None:
        """Close the connections of both clients."""
        await self.http.aclose()
        self.api.close()

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        try:
            obj = await self._send(
                "get_namespaced_custom_object", "GET", path(plural, namespace, name)
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    async def list(
        self, plural: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of one kind in a namespace, optionally filtered by labels."""
        query = {"labelSelector": label_selector} if label_selector else None
        result = await self._send(
            "list_namespaced_custom_object", "GET", path(plural, namespace), query=query
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def list_all(
        self, plural: str, namespace: str | None, page: int = 500
    ) -> tuple[Items, str]:
        """Every object of one kind in a namespace (None: all namespaces), in pages of one
        snapshot, and the snapshot's resourceVersion (where a watch goes on from)."""
        items: Items = []
        token: str | None = None
        version = ""
        name = "list_namespaced_custom_object" if namespace else "list_cluster_custom_object"
        while True:
            query: dict[str, Any] = {"limit": page}
            if token:
                query["continue"] = token
            result = await self._send(name, "GET", path(plural, namespace), query=query)
            items.extend(result.get("items", []))
            meta = result.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            token = meta.get("continue")
            if not token:
                return items, version

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        """Post one core/v1 Event (k8s/events.py)."""
        url = f"/api/v1/namespaces/{namespace}/events"
        await self._send("create_namespaced_event", "POST", url, body=event)

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> bool:
        """Create an object; False when one of that name exists already (idempotent).

        The created object is handed to `on_stored` like a status write's: whoever reads it next
        (its Session) finds it without a GET, before its watch event arrives.
        """
        try:
            made = await self._send(
                "create_namespaced_custom_object", "POST", path(plural, namespace), body=body
            )
        except client.ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status == 403 and "NamespaceTerminating" in str(exc.body or ""):
                raise NamespaceTerminating(namespace) from exc
            raise
        self.on_stored(plural, made)
        return True

    async def delete(self, plural: str, namespace: str, name: str) -> bool:
        """Ask for deletion (finalizers still run); False when it is already gone."""
        try:
            await self._send(
                "delete_namespaced_custom_object", "DELETE", path(plural, namespace, name),
                query={"propagationPolicy": "Background"},
            )  # fmt: skip
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch_spec(
        self, plural: str, namespace: str, name: str, spec: dict[str, Any]
    ) -> str | None:
        """Merge `spec` into an object's spec; the API server's refusal message, if refused."""
        try:
            await self._send(
                "patch_namespaced_custom_object", "PATCH", path(plural, namespace, name),
                body={"spec": spec}, content_type=MERGE_PATCH,
            )  # fmt: skip
        except client.ApiException as exc:
            if exc.status in (404, 422):
                return f"HTTP {exc.status}: {exc.reason}"
            raise
        return None

    async def write_status(
        self,
        plural: str,
        observed: dict[str, Any],
        new_status: dict[str, Any],
        *,
        strict: bool = False,
    ) -> dict[str, Any] | None:
        """Guarded status write; returns the stored object, or None when nothing changed."""
        ops = status_patch(observed, new_status, strict=strict)
        if not ops:
            return None
        meta = observed["metadata"]
        try:
            stored = await self._send(
                "patch_namespaced_custom_object_status", "PATCH",
                path(plural, meta["namespace"], meta["name"], "status"),
                body=ops, content_type=JSON_PATCH,
            )  # fmt: skip
        except client.ApiException as exc:
            if exc.status in (409, 422) and _is_conflict(exc):
                self._on_conflict(str(observed.get("kind", plural)))
                raise ConflictError(f"{plural}/{meta['name']} changed while we decided") from None
            raise
        self.on_stored(plural, stored)
        return stored

    async def add_finalizer(
        self, plural: str, observed: dict[str, Any], finalizer: str
    ) -> dict[str, Any]:
        """Put our finalizer on an object before anything is launched for it; the stored body.

        A JSON patch guarded like a status write: the finalizer list must still be the one we
        saw (or, when there was none, nothing at all changed), so another writer's finalizer is
        never dropped. A stale view raises `ConflictError`.
        """
        meta = observed["metadata"]
        current = meta.get("finalizers")
        if current is not None and finalizer in current:
            return observed
        if current is None:
            rv = meta["resourceVersion"]
            ops = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
            ]
        else:
            ops = [
                {"op": "test", "path": "/metadata/finalizers", "value": list(current)},
                {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
            ]
        stored = await self._patch_meta(plural, observed, ops)
        if stored is None:
            raise ConflictError(f"{plural}/{meta['name']} is gone")
        return stored

    async def remove_finalizer(self, plural: str, observed: dict[str, Any], finalizer: str) -> None:
        """Let a released object go: remove our finalizer (guarded by its place in the list)."""
        meta = observed["metadata"]
        current = list(meta.get("finalizers") or [])
        if finalizer not in current:
            return
        at = current.index(finalizer)
        ops = [
            {"op": "test", "path": f"/metadata/finalizers/{at}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{at}"},
        ]
        await self._patch_meta(plural, observed, ops)

    async def _patch_meta(
        self, plural: str, observed: dict[str, Any], ops: Sequence[dict[str, Any]]
    ) -> dict[str, Any] | None:
        meta = observed["metadata"]
        try:
            stored = await self._send(
                "patch_namespaced_custom_object", "PATCH",
                path(plural, meta["namespace"], meta["name"]),
                body=ops, content_type=JSON_PATCH,
            )  # fmt: skip
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status in (409, 422) and _is_conflict(exc):
                self._on_conflict(str(observed.get("kind", plural)))
                raise ConflictError(f"{plural}/{meta['name']} changed while we decided") from None
            raise
        self.on_stored(plural, stored)
        return stored

    async def secret_metadata(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret's metadata (labels, finalizers, resourceVersion) without its data; None if
        it does not exist. The API server answers a PartialObjectMetadata, so the value of a
        Secret the operator may not use never enters this process."""
        try:
            response = await self._call(
                self.core.read_namespaced_secret,
                name,
                namespace,
                _headers=_METADATA_ONLY,
                _preload_content=False,
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise SecretError(f"Secret {namespace}/{name} unreadable: HTTP {exc.status}") from None
        meta: dict[str, Any] = json.loads(response.data).get("metadata") or {}
        return meta

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        """One key of a marked Secret in `namespace` (docs/design.md §4.7)."""
        return (await self.read_secret_keys(namespace, name, (key,)))[key]

    async def read_secret_keys(
        self, namespace: str, name: str, keys: tuple[str, ...]
    ) -> dict[str, str]:
        """Keys of a Secret in `namespace` (the object's own namespace, docs/design.md §4.7).

        The labels are read first, alone: a Secret without `CREDENTIALS_LABEL` raises
        `CredentialsNotMarked` and its data is never fetched. The data read checks the label
        again, so one unlabelled in between is not decoded either.
        """
        meta = await self.secret_metadata(namespace, name)
        if meta is None:
            raise SecretError(f"Secret {namespace}/{name} not found")
        if not marked(meta.get("labels")):
            raise CredentialsNotMarked(namespace, name)
        try:
            secret = await self._call(self.core.read_namespaced_secret, name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                raise SecretError(f"Secret {namespace}/{name} not found") from None
            raise SecretError(f"Secret {namespace}/{name} unreadable: HTTP {exc.status}") from None
        if not marked(secret.metadata.labels):
            raise CredentialsNotMarked(namespace, name)
        data = secret.data or {}
        missing = [k for k in keys if k not in data]
        if missing:
            raise SecretError(f"Secret {namespace}/{name} has no key {missing[0]!r}")
        return {k: base64.b64decode(data[k]).decode() for k in keys}

    async def hold_secret(self, namespace: str, name: str, finalizer: str, hold: bool) -> None:
        """Add (`hold`) or remove our finalizer on a Secret, so it outlives what needs it.

        Metadata only, both ways (the data is neither read nor returned). Only a marked Secret
        is held; our finalizer is removed from any Secret, marked or not. A read then a write
        carrying the resourceVersion: a concurrent change is a conflict. A missing Secret is
        nothing to hold.
        """
        meta = await self.secret_metadata(namespace, name)
        if meta is None:
            return
        finalizers = list(meta.get("finalizers") or [])
        if (finalizer in finalizers) == hold or (hold and not marked(meta.get("labels"))):
            return
        finalizers = [*finalizers, finalizer] if hold else [f for f in finalizers if f != finalizer]
        patch = {
            "metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}
        }
        try:
            # A JSON merge patch replaces the list; a strategic merge patch (the client's default
            # for a dict) merges `metadata.finalizers` (patchStrategy=merge), so it could add
            # ours but never take it off: the Secret stayed Terminating after its platform went.
            await self._call(
                self.core.patch_namespaced_secret,
                name,
                namespace,
                patch,
                _content_type="application/merge-patch+json",
                _headers=_METADATA_ONLY,
                _preload_content=False,
            )
        except client.ApiException as exc:
            if exc.status in (404, 409):
                raise ConflictError(f"Secret {namespace}/{name} changed while we held it") from None
            raise

    async def replace_secret_key(
        self, namespace: str, name: str, key: str, value: str, ours: Callable[[str], bool]
    ) -> bool:
        """Write one key of a Secret, only while it still holds a value `ours` recognises.

        A read, then a patch of that key carrying the resourceVersion: a human's newer value is
        never overwritten. False when the Secret is gone, holds a value not ours, or changed in
        between; the message of any other failure names the Secret, never a value.
        """
        try:
            secret = await self._call(self.core.read_namespaced_secret, name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise SecretError(f"Secret {namespace}/{name} unreadable: HTTP {exc.status}") from None
        current = (secret.data or {}).get(key)
        if current is None or not ours(base64.b64decode(current).decode()):
            return False
        patch = {
            "metadata": {"resourceVersion": secret.metadata.resource_version},
            "data": {key: base64.b64encode(value.encode()).decode("ascii")},
        }
        try:
            await self._call(
                self.core.patch_namespaced_secret,
                name,
                namespace,
                patch,
                _content_type="application/merge-patch+json",
            )
        except client.ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise SecretError(f"Secret {namespace}/{name} not written: HTTP {exc.status}") from None
        return True

    async def read_config_map(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a ConfigMap in `namespace`; None when the ConfigMap or the key is missing."""
        try:
            cm = await self._call(self.core.read_namespaced_config_map, name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        value = (cm.data or {}).get(key)
        return value if isinstance(value, str) else None


def _is_conflict(exc: client.ApiException) -> bool:
    # 409 is always a conflict. A 422 is also how the API server rejects an invalid status (CEL,
    # schema), with `details.causes` naming the field; a failed JSON-patch `test` comes back as a
    # bare "the server rejected our request due to an error in our request" with no causes
    # (observed on kube-apiserver v1.36.3).
    if exc.status == 409:
        return True
    try:
        doc = json.loads(exc.body or "{}")
    except ValueError:
        return False
    return not (doc.get("details") or {}).get("causes") and "rejected our request" in str(
        doc.get("message", "")
    )


def make_api_client(pool: int = 16) -> client.ApiClient:
    """A client for the cluster we run in, or the one KUBECONFIG names.

    `pool`: connections kept open, one per worker thread that uses the client; with fewer, every
    request beyond the pool opens (and TLS-handshakes) a connection it then throws away.
    """
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = pool
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api
