"""skaha-operator: Skaha science sessions as Kubernetes custom resources, reconciled by kopf."""

__version__ = "0.1.0"

GROUP = "skaha.broker.dev"
VERSION = "v1alpha1"
