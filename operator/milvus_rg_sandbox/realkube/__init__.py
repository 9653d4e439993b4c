"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
built from Go modules, and the sandbox's pod-to-Milvus wiring over its API (docs/real-kubernetes.md)."""

from .backend import RealWorkloads, real_kubernetes
from .client import ApiStatusError, EmbeddedOnly, KubeRestClient
from .control_plane import ControlPlaneUnavailable, RealControlPlane, SharedControlPlane, find_binaries
from .wiring import ApiPodNodeWiring

__all__ = [
    "ApiPodNodeWiring",
    "ApiStatusError",
    "ControlPlaneUnavailable",
    "EmbeddedOnly",
    "KubeRestClient",
    "RealControlPlane",
    "RealWorkloads",
    "SharedControlPlane",
    "find_binaries",
    "real_kubernetes",
]
