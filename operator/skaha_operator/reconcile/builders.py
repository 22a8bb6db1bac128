"""Pure builders of the objects a Session owns, and the list of every part it uses.

Kubespawner-style (docs/design.md §7.4): plain functions from the Session model to API bodies,
tested by exact dict comparison. Names are DNS-1123 labels with a hash suffix when they had to
be cut or cleaned; children carry the Session label and a controller ownerReference
(docs/kubernetes-notes.md §5). Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from skaha_operator.domain.base import API_VERSION
from skaha_operator.domain.session import PartKind, Session

SESSION_LABEL = "skaha.broker.dev/session"
PART_LABEL = "skaha.broker.dev/part"

MAX_NAME = 63
_HASH_LEN = 8
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def safe_label(text: str) -> str:
    """`text` if it is a DNS-1123 label; else a cleaned, cut form plus a hash of the original."""
    if len(text) <= MAX_NAME and _LABEL.match(text):
        return text
    # The hash keeps "a.b" and "a-b" (both cleaned to "a-b") apart.
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")
    head = cleaned[: MAX_NAME - _HASH_LEN - 1].rstrip("-")
    return f"{head}-{_hash(text)}" if head else _hash(text)


def child_name(session_name: str, part: str) -> str:
    """The name of a child object: `<session>-<part>`, DNS-1123 safe, at most 63 characters."""
    return safe_label(f"{session_name}-{part}")


def session_label_value(session_name: str) -> str:
    """The value of SESSION_LABEL: the Session's name, cut with a hash only beyond 63 characters.

    Label values may hold dots (unlike DNS labels), so any Session name up to 63 characters is
    kept as it is and a parent can be found from its children's label.
    """
    return session_name if len(session_name) <= MAX_NAME else safe_label(session_name)


@dataclass(frozen=True)
class PartRef:
    """One object a Session uses: owned (created from a template) or shared (a `ref`)."""

    kind: str
    name: str
    shared: bool
    part: str = ""  # the part inside the Session: "executable", "compute", "storage-<name>", ...


def _storage_part(name: str) -> str:
    return f"storage-{name}"


def _data_part(name: str) -> str:
    return f"data-{name}"


def part_refs(session: Session) -> list[PartRef]:
    """Every part the Session uses, owned and shared, in dependency order with Compute last."""
    spec = session.spec
    name = str(session.metadata["name"])
    refs: list[PartRef] = []
    exe = spec.executable
    if exe.ref is not None:
        refs.append(PartRef(str(exe.ref.kind), exe.ref.name, True, "executable"))
    else:
        refs.append(
            PartRef(_executable_kind(session), child_name(name, "executable"), False, "executable")
        )
    for s in spec.storages or []:
        part = _storage_part(s.name)
        if s.ref is not None:
            refs.append(PartRef(PartKind.STORAGE.value, s.ref, True, part))
        else:
            refs.append(PartRef(PartKind.STORAGE.value, child_name(name, part), False, part))
    for d in spec.data or []:
        part = _data_part(d.name)
        if d.ref is not None:
            refs.append(PartRef(PartKind.DATA.value, d.ref, True, part))
        else:
            refs.append(PartRef(PartKind.DATA.value, child_name(name, part), False, part))
    refs.append(PartRef(PartKind.COMPUTE.value, child_name(name, "compute"), False, "compute"))
    return refs


def _executable_kind(session: Session) -> str:
    template = session.spec.executable.template
    if template is not None and template.jupyter_notebook is not None:
        return str(PartKind.JUPYTER_NOTEBOOK)
    return str(PartKind.DOCKER_CONTAINER)


def _storage_names(session: Session) -> dict[str, str]:
    """Session storage name -> the Storage object's name (owned child or shared object)."""
    name = str(session.metadata["name"])
    return {
        s.name: s.ref if s.ref is not None else child_name(name, _storage_part(s.name))
        for s in session.spec.storages or []
    }


def make_children(session: Session) -> list[dict[str, Any]]:
    """The full API bodies of every object the Session owns, Compute last."""
    meta = session.metadata
    name, namespace = str(meta["name"]), str(meta["namespace"])
    owner = {
        "apiVersion": API_VERSION,
        "kind": "Session",
        "name": name,
        "uid": str(meta["uid"]),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    platform = session.spec.platform_ref
    storages = _storage_names(session)
    specs = _owned_specs(session, storages)
    refs = {r.part: r for r in part_refs(session)}
    bodies = []
    for part, spec in specs:
        ref = refs[part]
        bodies.append(
            {
                "apiVersion": API_VERSION,
                "kind": ref.kind,
                "metadata": {
                    "name": ref.name,
                    "namespace": namespace,
                    "labels": {SESSION_LABEL: session_label_value(name), PART_LABEL: part},
                    "ownerReferences": [dict(owner)],
                },
                "spec": {**spec, "platformRef": platform},
            }
        )
    return bodies


def _owned_specs(session: Session, storages: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(part, spec without platformRef) of each owned child, in part_refs order."""
    spec = session.spec
    out: list[tuple[str, dict[str, Any]]] = []
    exe = spec.executable.template
    if exe is not None and exe.docker_container is not None:
        out.append(("executable", exe.docker_container.to_wire()))
    elif exe is not None and exe.jupyter_notebook is not None:
        body = exe.jupyter_notebook.to_wire()
        # Inside a Session, storageRef names a Session storage; the child names the object.
        body["storageRef"] = storages[exe.jupyter_notebook.storage_ref]
        out.append(("executable", body))
    for s in spec.storages or []:
        if s.template is not None:
            out.append((_storage_part(s.name), s.template.to_wire()))
    for d in spec.data or []:
        if d.template is not None:
            body = d.template.to_wire()
            body["storageRef"] = storages[d.template.storage_ref]
            out.append((_data_part(d.name), body))
    out.append(("compute", _compute_spec(session, storages)))
    return out


def _compute_spec(session: Session, storages: dict[str, str]) -> dict[str, Any]:
    """The Compute's spec: the template plus the refs and schedule the Session supplies."""
    refs = part_refs(session)
    executable = refs[0]
    body = session.spec.compute.template.to_wire()
    body["executableRef"] = {"kind": executable.kind, "name": executable.name}
    if storages:
        body["storageRefs"] = list(storages.values())
    data = [r.name for r in refs if r.kind == PartKind.DATA]
    if data:
        body["dataRefs"] = data
    schedule = session.spec.schedule.to_wire() if session.spec.schedule else {}
    created = session.metadata.get("creationTimestamp")
    if "start" not in schedule and isinstance(created, str):
        # Pin the default start to the Session's creation, so that the Compute's deadline and
        # booking end are the Session's and not shifted by the time it took to create the child.
        schedule["start"] = created
    if schedule:
        body["schedule"] = schedule
    return body


__all__ = [
    "PART_LABEL",
    "SESSION_LABEL",
    "PartRef",
    "child_name",
    "make_children",
    "part_refs",
    "safe_label",
    "session_label_value",
]
