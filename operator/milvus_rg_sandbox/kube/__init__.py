"""The sandbox's Kubernetes API server (built on kmock) and its in-process object store."""

from .crd_validation import FieldError, validate_custom_resource
from .errors import ApiError
from .server import KNOWN_DIFFERENCES, Fault, KubeApiServer, Mutation
from .store import ObjectStore

__all__ = [
    "KNOWN_DIFFERENCES",
    "ApiError",
    "Fault",
    "FieldError",
    "KubeApiServer",
    "Mutation",
    "ObjectStore",
    "validate_custom_resource",
]
