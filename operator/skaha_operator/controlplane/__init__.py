"""A local Kubernetes control plane (etcd + kube-apiserver [+ kube-controller-manager]).

Used by the integration tests and by the demo. The binaries come from `hack/controlplane.sh`
(`make controlplane`). Imports neither kopf nor httpx.
"""

from skaha_operator.controlplane.binaries import BinaryMissingError, binary
from skaha_operator.controlplane.launcher import ControlPlane

__all__ = ["BinaryMissingError", "ControlPlane", "binary"]
