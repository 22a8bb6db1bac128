"""A local Kubernetes control plane (etcd + kube-apiserver [+ kube-controller-manager]).

Used by the integration tests and by the demo. The binaries come from `hack/controlplane.sh`.
"""
