"""The API of milvusrg.io/v1alpha1 as pydantic models: the single source of the CRDs and docs/api.md.

Field descriptions become the CRD descriptions (`kubectl explain`). Kubernetes-only schema keywords
(CEL rules, list types, preserve-unknown-fields) ride along in `json_schema_extra`; the models also check
the same cross-field rules themselves, so manifests that never went through an API server are refused too.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from milvus_rg_operator.api import rules
from milvus_rg_operator.api.rules import Has, Path, Rule

# The shared names (milvus_rg_operator.constants), re-exported: the API is where callers look for them.
from milvus_rg_operator.constants import (
    ANNOTATION_BALANCE as ANNOTATION_BALANCE,
)
from milvus_rg_operator.constants import (
    ANNOTATION_PAUSED as ANNOTATION_PAUSED,
)
from milvus_rg_operator.constants import (
    API_GROUP as API_GROUP,
)
from milvus_rg_operator.constants import (
    API_VERSION as API_VERSION,
)
from milvus_rg_operator.constants import (
    CATEGORY as CATEGORY,
)
from milvus_rg_operator.constants import (
    DEFAULT_MANAGEMENT_PORT as DEFAULT_MANAGEMENT_PORT,
)
from milvus_rg_operator.constants import (
    DEFAULT_PENDING_GROUP as DEFAULT_PENDING_GROUP,
)
from milvus_rg_operator.constants import (
    DEFAULT_RESOURCE_GROUP as DEFAULT_RESOURCE_GROUP,
)
from milvus_rg_operator.constants import (
    FINALIZER as FINALIZER,
)
from milvus_rg_operator.constants import (
    LABEL_NODE_ID as LABEL_NODE_ID,
)
from milvus_rg_operator.constants import (
    LABEL_RESOURCE_GROUP as LABEL_RESOURCE_GROUP,
)
from milvus_rg_operator.constants import (
    LABEL_STATE as LABEL_STATE,
)
from milvus_rg_operator.constants import (
    POOL_KIND as POOL_KIND,
)
from milvus_rg_operator.constants import (
    POOL_PLURAL as POOL_PLURAL,
)
from milvus_rg_operator.constants import (
    RESOURCE_GROUP_KIND as RESOURCE_GROUP_KIND,
)
from milvus_rg_operator.constants import (
    RESOURCE_GROUP_PLURAL as RESOURCE_GROUP_PLURAL,
)
from milvus_rg_operator.constants import (
    VERSION as VERSION,
)

MILVUS_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MILVUS_NAME_RULE = "must start with a letter or _ and contain only letters, digits and _"
MILVUS_NAME_MAX_LENGTH = 255
NODE_LABEL_KEY_PATTERN = r"^[A-Za-z0-9_]+$"
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HOST_PORT_PATTERN = r"[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$"
MILVUS_URI_PATTERN = r"^(https?|tcp|grpc)://" + HOST_PORT_PATTERN
MANAGEMENT_URI_PATTERN = r"^https?://" + HOST_PORT_PATTERN
MAX_TRANSFER_GROUPS = 64
MAX_NODE_LABELS = 32
MAX_COLLECTIONS = 64
MAX_COLLECTION_NAME_LENGTH = 255  # proxy.maxNameLength


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry (a CEL rule the API server enforces at admission)."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def _check_milvus_name(name: str) -> str:
    # A hand-written check instead of a pydantic pattern, for an error message people understand.
    if re.fullmatch(MILVUS_NAME_PATTERN, name) is None:
        raise ValueError(MILVUS_NAME_RULE)
    return name


MilvusGroupName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MILVUS_NAME_MAX_LENGTH),
    AfterValidator(_check_milvus_name),
    Field(description=f"A Milvus resource group name: {MILVUS_NAME_RULE}.", json_schema_extra={
        "pattern": MILVUS_NAME_PATTERN,
        "x-kubernetes-validations": [_cel(f"self.matches('{MILVUS_NAME_PATTERN}')", MILVUS_NAME_RULE)],
    }),
]
NodeLabelKey = Annotated[str, StringConstraints(min_length=1, max_length=MILVUS_NAME_MAX_LENGTH,
                                                pattern=NODE_LABEL_KEY_PATTERN)]
NodeLabelValue = Annotated[str, StringConstraints(max_length=MILVUS_NAME_MAX_LENGTH)]
Timestamp = Annotated[datetime.datetime, Field(description="An RFC 3339 date-time.")]


class ApiModel(BaseModel):
    """camelCase on the wire; snake_case in Python; both accepted when parsing."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, validate_by_name=True)


class SpecModel(ApiModel):
    """Specs refuse unknown fields: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class StatusModel(ApiModel):
    """Status is written by the operator; older or newer operators may add fields, so extras are ignored."""

    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- QueryNodePool spec


class SecretKeyRef(SpecModel):
    """A key of a Secret in the pool's namespace."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)] = (
        Field(description="Name of the Secret (in the pool's namespace).")
    )
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        default="token", description="Key in the Secret whose value is a Milvus token or `user:password`.")


class CaSecretRef(SpecModel):
    """A CA bundle in a Secret of the pool's namespace."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)] = (
        Field(description="Name of the Secret (in the pool's namespace).")
    )
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        default="ca.crt", description="Key in the Secret holding the PEM certificate(s) of the CA.")


class TlsSecretRef(SpecModel):
    """A `kubernetes.io/tls` Secret of the pool's namespace (keys `tls.crt` and `tls.key`, as cert-manager writes
    them)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)] = (
        Field(description="Name of the Secret (in the pool's namespace).")
    )


class MilvusTls(SpecModel):
    """TLS to Milvus (`common.security.tlsMode` 1: one-way, 2: mutual), for gRPC and for an `https://`
    managementUri. Needs an `https://` uri; without this block an `https://` uri is verified against the system's
    CAs."""

    ca_secret_ref: CaSecretRef | None = Field(
        default=None, description="CA that signed Milvus's certificate (Milvus `tls.caPemPath`). Absent: the "
                                  "system's CAs.")
    client_cert_secret_ref: TlsSecretRef | None = Field(
        default=None, description="Client certificate and key the operator presents (mutual TLS, tlsMode 2). "
                                  "Needs caSecretRef.")
    server_name: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = Field(
        default=None, description="Name checked against Milvus's certificate. Absent: the host of uri (and of "
                                  "managementUri).")


class MilvusConnection(SpecModel):
    """How the operator reaches Milvus."""

    uri: Annotated[str, StringConstraints(max_length=2048, pattern=MILVUS_URI_PATTERN)] = Field(
        description="gRPC endpoint of the Milvus proxy, `scheme://host:port` with scheme http, https (TLS: see "
                    "tls), tcp or grpc, e.g. `http://my-release-milvus.milvus.svc:19530`.")
    tls: MilvusTls | None = Field(default=None, description="TLS settings: a CA, a client certificate, the server "
                                                            "name.")
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding the credentials (a token or `user:password`). Absent: no authentication.")
    management_uri: Annotated[str, StringConstraints(max_length=2048, pattern=MANAGEMENT_URI_PATTERN)] | None = (
        Field(default=None,
              description="Milvus management (HTTP) endpoint, used for node suspend/resume during drains. "
                          f"Default: http:// and the host of `uri` on port {DEFAULT_MANAGEMENT_PORT} (Milvus serves "
                          "it without TLS, internal/http/server.go); an https:// one uses the tls settings.")
    )
    timeout_seconds: int = Field(default=10, ge=1, le=300,
                                 description="Timeout of each call to Milvus, in seconds.")


class PodTemplateMetadata(SpecModel):
    """Labels and annotations of the query-node pods."""

    labels: dict[str, str] | None = Field(default=None, description="Labels of the pods.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations of the pods.")


class PodTemplate(SpecModel):
    """A pod template (like a StatefulSet's `spec.template`) for query nodes."""

    metadata: PodTemplateMetadata | None = Field(default=None, description="Metadata of the pods.")
    spec: dict[str, Any] = Field(
        description="A core/v1 PodSpec for the query-node pods (not validated by this CRD).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class ScaleDownPolicy(SpecModel):
    """How query nodes are removed."""

    max_unavailable: int = Field(default=1, ge=1,
                                 description="How many query nodes may be draining or terminating at once.")
    drain_timeout_seconds: int = Field(default=600, ge=1,
                                       description="How long a node may take to move its data elsewhere.")
    force_after_timeout: bool = Field(
        default=False,
        description="Remove a node whose drain timed out anyway (otherwise it stays, marked Stalled).")


class BalancePolicy(SpecModel):
    """How the pool judges the balance of data between the nodes of a replica, and how a requested balance runs."""

    max_memory_spread_percent: int = Field(
        default=30, ge=1, le=100,
        description="Balanced turns False when two nodes of one replica differ in segment memory by more than this "
                    "percent of the larger (the load-balance article's queryCoord.memoryUsageMaxDifferencePercentage: "
                    "30).")
    idle_node_seconds: int = Field(
        default=120, ge=0,
        description="Balanced turns False when a node whose pod is older than this holds no segment while other "
                    "nodes of its replica do.")
    scale_out_waits_for_data: bool = Field(
        default=False,
        description="A scale-out counts as done (the pool Ready) only once every node of a group with loaded "
                    "replicas holds data: Milvus's balancer has moved segments onto the new nodes.")
    max_moves_per_pass: int = Field(
        default=4, ge=1, le=64,
        description="Segment moves a requested balance (annotation milvusrg.io/balance) makes in one pass at most.")


POOL_RULES = (
    Rule(Path("minNodes").at_most(Path("maxNodes")), "spec.minNodes must be <= spec.maxNodes", ".minNodes",
         unless_absent=("maxNodes",)),
    Rule(Path("pendingGroup").differs_from(DEFAULT_RESOURCE_GROUP),
         f"spec.pendingGroup must not be {DEFAULT_RESOURCE_GROUP}", ".pendingGroup"),
    Rule(Has("scaleTargetRef").differs_from(Has("statefulSetName")),
         "set exactly one of spec.scaleTargetRef and spec.statefulSetName", ".scaleTargetRef"),
    Rule(Path("scaleTargetRef.apiVersion").equals("milvus.io/v1beta1"),
         "spec.scaleTargetRef of kind Milvus has apiVersion milvus.io/v1beta1", ".scaleTargetRef.apiVersion",
         unless_absent=("scaleTargetRef",), only_if=Path("scaleTargetRef.kind").equals("Milvus")),
    Rule(Path("scaleTargetRef.apiVersion").equals("apps/v1"),
         "spec.scaleTargetRef of kind StatefulSet or Deployment has apiVersion apps/v1",
         ".scaleTargetRef.apiVersion", unless_absent=("scaleTargetRef",),
         only_if=Path("scaleTargetRef.kind").differs_from("Milvus")),
    Rule(Path("scaleTargetRef.kind").equals("StatefulSet"),
         "spec.template makes the operator create a StatefulSet: spec.scaleTargetRef.kind must be StatefulSet",
         ".template", unless_absent=("template", "scaleTargetRef")),
    Rule(Path("milvus.uri").starts_with("https://"), "spec.milvus.tls needs an https:// spec.milvus.uri",
         ".milvus.tls", unless_absent=("milvus.tls",)),
    # pymilvus presents a client certificate only together with a CA (client/async_grpc_handler.py _create_channel)
    Rule(Has("milvus.tls.caSecretRef").equals(True), "spec.milvus.tls.clientCertSecretRef needs "
         "spec.milvus.tls.caSecretRef", ".milvus.tls.caSecretRef",
         unless_absent=("milvus.tls", "milvus.tls.clientCertSecretRef")),
)


class ScaleTargetRef(SpecModel):
    """The workload that runs the pool's query nodes, named as an HPA names its target."""

    api_version: Literal["apps/v1", "milvus.io/v1beta1"] = Field(
        description="apps/v1 (StatefulSet, Deployment) or milvus.io/v1beta1 (Milvus).")
    kind: Literal["StatefulSet", "Deployment", "Milvus"] = Field(
        description="StatefulSet; Deployment (the Milvus Helm chart's query nodes); or Milvus, milvus-operator's "
                    "custom resource, whose query-node replicas the operator writes (milvus-operator then sets "
                    "its two blue/green Deployments).")
    name: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)] = Field(
        description="Name of the workload in the pool's namespace.")


class QueryNodePoolSpec(SpecModel):
    """A Milvus instance and the workload of its query nodes."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": rules.validations(POOL_RULES)})

    milvus: MilvusConnection = Field(description="How the operator reaches Milvus.")
    scale_target_ref: ScaleTargetRef | None = Field(
        default=None,
        description="The workload running the query nodes, which the operator scales (adopting it changes no "
                    "pod and no pod template). Set this or `statefulSetName`.")
    stateful_set_name: Annotated[str, StringConstraints(min_length=1, max_length=63,
                                                        pattern=DNS1123_LABEL_PATTERN)] | None = Field(
        default=None,
        description="Short for `scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: ...}`.")
    template: PodTemplate | None = Field(
        default=None,
        description="When set, the operator creates and owns a StatefulSet (the one `scaleTargetRef` or "
                    "`statefulSetName` names) with this pod template.")
    pending_group: MilvusGroupName = Field(
        default=DEFAULT_PENDING_GROUP,
        description="Milvus group holding nodes no declared group uses: new nodes join here and nodes "
                    f"leave from here. Must not be `{DEFAULT_RESOURCE_GROUP}`.",
    )
    spare_nodes: int = Field(default=0, ge=0,
                             description="Warm query nodes kept in the pending group beyond the groups' needs.")
    min_nodes: int = Field(default=0, ge=0, description="Lower bound of the workload's replicas.")
    max_nodes: int | None = Field(default=None, ge=0,
                                  description="Upper bound of the workload's replicas. Absent: unbounded.")
    scale_down: ScaleDownPolicy = Field(default_factory=ScaleDownPolicy,
                                        description="How query nodes are removed.",
                                        json_schema_extra={"default": {}})
    resync_seconds: int = Field(default=30, ge=5, le=3600,
                                description="Period of the resync against Milvus, in seconds.")
    pod_ready_timeout_seconds: int = Field(
        default=300, ge=1, le=86400,
        description="A query-node pod not Ready or not registered in Milvus this long after its creation is "
                    "reported (Degraded, reason PodsNotReady); it never counts as capacity.")
    balance: BalancePolicy = Field(default_factory=BalancePolicy,
                                   description="How data balance between a replica's nodes is judged and started.",
                                   json_schema_extra={"default": {}})

    @model_validator(mode="after")
    def _check_rules(self) -> QueryNodePoolSpec:
        rules.check(POOL_RULES, self.model_dump(by_alias=True, exclude_none=True))
        return self

    def workload(self) -> tuple[str, str, str]:
        """(kind, name, the field that names it) of the pool's workload."""
        if self.scale_target_ref is not None:
            return self.scale_target_ref.kind, self.scale_target_ref.name, "spec.scaleTargetRef"
        assert self.stateful_set_name is not None, "the rules require one of them"
        return "StatefulSet", self.stateful_set_name, "spec.statefulSetName"

    def management_uri(self) -> str:
        """Milvus's management endpoint: `milvus.managementUri`, or http://<host of milvus.uri>:9091 (the one
        place this default is made)."""
        if self.milvus.management_uri:
            return self.milvus.management_uri
        return f"http://{urlsplit(self.milvus.uri).hostname}:{DEFAULT_MANAGEMENT_PORT}"


# ---------------------------------------------------------------- shared status parts


class Condition(StatusModel):
    """A condition in the usual Kubernetes shape."""

    type: str = Field(description="Condition type: Ready, Progressing, Degraded, Paused, Reconciling, Stalled, or "
                                  "(on a ResourceGroup) Balanced.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, description="CamelCase reason of the last transition.")
    message: str | None = Field(default=None, description="Human-readable details.")
    last_transition_time: Timestamp | None = Field(default=None,
                                                   description="When the status last changed.")
    observed_generation: int | None = Field(default=None,
                                            description="The metadata.generation this condition is about.")


CONDITIONS_LIST: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class NodeCount(StatusModel):
    """A node count (Milvus's requests or limits)."""

    node_num: int | None = Field(default=None, description="Number of query nodes.")


# ---------------------------------------------------------------- QueryNodePool status


class PoolMember(StatusModel):
    """One query-node pod that needs attention (not Serving or Pending) and where Milvus placed it."""

    pod: str = Field(description="Pod name.")
    ordinal: int | None = Field(default=None, description="StatefulSet ordinal of the pod (a StatefulSet's pods only).")
    node_id: int | None = Field(default=None, description="Milvus node ID (changes on every restart).")
    group: str | None = Field(default=None, description="Milvus resource group of the node (exact Milvus name).")
    state: Literal["Serving", "Pending", "Draining", "Joining", "Unregistered", "Terminating"] = Field(
        description="Serving (in a declared group), Pending (in the pending group), Draining, Joining "
                    "(registered, not yet placed), Unregistered (no Milvus node) or Terminating.")


class MemberCount(StatusModel):
    """How many query-node pods are in one state in one Milvus group."""

    group: str | None = Field(default=None, description="Milvus resource group (exact name); absent for pods "
                                                        "in no group.")
    state: Literal["Serving", "Pending", "Draining", "Joining", "Unregistered", "Terminating"] = Field(
        description="Member state, as in attention[].state.")
    count: int = Field(description="Number of pods.")


class DrainingNode(StatusModel):
    """A node being emptied before its pod is removed."""

    pod: str = Field(description="Pod name.")
    node_id: int = Field(description="Milvus node ID.")
    group: str | None = Field(default=None, description="Milvus group the node served when the drain began.")
    started_at: Timestamp | None = Field(default=None, description="When the drain began.")
    phase: Literal["Surging", "Suspending", "WaitingForReplacement", "MovingData", "Drained", "Stalled"] = Field(
        description="Progress of the drain: Surging (the group's config is raised by one until Milvus "
                    "adds the replacement), Suspending, WaitingForReplacement, MovingData, Drained, "
                    "Stalled (timed out).")
    relocate: bool | None = Field(default=None, description="The pod stays: its node sits in another group than "
                                  "its workload's and is drained out of it, then resumed for Milvus to place it "
                                  "anew.")


class ScaleInRecord(StatusModel):
    """A scale-in as made: the replicas written and the pods they were to remove."""

    workload: str | None = Field(default=None, description="The workload, as `<Kind> <name>`.")
    replicas: int = Field(description="Replicas the workload was scaled to.")
    pods: list[str] = Field(description="The pods its controller was to remove.")


class ScaleDownStatus(StatusModel):
    """Scale-in progress, persisted so a restarted operator resumes it."""

    victims: list[str] | None = Field(default=None, description="Pods chosen for removal.")
    draining: list[DrainingNode] | None = Field(default=None, description="Nodes being drained.")
    suspended_nodes: list[int] | None = Field(default=None,
                                              description="Milvus node IDs the operator suspended.")
    removing: list[ScaleInRecord] | None = Field(
        default=None, description="The last scale-in of each workload, until it is down to its replicas: then the "
                                  "operator checks that these pods went (a Warning UnexpectedRemoval if not).")


class GroupSummary(StatusModel):
    """A Milvus resource group served by this pool."""

    name: str = Field(description="Milvus group name.")
    requests: int | None = Field(default=None, description="requests.nodeNum applied in Milvus.")
    limits: int | None = Field(default=None, description="limits.nodeNum applied in Milvus.")
    nodes: int | None = Field(default=None, description="Nodes Milvus currently places in the group.")


class QueryNodePoolStatus(StatusModel):
    """Observed state of the pool."""

    observed_generation: int | None = Field(default=None, description="The last metadata.generation acted on.")
    conditions: list[Condition] | None = Field(default=None, description="Ready, Progressing, Degraded, Paused.",
                                               json_schema_extra=CONDITIONS_LIST)
    desired_replicas: int | None = Field(default=None, description="Replicas the operator wants.")
    current_replicas: int | None = Field(default=None, description="The StatefulSet's current replicas.")
    ready_replicas: int | None = Field(default=None, description="The StatefulSet's ready replicas.")
    milvus_version: str | None = Field(default=None, description="Version reported by Milvus.")
    member_counts: list[MemberCount] | None = Field(
        default=None, description="Query-node pods per Milvus group and state (per-pod detail is on the pods' "
                                  "milvusrg.io/* labels).")
    attention: list[PoolMember] | None = Field(
        default=None, description="The pods that need attention (Draining, Joining, Unregistered, Terminating), "
                                  "a StatefulSet's by ordinal, others by name, at most 20.")
    attention_omitted: int | None = Field(default=None,
                                          description="How many more pods need attention than attention lists.")
    scale_down: ScaleDownStatus | None = Field(default=None, description="Scale-in progress.")
    groups: list[GroupSummary] | None = Field(default=None, description="Milvus groups of this pool.")
    observed_groups: list[GroupSummary] | None = Field(
        default=None,
        description="Milvus groups no ResourceGroup of this pool declares (created by hand, or on Milvus >= 2.6.8 by "
                    "a query node started with MILVUS_SERVER_LABEL_RESOURCE_GROUP): left as they are, never changed "
                    "or dropped; a ResourceGroup whose groupName names one adopts it. By name, at most 20.")
    observed_groups_omitted: int | None = Field(default=None, description="How many more such groups there are than "
                                                                          "observedGroups lists.")


# ---------------------------------------------------------------- ResourceGroup


class NodeRequest(SpecModel):
    """A number of query nodes."""

    node_num: int = Field(default=0, ge=0, description="Number of query nodes.")


class NodeLimit(SpecModel):
    """An upper bound of query nodes."""

    node_num: int = Field(ge=0, description="Maximum number of query nodes.")


TransferGroups = Annotated[list[MilvusGroupName], Field(max_length=MAX_TRANSFER_GROUPS)]


class GroupScaleTargetRef(SpecModel):
    """A group's own query-node workload, named as an HPA names its target."""

    api_version: Annotated[str, StringConstraints(pattern=r"^apps/v1$")] = Field(description="apps/v1.")
    kind: Literal["StatefulSet", "Deployment"] = Field(description="StatefulSet or Deployment.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)] = Field(
        description="Name of the workload in the group's namespace.")


def _not_containing_group_name(field: str) -> Rule:
    return Rule(Path("groupName").not_in(Path(field)), f"spec.{field} must not contain spec.groupName", f".{field}",
                unless_absent=("groupName", field))


GROUP_RULES = (
    Rule(Has("scaleTargetRef").differs_from(True), "set at most one of spec.scaleTargetRef and spec.template",
         ".template", unless_absent=("template",)),
    Rule(Path("limits.nodeNum").at_least(Path("requests.nodeNum")),
         "spec.limits.nodeNum must be >= spec.requests.nodeNum", ".limits.nodeNum", unless_absent=("limits",)),
    _not_containing_group_name("transferFrom"),
    _not_containing_group_name("transferTo"),
    Rule(Path("collections").unique_by("name"), "spec.collections must name each collection once", ".collections",
         unless_absent=("collections",)),
)


class CollectionPlacement(SpecModel):
    """Replicas of one Milvus collection that this group serves."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_COLLECTION_NAME_LENGTH)] = Field(
        description="Name of the collection in Milvus (default database).")
    replicas: int = Field(
        ge=1, le=MAX_COLLECTIONS,
        description="How many of the collection's replicas this group serves; each needs a node of its own, so "
                    "at most spec.requests.nodeNum. The operator moves replicas here with transfer_replica.")
    load_if_released: bool = Field(
        default=False,
        description="Load the collection when it is released (loading costs memory: only when every group that "
                    "declares it says so), with the replicas every group declares. The operator never releases "
                    "a collection.")


class ResourceGroupSpec(SpecModel):
    """A Milvus resource group and how many query nodes it gets."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        # A transition rule (it reads oldSelf): only an API server can check it. The operator checks the same
        # against the name it recorded in status (core.validation), for objects that bypassed admission.
        _cel("has(self.groupName) == has(oldSelf.groupName) && "
             "(!has(self.groupName) || self.groupName == oldSelf.groupName)",
             "spec.groupName is immutable", ".groupName"),
        *rules.validations(GROUP_RULES),
    ]})

    pool: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)] = (
        Field(description="Name of the QueryNodePool (same namespace) whose nodes this group uses.")
    )
    group_name: MilvusGroupName | None = Field(
        default=None,
        description=f"Name of the group in Milvus ({MILVUS_NAME_RULE}). Default: metadata.name with `-` "
                    f"replaced by `_`. Immutable. `{DEFAULT_RESOURCE_GROUP}` manages Milvus's default group.")
    requests: NodeRequest = Field(default_factory=NodeRequest,
                                  description="Nodes Milvus keeps in the group (requests.nodeNum). "
                                              "`kubectl scale` sets this.",
                                  json_schema_extra={"default": {}})
    limits: NodeLimit | None = Field(
        default=None,
        description="Most nodes Milvus may place in the group. Absent: equal to requests.")
    transfer_from: TransferGroups | None = Field(
        default=None,
        description="Groups Milvus takes missing nodes from, in order. Absent: the pool's pending group.")
    transfer_to: TransferGroups | None = Field(
        default=None,
        description="Groups Milvus gives surplus nodes to, in order. Absent: the pool's pending group.")
    scale_target_ref: GroupScaleTargetRef | None = Field(
        default=None,
        description="The group's own query-node workload (one workload per group, as the Helm chart's "
                    "`replicaResourceGroups` makes them): the operator scales it to the group's requests and drains "
                    "its chosen pod before a scale-in. Its pods must carry "
                    "`MILVUS_SERVER_LABEL_RESOURCE_GROUP=<the Milvus group name>` (Milvus >= 2.4.17 reads it as a "
                    "node label, 2.6.8 also places the node by it); the group gets the matching node filter. "
                    "Absent: the group's nodes come from the pool's workload.")
    template: PodTemplate | None = Field(
        default=None,
        description="The group's own StatefulSet `<metadata.name>-querynode`, created and owned by the operator "
                    "from this pod template (its own resources, node selector or zone: a tenant's GPU nodes or node "
                    "pool); the operator adds `MILVUS_SERVER_LABEL_RESOURCE_GROUP` to its containers.")
    node_labels: Annotated[dict[NodeLabelKey, NodeLabelValue], Field(max_length=MAX_NODE_LABELS)] | None = Field(
        default=None,
        description="Milvus node filter: only nodes with all these labels (from MILVUS_SERVER_LABEL_<KEY> "
                    "env vars; use role-free keys such as ZONE) may join the group. With its own workload: "
                    "default `{RESOURCE_GROUP: <the Milvus group name>}`.",
        json_schema_extra={"x-kubernetes-validations": [
            _cel(f"self.all(k, k.matches('{NODE_LABEL_KEY_PATTERN}'))",
                 "spec.nodeLabels keys must contain only letters, digits and _"),
        ]},
    )
    collections: Annotated[list[CollectionPlacement], Field(max_length=MAX_COLLECTIONS)] | None = Field(
        default=None,
        description="Collections whose replicas this group serves, and how many: the operator moves replicas "
                    "between groups (transfer_replica) until Milvus places them as declared, after the group "
                    "has its nodes. Absent: replicas are left where they are.")

    @model_validator(mode="after")
    def _check_rules(self) -> ResourceGroupSpec:
        rules.check(GROUP_RULES, self.model_dump(by_alias=True, exclude_none=True))
        return self

    def milvus_group_name(self, metadata_name: str) -> str:
        """The Milvus name: groupName, or the object's name with `-` -> `_`."""
        return self.group_name if self.group_name is not None else metadata_name.replace("-", "_")


class ResourceGroupMember(StatusModel):
    """A query node Milvus places in the group, and the data it holds (GetQuerySegmentInfo)."""

    pod: str | None = Field(default=None, description="Pod name (absent when Milvus reports an unknown node).")
    node_id: int = Field(description="Milvus node ID.")
    segments: int | None = Field(default=None, description="Sealed segments the node holds.")
    rows: int | None = Field(default=None, description="Rows of those segments.")
    memory_bytes: int | None = Field(default=None, description="Memory of those segments (mem_size), in bytes.")
    channels: int | None = Field(default=None, description="Channels (shard delegators) the node runs.")


class CollectionReplicas(StatusModel):
    """A collection's replicas in the group, as Milvus's describe_resource_group reports them."""

    collection: str = Field(description="Collection name.")
    declared_replicas: int | None = Field(default=None, description="Replicas spec.collections declares here.")
    loaded_replicas: int | None = Field(default=None, description="Replicas of the collection loaded in the group.")
    outgoing_nodes: int | None = Field(default=None, description="Nodes of the group that still serve the "
                                                                 "collection for another group (moving out).")
    incoming_nodes: int | None = Field(default=None, description="Nodes of other groups that still serve the "
                                                                 "collection's replicas here (moving in).")


class AppliedMilvusConfig(StatusModel):
    """The group's config as applied in Milvus."""

    requests: NodeCount | None = Field(default=None, description="requests in Milvus.")
    limits: NodeCount | None = Field(default=None, description="limits in Milvus.")
    transfer_from: list[str] | None = Field(default=None, description="transfer_from in Milvus.")
    transfer_to: list[str] | None = Field(default=None, description="transfer_to in Milvus.")
    node_labels: dict[str, str] | None = Field(default=None, description="node_filter.node_labels in Milvus.")


class GroupWorkloadStatus(StatusModel):
    """The group's own query-node workload."""

    kind: str | None = Field(default=None, description="StatefulSet or Deployment.")
    name: str | None = Field(default=None, description="Its name.")
    replicas: int | None = Field(default=None, description="Its replicas.")
    ready_replicas: int | None = Field(default=None, description="Its ready replicas.")


class GroupBalance(StatusModel):
    """How evenly the group's replicas spread their data over their nodes."""

    memory_spread_percent: int | None = Field(
        default=None, description="The largest difference in segment memory between two nodes of one replica of the "
                                  "group, in percent of the larger (0: even).")
    idle_nodes: int | None = Field(default=None, description="Nodes holding nothing while others of their replica "
                                                             "hold data.")


class BalanceRequest(StatusModel):
    """The last balance asked for with the annotation milvusrg.io/balance."""

    token: str = Field(description="The annotation's value this balance answers.")
    phase: Literal["Running", "Succeeded"] = Field(
        description="Running (moving segments, at most spec.balance.maxMovesPerPass of the pool per pass) or "
                    "Succeeded (no move left that narrows a replica's spread).")
    moves: int = Field(default=0, description="Segments moved so far (gRPC LoadBalance).")
    started_at: Timestamp | None = Field(default=None, description="When the operator saw the token.")
    finished_at: Timestamp | None = Field(default=None, description="When the balance ended.")
    message: str | None = Field(default=None, description="What the balance did or waits for.")


class ResourceGroupStatus(StatusModel):
    """Observed state of the group."""

    observed_generation: int | None = Field(default=None, description="The last metadata.generation acted on.")
    conditions: list[Condition] | None = Field(default=None, description="Ready, Progressing, Degraded, Paused.",
                                               json_schema_extra=CONDITIONS_LIST)
    group_name: str | None = Field(default=None, description="The resolved Milvus group name.")
    workload: GroupWorkloadStatus | None = Field(default=None, description="The group's own workload, if it has one.")
    nodes: int | None = Field(default=None, description="Nodes Milvus currently places in the group.")
    selector: str | None = Field(default=None,
                                 description=f"Label selector of the group's pods ({LABEL_RESOURCE_GROUP}=...).")
    members: list[ResourceGroupMember] | None = Field(
        default=None, description="Nodes of the group, by pod (a StatefulSet's by ordinal), at most 20 (the "
                                  "group's pods: selector).")
    members_omitted: int | None = Field(default=None, description="How many more nodes the group has than "
                                                                  "members lists.")
    milvus_config: AppliedMilvusConfig | None = Field(default=None, description="What is applied in Milvus.")
    collections: list[CollectionReplicas] | None = Field(
        default=None, description="Collections with replicas in the group or moving in or out, by name, at most 20.")
    collections_omitted: int | None = Field(default=None, description="How many more collections there are than "
                                                                      "collections lists.")
    balance: GroupBalance | None = Field(default=None, description="How evenly the replicas spread their data.")
    balance_request: BalanceRequest | None = Field(default=None, description="The last balance asked for.")


# ---------------------------------------------------------------- whole objects


class ObjectMeta(BaseModel):
    """The few metadata fields the operator reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True,
                              validate_by_name=True)

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    deletion_timestamp: datetime.datetime | None = None

    def paused(self) -> bool:
        """The object carries `milvusrg.io/paused: "true"`."""
        return (self.annotations or {}).get(ANNOTATION_PAUSED, "").lower() == "true"


class QueryNodePool(ApiModel):
    """QueryNodePool: one Milvus and the StatefulSet of its query nodes; the operator scales it for the
    declared ResourceGroups."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = API_VERSION
    kind: str = POOL_KIND
    metadata: ObjectMeta
    spec: QueryNodePoolSpec
    status: QueryNodePoolStatus = Field(default_factory=QueryNodePoolStatus)


# Without spec.groupName the Milvus name comes from metadata.name, which may hold `.` or start with a digit.
# Checked here only: a root-level CEL rule on metadata.name would be refused by the sandbox's validator.
DERIVABLE_NAME_PATTERN = r"^[a-z_][a-z0-9_-]*$"


class ResourceGroup(ApiModel):
    """ResourceGroup: a Milvus resource group whose config (requests, limits, transfers, node labels) the
    operator keeps applied; its node count drives the pool's StatefulSet."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = API_VERSION
    kind: str = RESOURCE_GROUP_KIND
    metadata: ObjectMeta
    spec: ResourceGroupSpec
    status: ResourceGroupStatus = Field(default_factory=ResourceGroupStatus)

    @model_validator(mode="after")
    def _check_derived_name(self) -> ResourceGroup:
        if self.spec.group_name is None and re.fullmatch(DERIVABLE_NAME_PATTERN, self.metadata.name) is None:
            raise ValueError(f"metadata.name {self.metadata.name!r} gives no valid Milvus name: set spec.groupName")
        return self

    def milvus_group_name(self) -> str:
        return self.spec.milvus_group_name(self.metadata.name)

