"""The Milvus side of the wire: resource groups over pymilvus (gRPC) and the proxy's management HTTP API.

- `gateway`: the `MilvusGateway` the reconcile pass sees, and `PymilvusGateway`;
- `errors`: how a call failed (`MilvusError` and its kinds);
- `management`: the management HTTP client (node list, suspend, resume, distribution);
- `tls`: the pool's certificates as files and contexts, and why a TLS connection fails;
- `wire`: configs and descriptions between the core's data and pymilvus' messages;
- `quiet`: pymilvus' own log records, kept out of the operator's log during its calls.
"""

from milvus_rg_operator.adapters.deferred_pandas import defer_pandas

defer_pandas()  # before pymilvus, which imports pandas (33 MB) for paths the operator never takes

from milvus_rg_operator.adapters.milvus.errors import (  # noqa: E402
    ManagementUnavailable,
    MilvusAuthError,
    MilvusError,
    MilvusTlsError,
    MilvusUnavailable,
    MilvusUnsupported,
)
from milvus_rg_operator.adapters.milvus.gateway import MilvusGateway, PymilvusGateway  # noqa: E402
from milvus_rg_operator.adapters.milvus.management import Distribution  # noqa: E402
from milvus_rg_operator.adapters.milvus.tls import TlsMaterial  # noqa: E402

__all__ = ["Distribution", "ManagementUnavailable", "MilvusAuthError", "MilvusError", "MilvusGateway",
           "MilvusTlsError", "MilvusUnavailable", "MilvusUnsupported", "PymilvusGateway", "TlsMaterial"]
