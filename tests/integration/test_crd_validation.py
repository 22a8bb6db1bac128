"""The generated CRDs on a real kube-apiserver: bad input is refused at the door, examples pass.

Each row of the table is one invalid manifest (or an invalid update of a valid object, or an
invalid status write) and the words the API server's message must contain: the field path and
the problem.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.base import API_VERSION
from skaha_operator.domain.kinds import KINDS_BY_NAME, parse_object

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
Obj = dict[str, Any]


def obj(kind: str, name: str, spec: Obj) -> Obj:
    """A skaha object body."""
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def platform() -> Obj:
    return obj(
        "SkahaPlatform",
        "p",
        {
            "skaha": {"url": "http://127.0.0.1:8765/skaha"},
            "cavern": {"url": "http://127.0.0.1:8765/arc", "user": "alice"},
            "tokenSecretRef": {"name": "skaha-token"},
        },
    )


def container() -> Obj:
    return obj(
        "DockerContainer",
        "dc",
        {"platformRef": "local", "image": "images.canfar.net/skaha/astroml:latest"},
    )


def notebook() -> Obj:
    return obj(
        "JupyterNotebook",
        "nb",
        {
            "platformRef": "local",
            "image": "images.canfar.net/skaha/astroml:latest",
            "notebook": {"url": "https://example.org/a.ipynb"},
            "storageRef": "st",
        },
    )


def storage() -> Obj:
    return obj("Storage", "st", {"platformRef": "local", "area": "home", "path": "work"})


def data() -> Obj:
    return obj(
        "Data",
        "d",
        {
            "platformRef": "local",
            "storageRef": "st",
            "http": {"url": "https://example.org/file.fits"},
        },
    )


def compute() -> Obj:
    return obj(
        "Compute",
        "c",
        {
            "platformRef": "local",
            "type": "notebook",
            "cores": 2,
            "executableRef": {"kind": "DockerContainer", "name": "dc"},
            "schedule": {"duration": "2h", "prepareDeadline": "10m"},
        },
    )


def session() -> Obj:
    return obj(
        "Session",
        "s",
        {
            "platformRef": "local",
            "executable": {"ref": {"kind": "DockerContainer", "name": "dc"}},
            "compute": {"template": {"type": "notebook"}},
            "storages": [{"name": "work", "template": {"area": "home", "path": "w"}}],
            "data": [
                {
                    "name": "in",
                    "template": {"storageRef": "work", "http": {"url": "https://e.org/f"}},
                }
            ],
        },
    )


MISSING = object()


def edit(body: Obj, **changes: Any) -> Obj:
    """A copy of body with dotted paths ("spec.cores", "spec.storages.1.name") set or removed."""
    out = copy.deepcopy(body)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node: Any = out
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is MISSING:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return out


@dataclass(frozen=True)
class Case:
    """One invalid input and what the rejection must say."""

    id: str
    body: Obj
    expect: tuple[str, ...]
    # "create": the body is created; "update": base is created, then replaced by body;
    # "status": base is created, its status set to `first`, then to body["status"].
    action: str = "create"
    base: Obj | None = None
    first_status: Obj = field(default_factory=dict)


def ready(status: str = "True") -> Obj:
    return {
        "type": "Ready",
        "status": status,
        "reason": "Checked",
        "lastTransitionTime": "2026-11-29T10:00:00Z",
    }


CASES = [
    # Compute
    Case(
        "negative-cores",
        edit(compute(), spec__cores=-1),
        ("spec.cores", "greater than or equal to 1"),
    ),
    Case(
        "unknown-session-type",
        edit(compute(), spec__type="jupyter"),
        ("spec.type", 'Unsupported value: "jupyter"'),
    ),
    Case(
        "command-on-notebook",
        edit(compute(), spec__command="echo"),
        ("spec.command", "allowed only when type is headless"),
    ),
    Case(
        "env-on-desktop",
        edit(compute(), spec__type="desktop", spec__env={"A": "1"}),
        ("spec.env", "allowed only when type is headless"),
    ),
    Case("zero-gpus", edit(compute(), spec__gpus=0), ("spec.gpus", "greater than or equal to 1")),
    Case(
        "too-much-ram",
        edit(compute(), spec__ramGiB=5000),
        ("spec.ramGiB", "less than or equal to 4096"),
    ),
    Case(
        "missing-executable",
        edit(compute(), spec__executableRef=MISSING),
        ("spec.executableRef", "Required value"),
    ),
    Case(
        "executable-of-wrong-kind",
        edit(compute(), spec__executableRef__kind="Storage"),
        ("spec.executableRef.kind", 'Unsupported value: "Storage"'),
    ),
    Case(
        "bad-env-name",
        edit(compute(), spec__type="headless", spec__env={"1BAD": "x"}),
        ("spec.env", "valid environment variable names"),
    ),
    Case(
        "duplicate-storage-refs",
        edit(compute(), spec__storageRefs=["a", "a"]),
        ("spec.storageRefs[1]", "Duplicate value"),
    ),
    Case(
        "bad-duration",
        edit(compute(), spec__schedule__duration="2 hours"),
        ("spec.schedule.duration", "should match"),
    ),
    Case(
        "zero-duration",
        edit(compute(), spec__schedule__duration="0s"),
        ("spec.schedule.duration", "must be a positive duration"),
    ),
    Case(
        "deadline-after-end",
        edit(compute(), spec__schedule__prepareDeadline="3h"),
        ("spec.schedule.prepareDeadline", "must not be later than the end"),
    ),
    Case(
        "deadline-not-after-start",
        edit(compute(), spec__schedule__prepareDeadline="0s"),
        ("spec.schedule.prepareDeadline", "must be a positive duration"),
    ),
    Case(
        "poll-interval-too-short",
        edit(compute(), spec__schedule__pollInterval="100ms"),
        ("spec.schedule.pollInterval", "must be at least 1s"),
    ),
    Case(
        "start-not-a-time",
        edit(compute(), spec__schedule__start="tomorrow"),
        ("spec.schedule.start", "date-time"),
    ),
    Case(
        "platform-ref-not-a-name",
        edit(compute(), spec__platformRef="Local_P"),
        ("spec.platformRef", "should match"),
    ),
    # Data
    Case(
        "two-data-sources",
        edit(data(), spec__rucio={"did": "s:n", "rseExpression": "X"}),
        ("spec", "exactly one source of http, rucio or srcnetStaging"),
    ),
    Case(
        "no-data-source",
        edit(data(), spec__http=MISSING),
        ("spec", "exactly one source of http, rucio or srcnetStaging"),
    ),
    Case(
        "plain-http-url",
        edit(data(), spec__http__url="http://example.org/f"),
        ("spec.http.url", "must use https:// unless allowInsecure"),
    ),
    Case(
        "malformed-did",
        edit(data(), spec__http=MISSING, spec__rucio={"did": "no-scope", "rseExpression": "X"}),
        ("spec.rucio.did", "should match"),
    ),
    Case(
        "bad-checksum",
        edit(data(), spec__http__checksum="sha1:abc"),
        ("spec.http.checksum", "should match"),
    ),
    Case(
        "dot-dot-path",
        edit(data(), spec__path="a/../../etc"),
        ("spec.path", "must not contain . or .. segments"),
    ),
    Case("absolute-path", edit(data(), spec__path="/etc/passwd"), ("spec.path", "should match")),
    Case(
        "unknown-release-policy",
        edit(data(), spec__releasePolicy="Keep"),
        ("spec.releasePolicy", 'Unsupported value: "Keep"'),
    ),
    Case(
        "staging-without-dids",
        edit(
            data(),
            spec__http=MISSING,
            spec__srcnetStaging={
                "storageAreaId": "0b7e1c4e-1a2b-4c3d-8e9f-0123456789ab",
                "dids": [],
            },
        ),
        ("spec.srcnetStaging.dids", "at least 1 items"),
    ),
    # Storage
    Case(
        "project-area-without-project",
        edit(storage(), spec__area="project"),
        ("spec.project", "project is required when area is project"),
    ),
    Case(
        "home-area-with-project",
        edit(storage(), spec__project="survey"),
        ("spec.project", "not allowed when area is home"),
    ),
    Case(
        "size-not-a-quantity", edit(storage(), spec__size="ten gigs"), ("spec.size", "should match")
    ),
    # Session
    Case(
        "template-and-ref",
        edit(
            session(),
            spec__executable__template={
                "dockerContainer": {"image": "images.canfar.net/skaha/x:1"}
            },
        ),
        ("spec.executable", "exactly one of template and ref"),
    ),
    Case(
        "two-executable-templates",
        edit(
            session(),
            spec__executable={
                "template": {
                    "dockerContainer": {"image": "images.canfar.net/a/b:1"},
                    "jupyterNotebook": {
                        "image": "images.canfar.net/a/b:1",
                        "notebook": {"url": "https://e.org/n.ipynb"},
                        "storageRef": "work",
                    },
                }
            },
        ),
        ("spec.executable.template", "exactly one of dockerContainer and jupyterNotebook"),
    ),
    Case(
        "data-on-unknown-storage",
        edit(session(), spec__data__0__template__storageRef="elsewhere"),
        ("spec.data", "must name an entry of storages"),
    ),
    Case(
        "duplicate-part-names",
        edit(
            session(),
            spec__storages=[{"name": "w", "ref": "a"}, {"name": "w", "ref": "b"}],
            spec__data=MISSING,
        ),
        ("spec.storages[1]", "Duplicate value"),
    ),
    Case(
        "compute-missing",
        edit(session(), spec__compute=MISSING),
        ("spec.compute", "Required value"),
    ),
    # DockerContainer, JupyterNotebook, SkahaPlatform
    Case(
        "image-without-registry",
        edit(container(), spec__image="Astroml"),
        ("spec.image", "should match"),
    ),
    Case(
        "bad-digest", edit(container(), spec__digest="sha256:xyz"), ("spec.digest", "should match")
    ),
    Case(
        "unknown-listed-type",
        edit(container(), spec__sessionTypes=["vnc"]),
        ("spec.sessionTypes[0]", 'Unsupported value: "vnc"'),
    ),
    Case(
        "notebook-url-not-https",
        edit(notebook(), spec__notebook__url="http://e.org/a.ipynb"),
        ("spec.notebook.url", "should match"),
    ),
    Case(
        "notebook-two-sources",
        edit(notebook(), spec__notebook__configMapRef={"name": "cm", "key": "nb"}),
        ("spec.notebook", "exactly one of url and configMapRef"),
    ),
    Case(
        "platform-url-not-http",
        edit(platform(), spec__skaha__url="ftp://h/skaha"),
        ("spec.skaha.url", "should match"),
    ),
    Case(
        "platform-without-token",
        edit(platform(), spec__tokenSecretRef=MISSING),
        ("spec.tokenSecretRef", "Required value"),
    ),
    # Immutable fields (update)
    Case(
        "change-compute-type",
        edit(compute(), spec__type="desktop"),
        ("spec.type", "type is immutable"),
        "update",
        compute(),
    ),
    Case(
        "change-image",
        edit(container(), spec__image="images.canfar.net/skaha/other:1"),
        ("spec.image", "image is immutable"),
        "update",
        container(),
    ),
    Case(
        "change-data-source-kind",
        edit(data(), spec__http=MISSING, spec__rucio={"did": "s:n", "rseExpression": "X"}),
        ("spec", "kind of source (http, rucio or srcnetStaging) is immutable"),
        "update",
        data(),
    ),
    Case(
        "change-storage-path",
        edit(storage(), spec__path="elsewhere"),
        ("spec.path", "path is immutable"),
        "update",
        storage(),
    ),
    Case(
        "uncancel-session",
        edit(session(), spec__cancel=False),
        ("spec.cancel", "cannot be set back to false"),
        "update",
        edit(session(), spec__cancel=True),
    ),
    # Status writes
    Case(
        "terminal-compute-moves-back",
        edit(compute(), status={"phase": "Running"}),
        ("status.phase", "a terminal phase (Completed, Failed, Cancelled) never changes"),
        "status",
        compute(),
        {"phase": "Failed"},
    ),
    Case(
        "expired-session-moves-on",
        edit(session(), status={"phase": "Available"}),
        ("status.phase", "Expired) never changes"),
        "status",
        session(),
        {"phase": "Expired"},
    ),
    Case(
        "condition-status-not-tristate",
        edit(data(), status={"conditions": [ready("Maybe")]}),
        ("status.conditions[0].status", 'Unsupported value: "Maybe"'),
        "status",
        data(),
    ),
    Case(
        "phase-times-unknown-key",
        edit(storage(), status={"phaseTimes": {"Bogus": "2026-11-29T10:00:00Z"}}),
        ("status.phaseTimes", "keys must be one of Initializing"),
        "status",
        storage(),
    ),
    Case(
        "condition-reason-not-camel-case",
        edit(container(), status={"conditions": [{**ready(), "reason": "not camel"}]}),
        ("status.conditions[0].reason", "should match"),
        "status",
        container(),
    ),
]


def plural(body: Obj) -> str:
    """The resource plural of a body."""
    return KINDS_BY_NAME[body["kind"]].crd.plural


def rejection(call: Callable[[], object]) -> str:
    """Run an API call that must be refused with 422 Invalid; return the message."""
    with pytest.raises(client.ApiException) as caught:
        call()
    assert caught.value.status == 422, caught.value.body
    message: str = yaml.safe_load(str(caught.value.body))["message"]
    return message


def test_the_table_is_large_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({yaml.safe_dump(c.body) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_input_is_rejected(
    case: Case, crds: list[str], api_client: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(api_client)
    kind_plural = plural(case.body)

    def create(body: Obj) -> Obj:
        return cast(
            Obj, api.create_namespaced_custom_object(GROUP, VERSION, namespace, kind_plural, body)
        )

    match case.action:
        case "create":
            message = rejection(lambda: create(case.body))
        case "update":
            assert case.base is not None
            current = create(case.base)
            body = edit(case.body, metadata=current["metadata"])
            message = rejection(
                lambda: api.replace_namespaced_custom_object(
                    GROUP, VERSION, namespace, kind_plural, body["metadata"]["name"], body
                )
            )
        case "status":
            assert case.base is not None
            current = create(case.base)
            name = current["metadata"]["name"]
            if case.first_status:
                current = cast(
                    Obj,
                    api.replace_namespaced_custom_object_status(
                        GROUP,
                        VERSION,
                        namespace,
                        kind_plural,
                        name,
                        {**current, "status": case.first_status},
                    ),
                )
            body = {**current, "status": case.body["status"]}
            message = rejection(
                lambda: api.replace_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, kind_plural, name, body
                )
            )
        case other:
            raise AssertionError(f"unknown action {other}")
    for words in case.expect:
        assert words in message, message
    # A rule must never fail by erroring (a CEL conversion error is not a message for humans).
    assert "error evaluating" not in message
    assert "conversion error" not in message


def example_docs() -> list[Obj]:
    """Every document of every example file."""
    docs: list[Obj] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_examples_are_accepted_and_round_trip(
    crds: list[str], api_client: client.ApiClient, kubectl: Any, namespace: str
) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        kubectl("apply", "-n", namespace, "-f", str(path))
    api = client.CustomObjectsApi(api_client)
    skaha_docs = [d for d in example_docs() if d["apiVersion"] == API_VERSION]
    assert len(skaha_docs) == 10
    for doc in skaha_docs:
        stored = cast(
            Obj,
            api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural(doc), doc["metadata"]["name"]
            ),
        )
        # The API server's object goes through the model and comes back unchanged ...
        assert parse_object(stored).to_wire() == stored
        # ... and the server's defaults are exactly the model's defaults.
        assert parse_object(doc).to_wire()["spec"] == stored["spec"]


def retry_kubectl(kubectl: Any, *args: str, deadline_s: float = 60) -> str:
    """Run kubectl until it succeeds (the OpenAPI of new CRDs is published asynchronously)."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = kubectl(*args, check=False)
        if result.returncode == 0:
            return str(result.stdout)
        if time.monotonic() > deadline:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        time.sleep(0.5)


def test_kubectl_explain_prints_descriptions(crds: list[str], kubectl: Any) -> None:
    spec = retry_kubectl(kubectl, "explain", "session.spec")
    assert "What the user asks for" in spec or "Desired session" in spec
    for text in ("platformRef", "Name of the SkahaPlatform", "executable", "storages", "cancel"):
        assert text in spec
    nested = retry_kubectl(kubectl, "explain", "session.spec.compute.template.type")
    assert "Skaha session type" in nested
    data = retry_kubectl(kubectl, "explain", "data.spec.rucio.did")
    assert "scope:name" in data


def test_kubectl_get_skaha_lists_every_kind_with_columns(
    crds: list[str], kubectl: Any, namespace: str
) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        kubectl("apply", "-n", namespace, "-f", str(path))
    listing = retry_kubectl(kubectl, "get", "skaha", "-n", namespace)
    for name in (
        "skahaplatform.skaha.broker.dev/local",
        "dockercontainer.skaha.broker.dev/astroml",
        "jupyternotebook.skaha.broker.dev/spectra-tutorial",
        "storage.skaha.broker.dev/survey-inputs",
        "data.skaha.broker.dev/obs-123",
        "session.skaha.broker.dev/notebook-with-data",
    ):
        assert name in listing, listing
    sessions = kubectl("get", "sessions", "-n", namespace).stdout
    # The reason is in the default view (priority 0), where people look first.
    assert sessions.split("\n")[0].split() == ["NAME", "PHASE", "READY", "TYPE", "REASON", "AGE"]
    platforms = kubectl("get", "skahaplatforms", "-n", namespace).stdout
    assert "REASON" in platforms.split("\n")[0].split()
    assert "nightly-reduction" in sessions
    data = kubectl("get", "data", "-n", namespace, "-o", "wide").stdout
    header = data.split("\n")[0].split()
    assert header == ["NAME", "PHASE", "READY", "RULE", "JOB", "STORAGE", "REASON", "AGE"]
    assert "survey-inputs" in data
    short = kubectl("get", "sks,dat,skp", "-n", namespace, "-o", "name").stdout.split()
    assert len(short) == 4 + 1 + 1
