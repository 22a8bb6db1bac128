"""skaha-operator: Skaha science sessions as Kubernetes custom resources, reconciled by kopf."""

__version__ = "0.1.0"

GROUP = "skaha.broker.dev"
VERSION = "v1alpha1"
# The finalizer that holds our objects until their release is done (docs/design.md §4.6); the
# chart's finalizer policy (helm/skaha-operator/files/finalizer-policy.yaml) spells it too.
FINALIZER = f"{GROUP}/finalizer"
