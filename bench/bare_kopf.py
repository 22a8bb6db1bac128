"""The framework baseline: a bare kopf operator making the same transitions with no logic.

It creates a Session's DockerContainer and Compute, marks the DockerContainer Available, launches
and polls the Skaha session, and marks Compute and Session Running, each transition with one
Event, through kopf's own idioms (the `patch` kwarg, kopf.info, finalizers for release handlers,
annotation progress and diffbase storage). What it costs is what kopf itself costs.

    python -m bench.bare_kopf --namespace bench-bare --skaha-url http://127.0.0.1:8765/skaha \
        --calls-file /tmp/calls.json
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config
from pydantic import SecretStr

from skaha_operator import GROUP, VERSION
from skaha_operator.platform.clients import PlatformClients, PlatformSettings
from skaha_operator.platform.wire import SessionParams, SessionType

API = f"{GROUP}/{VERSION}"
CALLS: dict[str, int] = {}


def _count(call: Any) -> None:
    key = f"{call.method} {call.route}"
    CALLS[key] = CALLS.get(key, 0) + 1


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's annotation storages, the official client and one Skaha client."""
    settings.persistence.finalizer = "bare.bench/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="bare.bench")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="bare.bench")
    settings.posting.reporting_component = "bare-kopf"
    config.load_kube_config()  # type: ignore[no-untyped-call]  # kubernetes leaves it unannotated
    memo.custom = client.CustomObjectsApi(client.ApiClient())
    memo.skaha = PlatformClients.create(
        PlatformSettings(skaha_url=memo.skaha_url, cavern_url=memo.skaha_url,
                         token=SecretStr(memo.token)),
        on_call=_count,
    )  # fmt: skip


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Write the platform call counts for the benchmark."""
    await memo.skaha.aclose()
    await asyncio.to_thread(Path(memo.calls_file).write_text, json.dumps(CALLS))


@kopf.on.create(GROUP, VERSION, "sessions")
async def session_created(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Create the two parts; the Session is Preparing."""
    ns, name = body.metadata.namespace, body.metadata.name
    spec = body.spec
    exe = dict(spec["executable"]["template"]["dockerContainer"])
    parts = [
        ("dockercontainers", {"apiVersion": API, "kind": "DockerContainer",
                              "metadata": {"name": f"{name}-executable"},
                              "spec": {"platformRef": spec["platformRef"], **exe}}),
        ("computes", {"apiVersion": API, "kind": "Compute",
                      "metadata": {"name": f"{name}-compute", "labels": {"bare/session": name}},
                      "spec": {"platformRef": spec["platformRef"],
                               "executableRef": {"kind": "DockerContainer",
                                                 "name": f"{name}-executable"},
                               **dict(spec["compute"]["template"])}}),
    ]  # fmt: skip
    for plural, part in parts:
        await _run(memo.custom.create_namespaced_custom_object, GROUP, VERSION, ns, plural, part)
    patch.status["phase"] = "Preparing"
    patch.status["reason"] = "CreatingParts"
    kopf.info(body, reason="CreatingParts", message="Initializing->Preparing")


@kopf.on.create(GROUP, VERSION, "dockercontainers")
async def dc_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Available at once."""
    patch.status["phase"] = "Available"
    kopf.info(body, reason="ImageAvailable", message="Initializing->Available")


@kopf.on.create(GROUP, VERSION, "computes")
async def compute_created(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Launch, poll until Running, mark the Compute and its Session Running."""
    ns, name = body.metadata.namespace, body.metadata.name
    assert ns is not None  # Computes are namespaced
    kopf.info(body, reason="Launching", message="Initializing->Preparing")
    tmpl = body.spec
    params = SessionParams(
        name="bare-" + body.metadata.uid.replace("-", "")[:32], image="images.canfar.net/skaha/"
        "astroml:latest", type=SessionType.HEADLESS, cmd=tmpl.get("command"),
        env=dict(tmpl.get("env") or {}),
    )  # fmt: skip
    sid = await memo.skaha.skaha.create_session(params)
    # Polling Skaha until Running is part of the work measured.
    while (await memo.skaha.skaha.get_session(sid)).status != "Running":  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    patch.status.update(phase="Running", launch={"id": sid})
    kopf.info(body, reason="SessionRunning", message="Preparing->Running")
    session = body.metadata.labels["bare/session"]
    await _run(
        memo.custom.patch_namespaced_custom_object_status, GROUP, VERSION, ns, "sessions",
        session, {"status": {"phase": "Running", "reason": "SessionRunning"}},
    )  # fmt: skip
    owner: kopf.RawBody = {
        "apiVersion": API,
        "kind": "Session",
        "metadata": {"name": session, "namespace": ns, "uid": ""},
    }
    kopf.info(kopf.Body(owner), reason="SessionRunning", message=f"Preparing->Running ({name})")


@kopf.on.delete(GROUP, VERSION, "sessions")
@kopf.on.delete(GROUP, VERSION, "dockercontainers")
@kopf.on.delete(GROUP, VERSION, "computes")
async def released(**_: Any) -> None:
    """A release handler (so kopf keeps a finalizer, as a real operator must)."""


def main() -> None:
    """Run until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--skaha-url", required=True)
    parser.add_argument("--token", default="tok-alice")
    parser.add_argument("--calls-file", required=True)
    args = parser.parse_args()
    kopf.configure(verbose=False)
    memo = kopf.Memo(skaha_url=args.skaha_url, token=args.token, calls_file=args.calls_file)
    asyncio.run(kopf.operator(namespaces=[args.namespace], memo=memo, standalone=True))


if __name__ == "__main__":
    main()
