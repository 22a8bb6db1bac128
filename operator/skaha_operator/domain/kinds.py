"""The registry of every kind, in the order the CRDs are generated and documented."""

from __future__ import annotations

from skaha_operator.domain.base import KindModel
from skaha_operator.domain.compute import Compute
from skaha_operator.domain.data import Data
from skaha_operator.domain.docker_container import DockerContainer
from skaha_operator.domain.jupyter_notebook import JupyterNotebook
from skaha_operator.domain.session import Session
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.domain.storage import Storage

KINDS: tuple[type[KindModel], ...] = (
    SkahaPlatform,
    DockerContainer,
    JupyterNotebook,
    Storage,
    Data,
    Compute,
    Session,
)
KINDS_BY_NAME: dict[str, type[KindModel]] = {k.crd.kind: k for k in KINDS}


def parse_object(body: dict[str, object]) -> KindModel:
    """Validate an API-server object dict into the model of its kind."""
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in KINDS_BY_NAME:
        raise ValueError(f"not a skaha kind: {kind!r}")
    return KINDS_BY_NAME[kind].model_validate(body)


def plural_of(kind: str) -> str:
    """The resource plural of a kind's name (`Compute` -> `computes`)."""
    return KINDS_BY_NAME[kind].crd.plural


# Kinds a Session creates and owns, and kinds a Compute waits for.
PART_KINDS = ("DockerContainer", "JupyterNotebook", "Storage", "Data", "Compute")
DEPENDENCY_KIND_NAMES = ("DockerContainer", "JupyterNotebook", "Storage", "Data")
