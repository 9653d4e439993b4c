"""A stand-in for milvus-operator's query-node controller: the `Milvus` custom resource (`milvus.io/v1beta1`)
and the two blue/green query-node Deployments it keeps.

milvus-operator itself cannot be had here (no image; its Go module is refused), so this follows its source,
zilliztech/milvus-operator main a6dcc63 (after v1.3.8); each step names the file and function it follows, all
in `pkg/controllers/` unless said otherwise. It is a client of the Kubernetes API over HTTP (`KubeRestClient`),
the same on the embedded and the real backend, with the user agent `milvus-operator-standin` so its writes
can be told apart in `mutations`.

What it does, for every `Milvus` CR with `spec.mode: cluster` (the default rolling mode 2: only the query
node runs as two Deployments, `deploy_ctrl.go` `CheckDeployMode`):

- keeps `<cr>-milvus-querynode-0` and `-1` (`deploy_ctrl_util.go` `CreateDeploy`, `formatComponentDeployName`,
  `components.go` `GetDeploymentName`), labelled `app.kubernetes.io/{instance,name,component,managed-by}` and
  `milvus.io/querynode-group-id`, owned by the CR; the second is created with the image `dummy` and 0 replicas;
- the CR's annotation `milvus.io/querynode-current-group-id` names the serving Deployment; its label
  `milvus.io/querynode-rolling-id` is set while a rollout runs (`apis/milvus.io/v1beta1/label_annotations.go`);
- puts the current Deployment's replicas back to `spec.components.queryNode.replicas` (`planScaleForNormalState`):
  scale-in one replica per reconcile, scale-out in one step; `-1` means an HPA owns them (`planScaleForHPA`);
- on a change of the rendered pod template (image, env, labels, ...) runs its blue/green rollout
  (`HandleRolling`, `PrepareNewRollout`, `planScaleForRollout`): the other Deployment takes the new template,
  then +1 on the new, -1 on the old, each step only when both Deployments are stable (`checkDeploymentsStable`);
- writes the status milvus-operator writes for the query node (`status_cluster.go`
  `UpdateStatusForNewGeneration`): `status`, `conditions` (MilvusReady, MilvusUpdated), `componentsDeployStatus`,
  `observedGeneration`, `rollingModeVersion`, `currentImage`, `endpoint`.

Timing: milvus-operator reconciles a CR on every event of it (`milvus_controller.go` `SetupWithManager` watches
the CR only, not its Deployments), again 15 s after a pass that wrote something (`ErrRequeue` ->
`RequeueAfter: unhealthySyncInterval / 2`), and its status syncer refreshes every CR's status every 30 s
(`LoopWithInterval`). Here `sync_interval` stands for `unhealthySyncInterval` (30 s; short in tests).
What it leaves out is `KNOWN_DIFFERENCES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from milvus_rg_sandbox.realkube.client import ApiStatusError, KubeRestClient, WatchExpired
from milvus_rg_sandbox.workloads import PODS, Obj, is_terminating, now_rfc3339

logger = logging.getLogger(__name__)

MILVUSES = "milvus.io/v1beta1/milvuses"
DEPLOYMENTS = "apps/v1/deployments"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_FILE = Path(__file__).with_name("crds") / "milvus.io_milvuses.yaml"
USER_AGENT = "milvus-operator-standin"

# pkg/controllers/utils.go NewComponentAppLabels, ManagerName; components.go QueryNodeName, MetricPort
QUERY_NODE = "querynode"
MANAGER_NAME = "milvus-operator"
INSTANCE_LABEL = "app.kubernetes.io/instance"
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
METRIC_PORT = 9091
# apis/milvus.io/v1beta1/label_annotations.go GetComponentGroupIdLabel, GetComponentCurrentGroupIDLabel,
# GetRollingIdLabelByComponent, AnnotationMilvusGeneration
GROUP_ID_LABEL = "milvus.io/querynode-group-id"
CURRENT_GROUP_ANNOTATION = "milvus.io/querynode-current-group-id"
ROLLING_ID_LABEL = "milvus.io/querynode-rolling-id"
GENERATION_ANNOTATION = "milvus.io/generation"
PAUSE_RECONCILE_ANNOTATION = "milvus.io/pause-reconcile"  # milvus_controller.go PauseReconcileAnnotation
ONE_MONTH_SECONDS = 24 * 30 * 3600  # deployment_updater.go oneMonthSeconds
MIN_READY_SECONDS = 30  # deploy_ctrl_util.go CreateDeploy
RUN_SCRIPT = "/milvus/tools/run.sh"  # deployments.go RunScriptPath
DEFAULT_IMAGE = "milvusdb/milvus:v2.6.11"  # pkg/config/config.go DefaultMilvusImage
DUMMY_IMAGE = "dummy"  # deploy_ctrl_util.go CreateDeploy: the second Deployment's image until its first rollout
ROLLING_MODE_V2 = 2  # apis/milvus.io/v1beta1/milvus_types.go RollingModeV2: only the query node has two Deployments
SYNC_INTERVAL = 30.0  # status_cluster.go unhealthySyncInterval
# A failed pass is retried after 0.1 s, doubling with every further failure up to `sync_interval`
# (controller-runtime's rate limiter: 5 ms doubling up to 1000 s); a conflict or a missing Deployment after 0.1 s.
ERROR_RETRY = 0.1

KNOWN_DIFFERENCES = (
    "Only the query node is reconciled, in two-Deployment mode (rolling mode 2 or 3): no etcd, storage, message "
    "stream, coordinators, proxy, data nodes, Services, ConfigMaps, PodDisruptionBudgets or ServiceMonitors; a "
    "CR in standalone mode gets nothing; the one-Deployment mode of rolling mode 1 and its migration are not "
    "modelled.",
    "The query node counts as the whole Milvus: MilvusReady is True when its current Deployment is Available "
    "(the real one also needs a proxy with ready replicas and the other components), and its image counts as "
    "ready to roll (the real one first waits for the components it depends on, "
    "`RollingUpdateImageDependencyReady`); the CR's dependency conditions are never written.",
    "The pod template carries no config init container, config/tools volumes or checksum annotation, and "
    "deployment groups (`queryNode.groups`), sidecars, init containers, volumes, security context, manual mode "
    "(`enableManualMode`), force upgrades (`imageUpdateMode: force`), `updateConfigMapOnly` and the "
    "`milvus.io/pause-reconcile`-annotation's neighbours (maintaining, upgrades) are not modelled.",
    "No mutating or validating webhook: defaults (image, rolling mode, replicas) are written by the first "
    "reconcile, which bumps the CR's generation (the real webhook defaults at admission).",
    "No finalizer: a deleted CR's Deployments are removed by the garbage collector through their owner "
    "reference, without milvus-operator's wait for the pods to stop.",
    "A failed pass is retried after 0.1 s doubling up to `sync_interval` (controller-runtime: 5 ms doubling up to "
    "1000 s).",
)


class Requeue(Exception):
    """`ErrRequeue`: the pass wrote something (or waits for the Deployments to settle) and ends here; the CR
    is reconciled again after `sync_interval / 2` or at its next event."""


class Conflict(Exception):
    """A write refused because the object changed since it was read: the job runs again soon."""


class MissingDeployments(Exception):
    """`GetDeploys`' ErrNotFound (no query-node Deployment) or ErrNoLastDeployment (`last` is None)."""

    def __init__(self, current: Obj | None) -> None:
        super().__init__("no query-node deployment" if current is None else "no last query-node deployment")
        self.current = current


def milvus_crd() -> Obj:
    """The trimmed `milvuses.milvus.io` CRD (crds/milvus.io_milvuses.yaml)."""
    crd: Obj = yaml.safe_load(CRD_FILE.read_text())
    return crd


def selector_labels(instance: str) -> dict[str, str]:
    """components.go `GetSelectorLabels` -> utils.go `NewComponentAppLabels`."""
    return {INSTANCE_LABEL: instance, COMPONENT_LABEL: QUERY_NODE, NAME_LABEL: "milvus", MANAGED_BY_LABEL: MANAGER_NAME}


def deployment_name(instance: str, group_id: int) -> str:
    """deploy_ctrl_util.go `formatComponentDeployName`: `GetDeploymentName` + `-<group id>`."""
    return f"{instance}-milvus-{QUERY_NODE}-{group_id}"


def query_node_replicas(milvus: Obj) -> int:
    """components.go `GetReplicas` + utils.go `ReplicasValue`: 1 when unset; -1 means an HPA owns them."""
    query_node = _components(milvus).get("queryNode")
    if query_node is None or query_node.get("replicas") is None:
        return 1
    return int(query_node["replicas"])


def deploy_replicas(deployment: Obj) -> int:
    """utils.go `getDeployReplicas`: 1 when unset."""
    replicas = deployment.get("spec", {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def with_defaults(milvus: Obj) -> Obj:
    """The spec fields the stand-in reads, defaulted as milvus-operator's webhook `Default` does
    (apis/milvus.io/v1beta1/milvus_webhook.go `DefaultComponents`, `DefaultConf`): image, image update mode,
    rolling mode 2, rolling update enabled, query-node replicas 1."""
    defaulted = copy.deepcopy(milvus)
    spec = defaulted.setdefault("spec", {})
    components = spec.setdefault("components", {})
    components.setdefault("image", DEFAULT_IMAGE)
    components.setdefault("imageUpdateMode", "rollingUpgrade")
    if not components.get("rollingMode"):
        components["rollingMode"] = ROLLING_MODE_V2
    components.setdefault("enableRollingUpdate", True)
    if spec.get("mode") == "cluster":
        query_node = components.setdefault("queryNode", {})
        if query_node.get("replicas") is None:
            query_node["replicas"] = 1
    return defaulted


def _components(milvus: Obj) -> Obj:
    components: Obj = milvus.get("spec", {}).get("components") or {}
    return components


def _annotations(obj: Obj) -> dict[str, str]:
    annotations: dict[str, str] = obj["metadata"].setdefault("annotations", {}) or {}
    obj["metadata"]["annotations"] = annotations
    return annotations


def _labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj["metadata"].setdefault("labels", {}) or {}
    obj["metadata"]["labels"] = labels
    return labels


def _group_id(obj: Obj) -> str:
    """label_annotations.go `GetLabelGroupID`."""
    return str((obj.get("metadata", {}).get("labels") or {}).get(GROUP_ID_LABEL, ""))


def current_group_id(milvus: Obj) -> str:
    """label_annotations.go `GetCurrentGroupId`."""
    return str((milvus["metadata"].get("annotations") or {}).get(CURRENT_GROUP_ANNOTATION, ""))


def is_rolling(milvus: Obj) -> bool:
    """label_annotations.go `IsComponentRolling`."""
    return bool((milvus["metadata"].get("labels") or {}).get(ROLLING_ID_LABEL))


def _set_rolling(milvus: Obj, rolling: bool) -> None:
    """label_annotations.go `SetComponentRolling`: the rolling id is the CR's generation."""
    labels = _labels(milvus)
    if rolling:
        labels.setdefault(ROLLING_ID_LABEL, str(milvus["metadata"].get("generation", 0)))
    else:
        labels.pop(ROLLING_ID_LABEL, None)


def merged_component_spec(milvus: Obj) -> Obj:
    """components.go `MergeComponentSpec(queryNode, components)`: the query node's own settings win; env is the
    components' env, then the query node's (same names replaced), then `CACHE_SIZE`."""
    components = _components(milvus)
    query_node = components.get("queryNode") or {}
    merged = {key: value for key, value in components.items() if key != "queryNode"}
    merged["podLabels"] = {**(components.get("podLabels") or {}), **(query_node.get("podLabels") or {})}
    merged["podAnnotations"] = {**(components.get("podAnnotations") or {}),
                                **(query_node.get("podAnnotations") or {})}
    merged["paused"] = bool(query_node.get("paused") or components.get("paused"))
    for key in ("image", "imagePullPolicy", "schedulerName", "nodeSelector", "affinity", "tolerations",
                "topologySpreadConstraints", "resources", "serviceAccountName", "priorityClassName",
                "hostNetwork", "dnsPolicy", "imagePullSecrets"):
        if query_node.get(key):
            merged[key] = query_node[key]
    merged.setdefault("imagePullPolicy", "IfNotPresent")
    merged["env"] = merge_env(components.get("env") or [], [*(query_node.get("env") or []), CACHE_SIZE_ENV])
    return merged


# components.go CacheSizeEnvVar
CACHE_SIZE_ENV: Obj = {"name": "CACHE_SIZE", "valueFrom": {"resourceFieldRef": {"divisor": "1Gi",
                                                                                 "resource": "limits.memory"}}}


def merge_env(first: Iterable[Obj], then: Iterable[Obj]) -> list[Obj]:
    """utils.go `MergeEnvVar`: `first`'s variables in order, a same-named one of `then` in its place, the rest
    of `then` appended."""
    merged = [copy.deepcopy(item) for item in first]
    index = {item["name"]: position for position, item in enumerate(merged)}
    for item in then:
        if item["name"] in index:
            merged[index[item["name"]]] = copy.deepcopy(item)
        else:
            index[item["name"]] = len(merged)
            merged.append(copy.deepcopy(item))
    return merged


def _default_probes() -> dict[str, Obj]:
    """components.go `GetDefaultStartupProbe`, `GetDefaultLivenessProbe`, `GetDefaultReadinessProbe`."""
    def probe(handler: Obj, timeout: int, period: int, failures: int) -> Obj:
        return {**handler, "timeoutSeconds": timeout, "periodSeconds": period, "failureThreshold": failures,
                "successThreshold": 1}

    tcp = {"tcpSocket": {"port": METRIC_PORT}}
    http = {"httpGet": {"path": "/healthz", "port": METRIC_PORT, "scheme": "HTTP"}}
    return {"startupProbe": probe(tcp, 3, 10, 18), "livenessProbe": probe(tcp, 10, 15, 3),
            "readinessProbe": probe(http, 3, 15, 2)}


def render_pod_template(milvus: Obj, current: Obj | None, force_update_all: bool) -> Obj:
    """deploy_ctrl_util.go `RenderPodTemplateWithoutGroupID` -> deployment_updater.go `updatePodTemplate`: the
    current template with the fields milvus-operator manages set from the CR (everything else kept as the API
    server returned it, defaults included)."""
    spec = merged_component_spec(milvus)
    template = copy.deepcopy(current) if current is not None else {}
    before = copy.deepcopy(template)
    force_update_all = force_update_all or current is None or query_node_replicas(milvus) == 0
    # updatePodMeta
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **spec["podLabels"], **selector_labels(milvus["metadata"]["name"])}
    meta["annotations"] = {**(meta.get("annotations") or {}), **spec["podAnnotations"]}
    pod = template.setdefault("spec", {})
    # updateScheduleSpec: set from the CR, unset when the CR leaves them out
    if spec.get("schedulerName"):
        pod["schedulerName"] = spec["schedulerName"]
    for key in ("affinity", "tolerations", "topologySpreadConstraints", "nodeSelector", "imagePullSecrets",
                "serviceAccountName", "priorityClassName"):
        _set_or_drop(pod, key, spec.get(key))
    # updateMilvusContainer
    containers = pod.setdefault("containers", [])
    container = next((c for c in containers if c.get("name") == QUERY_NODE), None)
    if container is None:
        container = {"name": QUERY_NODE}
        containers.append(container)
    container["args"] = [RUN_SCRIPT, "milvus", "run", QUERY_NODE]  # milvusDeploymentUpdater.GetArgs
    container["env"] = merge_env(container.get("env") or [], spec["env"])
    container["ports"] = [{"name": "metrics", "containerPort": METRIC_PORT, "protocol": "TCP"}]
    container["imagePullPolicy"] = spec["imagePullPolicy"]
    if force_update_all or image_may_change(milvus):
        container["image"] = spec.get("image") or DEFAULT_IMAGE
    container["resources"] = copy.deepcopy(spec.get("resources") or {})
    # updateNetworkSettings
    _set_or_drop(pod, "hostNetwork", spec.get("hostNetwork") or None)
    if spec.get("dnsPolicy"):
        pod["dnsPolicy"] = spec["dnsPolicy"]
    if force_update_all or comparable(before) != comparable(template):
        # updateSomeFieldsOnlyWhenRolling: default probes, and a month to stop ("to avoid kill -9")
        container.update(_default_probes())
        pod["terminationGracePeriodSeconds"] = ONE_MONTH_SECONDS
    return template


def image_may_change(milvus: Obj) -> bool:
    """deployment_updater.go `updateMilvusContainer`: the image follows the CR when rolling update is off, in
    image update modes `all`/`force`, or once the CR's generation is observed (`RollingUpdateImageDependencyReady`;
    the components a query node waits for do not exist here)."""
    components = _components(milvus)
    if not components.get("enableRollingUpdate", True) or components.get("imageUpdateMode") in ("all", "force"):
        return True
    observed = int((milvus.get("status") or {}).get("observedGeneration") or 0)
    return observed >= int(milvus["metadata"].get("generation", 0))


def _set_or_drop(obj: Obj, key: str, value: Any) -> None:
    if value is None or value == [] or value == {}:
        obj.pop(key, None)
    else:
        obj[key] = copy.deepcopy(value)


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10**3),
            "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15),
            "E": Decimal(10**18)}


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity as a number: the API server rewrites quantities canonically ("1024Mi" -> "1Gi"),
    and milvus-operator compares them by value (apimachinery `equality.Semantic`)."""
    text = str(value)
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * factor
    if text and text[-1] in _DECIMAL and not text[-1].isdigit():
        return Decimal(text[:-1]) * _DECIMAL[text[-1]]
    return Decimal(text)


def comparable(value: Any, key: str = "") -> Any:
    """What `equality.Semantic.DeepEqual` compares: null, empty lists and empty maps count as absent, and
    quantities (resources, divisors) by value."""
    if isinstance(value, dict):
        result = {}
        for child_key, child in value.items():
            if key in ("limits", "requests") or child_key == "divisor":
                result[child_key] = quantity(child)
                continue
            normalized = comparable(child, child_key)
            if normalized not in (None, [], {}):
                result[child_key] = normalized
        return result
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def templates_equal(deployment: Obj, template: Obj) -> bool:
    """deploy_ctrl_util.go `isPodTemplateEqual`: equal but for the group-id label."""
    def without_group(candidate: Obj) -> Any:
        candidate = copy.deepcopy(candidate)
        (candidate.setdefault("metadata", {}).setdefault("labels", {}) or {}).pop(GROUP_ID_LABEL, None)
        return comparable(candidate)

    return bool(without_group(deployment["spec"]["template"]) == without_group(template))


def _limits(deployment: Obj) -> dict[str, Any]:
    return {c.get("name"): comparable((c.get("resources") or {}).get("limits") or {}, "limits")
            for c in deployment["spec"]["template"]["spec"].get("containers") or []}


def deployment_is_stable(deployment: Obj, pods: list[Obj]) -> tuple[bool, str]:
    """rollout_util.go `DeploymentIsStable`."""
    status = deployment.get("status") or {}
    replicas = deploy_replicas(deployment)
    checks = (
        (not any(is_terminating(p) for p in pods), "has terminating pods"),
        (not [p for p in pods if not _pod_running_and_ready(p)], "has not ready pods"),
        (len(pods) == replicas, "pods less than expected replicas"),
        (status.get("observedGeneration", 0) == deployment["metadata"].get("generation", 0),
         "observed generation is not equal to generation"),
        (replicas == status.get("replicas", 0), "replicas is not equal to status replicas"),
        (status.get("replicas", 0) == status.get("updatedReplicas", 0), "not all replicas updated"),
        (status.get("replicas", 0) == status.get("availableReplicas", 0), "not all replicas available"),
        (status.get("replicas", 0) == status.get("readyReplicas", 0), "not all replicas ready"),
        (status.get("unavailableReplicas", 0) < 1, "has unavailable replicas"),
    )
    for ok, reason in checks:
        if not ok:
            return False, reason
    return True, ""


def _pod_running_and_ready(pod: Obj) -> bool:
    """rollout_util.go `GetNotReadyPods`: a pod is ready when Running and its Ready condition is not False."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return all(c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type") == "Ready")


def deployment_ready(deployment: Obj | None) -> bool:
    """utils.go `DeploymentReady`: the Available condition is True."""
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Available":
            return bool(condition.get("status") == "True")
    return False


def deploy_state(status: Obj) -> str:
    """apis/milvus.io/v1beta1/milvus_types.go `ComponentDeployStatus.GetState`."""
    deploy_status = status.get("status") or {}
    if int(deploy_status.get("observedGeneration") or 0) < int(status.get("generation") or 0):
        return "Progressing"
    progressing = next((c for c in deploy_status.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if progressing is None:
        return "Progressing"
    if progressing.get("reason") == "DeploymentPaused":
        return "Paused"
    if progressing.get("status") != "True":
        return "Failed"
    return "Complete" if progressing.get("reason") == "NewReplicaSetAvailable" else "Progressing"


RECONCILE, SYNC_STATUS = "reconcile", "status"
Job = tuple[str, str, str]  # (RECONCILE or SYNC_STATUS, namespace, name)


class MilvusOperatorStandIn:
    """Reconciles every `Milvus` CR of the API (see the module docstring). `start` installs the CRD."""

    def __init__(self, api: KubeRestClient, *, sync_interval: float = SYNC_INTERVAL,
                 min_ready_seconds: int = MIN_READY_SECONDS) -> None:
        """`min_ready_seconds`: the new Deployments' `minReadySeconds` (milvus-operator: 30)."""
        self.api = api
        self.sync_interval = sync_interval
        self.min_ready_seconds = min_ready_seconds
        self.jobs_done = 0
        """Reconciles and status syncs finished so far (tests wait for a few more to see nothing changes)."""
        self._known: set[tuple[str, str]] = set()
        self._due: dict[Job, float] = {}
        self._failures: dict[Job, int] = {}  # failed passes in a row, for the back-off
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        try:
            await install_crd(self.api)
            listing = await self.api.list_object(MILVUSES)
        except BaseException:
            await self.api.close()
            raise
        for milvus in listing.get("items") or []:
            self._schedule(RECONCILE, _key(milvus), 0)
        version = str(listing["metadata"]["resourceVersion"])
        self._tasks = [asyncio.create_task(self._follow(version), name="milvus-operator-watch"),
                       asyncio.create_task(self._resync(), name="milvus-operator-status-syncer"),
                       asyncio.create_task(self._work(), name="milvus-operator-worker")]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.api.close()

    def _schedule(self, kind: str, key: tuple[str, str], delay: float) -> None:
        self._known.add(key)
        job, due = (kind, *key), time.monotonic() + delay
        if job not in self._due or due < self._due[job]:
            self._due[job] = due
        self._wake.set()

    async def _follow(self, version: str) -> None:
        """Every event of a CR reconciles it (the controller's `For(&Milvus{})`), its own status writes too."""
        while True:
            try:
                async for event_type, milvus in self.api.watch(MILVUSES, version):
                    version = str(milvus.get("metadata", {}).get("resourceVersion") or version)
                    if event_type == "DELETED":
                        self._known.discard(_key(milvus))
                    elif event_type != "BOOKMARK":
                        self._schedule(RECONCILE, _key(milvus), 0)
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                listing = await self.api.list_object(MILVUSES)
                version = str(listing["metadata"]["resourceVersion"])
                for milvus in listing.get("items") or []:
                    self._schedule(RECONCILE, _key(milvus), 0)
            except Exception:
                logger.exception("milvus-operator stand-in: the Milvus watch failed; watching again")
                await asyncio.sleep(ERROR_RETRY)

    async def _resync(self) -> None:
        """The status syncer (status_cluster.go `RunIfNot` -> `LoopWithInterval`): every CR's status again every
        `sync_interval` (the real one: 30 s while unhealthy or updating, 60 s once healthy and updated). A
        status that changed is a CR event, hence a reconcile: that is how a Deployment scaled by hand is put back."""
        while True:
            await asyncio.sleep(self.sync_interval)
            for key in list(self._known):
                self._schedule(SYNC_STATUS, key, 0)

    async def _work(self) -> None:
        """One job at a time, as milvus-operator reconciles one CR at a time with its default of one worker."""
        while True:
            now = time.monotonic()
            ready = sorted(job for job, due in self._due.items() if due <= now)
            if not ready:
                self._wake.clear()
                timeout = min(self._due.values()) - now if self._due else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            for job in ready:
                kind, *key = job
                self._due.pop(job, None)
                failures = self._failures.pop(job, 0)
                try:
                    if kind == RECONCILE:
                        await self.reconcile(*key)
                    else:
                        await self.sync_status(*key)
                except Requeue:
                    self._schedule(RECONCILE, (key[0], key[1]), self.sync_interval / 2)
                except asyncio.CancelledError:
                    raise
                except (MissingDeployments, Conflict) as error:
                    logger.debug("milvus-operator stand-in: %s/%s: %s; again soon", *key, error)
                    self._schedule(kind, (key[0], key[1]), ERROR_RETRY)
                except Exception:
                    logger.exception("milvus-operator stand-in: %s of %s/%s failed", *job)
                    self._failures[job] = failures + 1
                    self._schedule(kind, (key[0], key[1]), min(ERROR_RETRY * 2**failures, self.sync_interval))
                self.jobs_done += 1

    async def reconcile(self, namespace: str, name: str) -> None:
        """One pass over one CR (milvus_controller.go `MilvusReconciler.Reconcile`); raises `Requeue` after a
        write of the query-node controller."""
        milvus = await self.api.get(MILVUSES, namespace, name)
        if milvus is None or is_terminating(milvus):
            return
        if (milvus["metadata"].get("annotations") or {}).get(PAUSE_RECONCILE_ANNOTATION) == "true":
            return
        defaulted = with_defaults(milvus)
        if defaulted["spec"] != milvus["spec"]:  # `milvus.Default()`, then `r.Update` when it changed something
            milvus = await self._replace(MILVUSES, defaulted)
        if not (milvus.get("status") or {}).get("status"):  # milvus.go `SetDefaultStatus`
            components = _components(milvus)
            status = {**(milvus.get("status") or {}), "status": "Pending",
                      "rollingModeVersion": components.get("rollingMode"),
                      "currentImage": components.get("image"), "currentVersion": components.get("version")}
            milvus["status"] = {key: value for key, value in status.items() if value is not None}
            milvus = await self._replace(MILVUSES, milvus, subresource="status")
        if milvus["spec"].get("mode") == "cluster":
            await _QueryNodePass(self, milvus).reconcile()
        await self.update_status(milvus)

    async def sync_status(self, namespace: str, name: str) -> None:
        """status_cluster.go `UpdateStatusRoutine`: only once the default status is set and the generation
        observed (otherwise a reconcile is under way)."""
        milvus = await self.api.get(MILVUSES, namespace, name)
        if milvus is None or is_terminating(milvus):
            return
        status = milvus.get("status") or {}
        if status.get("status") and int(status.get("observedGeneration") or 0) >= milvus["metadata"]["generation"]:
            await self.update_status(milvus)

    async def _replace(self, resource: str, obj: Obj, subresource: str | None = None) -> Obj:
        """A PUT (controller-runtime's `Update`); a stale resourceVersion is a `Conflict`, retried soon."""
        try:
            return await self.api.replace(resource, obj, subresource=subresource)
        except ApiStatusError as error:
            if error.status == 409:
                raise Conflict(str(error)) from error
            raise

    async def update_status(self, milvus: Obj) -> None:
        """status_cluster.go `UpdateStatusForNewGeneration`, for the query node (the only component here)."""
        status = copy.deepcopy(milvus.get("status") or {})
        before = copy.deepcopy(status)
        status["observedGeneration"] = milvus["metadata"].get("generation", 0)
        namespace, name = _key(milvus)
        deployments = await self.api.list(DEPLOYMENTS, namespace, label_selector=_selector(selector_labels(name)))
        current = _current_deployment(milvus, deployments)
        deploy_status: Obj | None = None
        if current is not None:  # componentsDeployStatusUpdaterImpl.Update, componentDeployStatus
            container: Obj = next((c for c in current["spec"]["template"]["spec"].get("containers") or []
                                   if c.get("name") == QUERY_NODE), {})
            deploy_status = {"generation": current["metadata"].get("generation", 0),
                             "image": container.get("image", ""), "status": current.get("status") or {}}
            status["componentsDeployStatus"] = {QUERY_NODE: deploy_status}
        else:
            status.pop("componentsDeployStatus", None)
        status["endpoint"] = f"{name}-milvus.{namespace}:19530"  # conditions.go GetMilvusEndpoint (ClusterIP)
        stopping = query_node_replicas(milvus) == 0
        ready = not stopping and deployment_ready(current)
        _update_condition(status, _ready_condition(ready, stopping))
        updated = await self._updated_condition(milvus, deploy_status)
        _update_condition(status, updated)
        if ready and updated["status"] == "True":
            components = _components(milvus)
            status["currentImage"] = components.get("image")
            if components.get("version"):
                status["currentVersion"] = components["version"]
        # MilvusHealthStatusInfo.GetMilvusHealthStatus
        if stopping:
            status["status"] = "Stopped"
        elif ready:
            status["status"] = "Healthy"
        elif status.get("status") in ("Healthy", "Unhealthy"):
            status["status"] = "Unhealthy"
        else:
            status["status"] = "Pending"
        if status != before:
            await self._replace(MILVUSES, {**milvus, "status": status}, subresource="status")

    async def _updated_condition(self, milvus: Obj, deploy_status: Obj | None) -> Obj:
        """status_cluster.go `GetMilvusUpdatedCondition` and `handleTerminatingPods`."""
        components = _components(milvus)
        state = deploy_state(deploy_status or {})
        updating = state not in ("Complete", "Paused") or is_rolling(milvus)
        updating_image = bool(components.get("enableRollingUpdate", True)) and (
            (deploy_status or {}).get("image", "") != components.get("image"))
        mode = components.get("imageUpdateMode", "rollingUpgrade")
        condition = {"type": "MilvusUpdated", "status": "False"}
        if updating_image and mode == "rollingUpgrade":
            condition |= {"reason": "MilvusUpgradingImage",
                          "message": f"Milvus is performing rolling upgrade pending components[{QUERY_NODE}]"}
        elif updating_image and mode == "rollingDowngrade":
            condition |= {"reason": "MilvusDowngradingImage",
                          "message": f"{{Milvus is performing rolling downgrade, pending components[{QUERY_NODE}]}}"}
        elif updating:
            condition |= {"reason": "MilvusComponentsUpdating",
                          "message": f"Milvus components[{QUERY_NODE}] are updating"}
        else:
            condition |= {"status": "True", "reason": "MilvusComponentsUpdated",
                          "message": "Milvus components are all updated"}
        namespace, name = _key(milvus)
        pods = await self.api.list(PODS, namespace, label_selector=_selector({INSTANCE_LABEL: name}))
        if any(is_terminating(pod) for pod in pods):
            condition |= {"status": "False", "reason": "MilvusComponentsUpdating",
                          "message": "Milvus has terminating pods"}
        return condition


class _QueryNodePass:
    """One pass of deploy_ctrl.go `DeployControllerImpl.Reconcile` for the query node of one CR."""

    def __init__(self, owner: MilvusOperatorStandIn, milvus: Obj) -> None:
        self.api = owner.api
        self._replace = owner._replace
        self.min_ready_seconds = owner.min_ready_seconds
        self.milvus = milvus
        self.namespace, self.name = _key(milvus)

    async def reconcile(self) -> None:
        await self.update_rolling_mode_status()
        await self.handle_create()
        if self.paused():
            return
        if _components(self.milvus).get("enableManualMode"):
            return  # HandleManualMode: not modelled (KNOWN_DIFFERENCES)
        if query_node_replicas(self.milvus) == 0:
            await self.handle_stop()
            return
        await self.handle_rolling()
        await self.handle_scaling()

    def paused(self) -> bool:
        """deploy_ctrl.go `IsPaused`."""
        components = _components(self.milvus)
        return bool(components.get("paused") or (components.get("queryNode") or {}).get("paused"))

    async def update_rolling_mode_status(self) -> None:
        """rolling_mode_status_updater.go `Update`: the status takes the spec's rolling mode (two Deployments)."""
        rolling_mode = _components(self.milvus).get("rollingMode")
        status = self.milvus.setdefault("status", {})
        if status.get("rollingModeVersion") != rolling_mode:
            status["rollingModeVersion"] = rolling_mode
            self.milvus = await self._replace(MILVUSES, self.milvus, subresource="status")

    async def get_deploys(self) -> tuple[Obj, Obj]:
        """deploy_ctrl_util.go `GetDeploys`: (current, last); `MissingDeployments` when one is missing."""
        listed = await self.api.list(DEPLOYMENTS, self.namespace, label_selector=_selector(selector_labels(self.name)))
        items = [d for d in listed if _group_id(d)]
        if len(items) > 2:
            raise RuntimeError(f"unexpected: more than 2 querynode deployments found {len(items)}")
        if not items:
            raise MissingDeployments(None)
        current_id = current_group_id(self.milvus)
        current = [d for d in items if _group_id(d) == current_id]
        if len(current) != 1:
            raise RuntimeError("unexpected: no (or more than 1) deployment is for current group id")
        last = [d for d in items if _group_id(d) != current_id]
        if last:
            return current[0], last[0]
        if current_id != "0":
            raise RuntimeError("unexpected: first deployment is not for group 0")
        raise MissingDeployments(current[0])

    async def handle_create(self) -> None:
        """deploy_ctrl.go `HandleCreate`."""
        try:
            await self.get_deploys()
        except MissingDeployments as missing:
            if missing.current is None:
                await self.mark_group_id(0)
                await self.create_deploy(0)  # the pass goes on and fails in GetDeploys: the next creates -1
            else:
                await self.create_deploy(1)

    async def mark_group_id(self, group_id: int) -> None:
        """rollout_util.go `MarkMilvusComponentGroupId`."""
        if current_group_id(self.milvus) == str(group_id):
            return
        _annotations(self.milvus)[CURRENT_GROUP_ANNOTATION] = str(group_id)
        await self.update_and_requeue(MILVUSES, self.milvus)

    async def update_and_requeue(self, resource: str, obj: Obj) -> None:
        """rollout_util.go `UpdateAndRequeue`."""
        await self._replace(resource, obj)
        raise Requeue

    async def create_deploy(self, group_id: int) -> None:
        """deploy_ctrl_util.go `CreateDeploy`: 0 replicas; the second Deployment's image is a dummy."""
        template = render_pod_template(self.milvus, None, True)
        if group_id != 0:
            template["spec"]["containers"][0]["image"] = _components(self.milvus).get("dummyImage") or DUMMY_IMAGE
        labels = {**selector_labels(self.name), GROUP_ID_LABEL: str(group_id)}
        template["metadata"]["labels"] = {**template["metadata"]["labels"], **labels}
        meta = self.milvus["metadata"]
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": deployment_name(self.name, group_id), "namespace": self.namespace, "labels": labels,
                "ownerReferences": [{"apiVersion": "milvus.io/v1beta1", "kind": "Milvus", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {
                "replicas": 0, "selector": {"matchLabels": labels}, "template": template,
                "strategy": deployment_strategy(), "paused": merged_component_spec(self.milvus)["paused"],
                "progressDeadlineSeconds": ONE_MONTH_SECONDS, "minReadySeconds": self.min_ready_seconds,
            },
        }
        await self.api.create(DEPLOYMENTS, deployment)

    async def handle_stop(self) -> None:
        """deploy_ctrl.go `HandleStop`: both Deployments to 0, the rollout marked finished."""
        current, last = await self.get_deploys()
        for deployment in (current, last):
            if deploy_replicas(deployment) != 0:
                deployment["spec"]["replicas"] = 0
                await self._replace(DEPLOYMENTS, deployment)
        if is_rolling(self.milvus):
            _set_rolling(self.milvus, False)
            self.milvus = await self._replace(MILVUSES, self.milvus)

    async def handle_rolling(self) -> None:
        """deploy_ctrl.go `HandleRolling`."""
        current, last = await self.get_deploys()
        template = render_pod_template(self.milvus, current["spec"]["template"], False)
        if not templates_equal(current, template) and templates_equal(last, template):  # ShouldRollback
            await self.prepare_new_rollout(last, template)
        if not await self.last_rollout_finished(current, last):
            return
        if not templates_equal(current, template):  # IsPodTemplateChanged
            target = last if deploy_replicas(current) > 0 else current
            await self.prepare_new_rollout(target, template)

    async def prepare_new_rollout(self, deployment: Obj, template: Obj) -> None:
        """deploy_ctrl_util.go `PrepareNewRollout`: the Deployment takes the template (keeping its group id),
        then the CR names it current and marks the rollout."""
        group_id = _group_id(deployment)
        deployment["spec"]["template"] = copy.deepcopy(template)
        deployment["spec"]["template"]["metadata"]["labels"][GROUP_ID_LABEL] = group_id
        _annotations(deployment)[GENERATION_ANNOTATION] = str(self.milvus["metadata"].get("generation", 0))
        await self._replace(DEPLOYMENTS, deployment)
        _annotations(self.milvus)[CURRENT_GROUP_ANNOTATION] = group_id
        _set_rolling(self.milvus, True)
        await self.update_and_requeue(MILVUSES, self.milvus)

    async def last_rollout_finished(self, current: Obj, last: Obj) -> bool:
        """deploy_ctrl_util.go `LastRolloutFinished`; when it is, the rollout mark is removed (and the pass ends)."""
        if not is_rolling(self.milvus):
            return True
        current_status, last_status = current.get("status") or {}, last.get("status") or {}
        least = 1 if query_node_replicas(self.milvus) < 0 else query_node_replicas(self.milvus)
        finished = (
            least <= deploy_replicas(current)
            and current_status.get("observedGeneration", 0) == current["metadata"].get("generation", 0)
            and last_status.get("observedGeneration", 0) == last["metadata"].get("generation", 0)
            and deploy_replicas(current) == current_status.get("updatedReplicas", 0)
            and current_status.get("updatedReplicas", 0) == current_status.get("replicas", 0)
            and current_status.get("updatedReplicas", 0) == current_status.get("availableReplicas", 0)
            and deploy_replicas(last) == 0
            and last_status.get("replicas", 0) == 0
        )
        if not finished or await self.deploy_pods(last):
            return False
        _set_rolling(self.milvus, False)
        await self.update_and_requeue(MILVUSES, self.milvus)
        return False

    async def deploy_pods(self, deployment: Obj) -> list[Obj]:
        """rollout_util.go `ListDeployPods`: the pods of its selector, evicted ones left out."""
        pods = await self.api.list(PODS, self.namespace,
                                   label_selector=_selector(deployment["spec"]["selector"]["matchLabels"]))
        return [pod for pod in pods if (pod.get("status") or {}).get("reason") != "Evicted"]

    async def handle_scaling(self) -> None:
        """deploy_ctrl.go `HandleScaling` -> deploy_ctrl_util.go `ScaleDeployments`."""
        current, last = await self.get_deploys()
        await self.mark_group_id(int(_group_id(current)))
        expected = query_node_replicas(self.milvus)
        if expected < 0:
            deployment, change = self.plan_for_hpa(current, last)
        elif deploy_replicas(last) > 0:
            for deployment in (last, current):  # checkCanScaleNow -> checkDeploymentsStable
                stable, reason = deployment_is_stable(deployment, await self.deploy_pods(deployment))
                if not stable:
                    logger.debug("milvus-operator stand-in: %s is not stable (%s)", deployment["metadata"]["name"],
                                 reason)
                    raise Requeue
            deployment, change = plan_for_rollout(expected, current, last)
        else:
            deployment, change = plan_for_normal_state(expected, current)
        if change == 0:
            return
        deployment["spec"]["replicas"] = deploy_replicas(deployment) + change  # doScaleAction
        deployment["spec"]["strategy"] = deployment_strategy()
        await self.update_and_requeue(DEPLOYMENTS, deployment)

    def plan_for_hpa(self, current: Obj, last: Obj) -> tuple[Obj, int]:
        """deploy_ctrl_util.go `planScaleForHPA`: the HPA scales the current Deployment; the stand-in only
        starts it at 1, keeps it at least at the last one's size and empties the last one once enough are ready."""
        current_replicas, last_replicas = deploy_replicas(current), deploy_replicas(last)
        if current_replicas == 0 and last_replicas == 0:
            return current, 1
        if current_replicas < last_replicas:
            return current, last_replicas - current_replicas
        ready = int((current.get("status") or {}).get("readyReplicas") or 0)
        if is_rolling(self.milvus) and last_replicas > 0 and ready >= last_replicas:
            return last, -last_replicas
        return current, 0


def plan_for_normal_state(expected: int, current: Obj) -> tuple[Obj, int]:
    """deploy_ctrl_util.go `planScaleForNormalState`: scale in one by one, scale out at the biggest step."""
    replicas = deploy_replicas(current)
    if replicas > expected:
        return current, -1
    return current, expected - replicas


def plan_for_rollout(expected: int, current: Obj, last: Obj) -> tuple[Obj, int]:
    """deploy_ctrl_util.go `planScaleForRollout`."""
    current_replicas, last_replicas = deploy_replicas(current), deploy_replicas(last)
    total = current_replicas + last_replicas
    if _limits(current) == _limits(last):  # compareDeployResourceLimitEqual
        if total > expected:
            return (last, -1) if last_replicas > 0 else (current, 0)  # no scale-in during a rollout
        if total == expected:
            return (current, 0) if last_replicas == 0 else (current, 1)
        return current, expected - total
    # Limits changed: the new Deployment grows to max(expected, last) first, so the old one's data fits.
    if last_replicas > 0:
        if current_replicas < last_replicas or current_replicas < expected:
            return current, max(expected, last_replicas) - current_replicas
        return last, -1
    if current_replicas > expected:
        return current, -1
    return current, expected - current_replicas


def deployment_strategy() -> Obj:
    """components.go `GetDeploymentStrategy` for a node: rolling update, maxUnavailable 0, maxSurge 1."""
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def _ready_condition(ready: bool, stopping: bool) -> Obj:
    """component_condition.go `GetMilvusInstanceCondition` (the query node only) and `getStoppingCondition`."""
    if stopping:
        return {"type": "MilvusReady", "status": "False", "reason": "MilvusStopping",
                "message": "Milvus is stopping"}
    if ready:
        return {"type": "MilvusReady", "status": "True", "reason": "ReasonMilvusHealthy",
                "message": "All Milvus components are healthy"}
    return {"type": "MilvusReady", "status": "False", "reason": "MilvusComponentNotHealthy",
            "message": f"[{QUERY_NODE}] not ready"}


def _update_condition(status: Obj, condition: Obj) -> None:
    """utils.go `UpdateCondition`: a changed status, reason or message gets a new lastTransitionTime."""
    conditions = status.setdefault("conditions", [])
    for existing in conditions:
        if existing.get("type") == condition["type"]:
            if any(existing.get(k) != condition.get(k) for k in ("status", "reason", "message")):
                existing.update(condition, lastTransitionTime=now_rfc3339())
            return
    conditions.append({**condition, "lastTransitionTime": now_rfc3339()})


def _current_deployment(milvus: Obj, deployments: list[Obj]) -> Obj | None:
    """conditions.go `makeWorkloadDeploymentMap`: the Deployment of the current group, controlled by the CR;
    while a rollout runs its Progressing condition reads False, reason Rolling."""
    uid = milvus["metadata"].get("uid")
    group = current_group_id(milvus)
    for deployment in sorted(deployments, key=lambda d: str(d["metadata"]["name"])):
        owners = deployment["metadata"].get("ownerReferences") or []
        if not any(ref.get("uid") == uid and ref.get("controller") for ref in owners):
            continue
        if group and _group_id(deployment) != group:
            continue
        deployment = copy.deepcopy(deployment)
        if is_rolling(milvus):
            status = deployment.setdefault("status", {})
            rolling = {"type": "Progressing", "status": "False", "reason": "Rolling",
                       "message": f"rolling id {milvus['metadata']['labels'][ROLLING_ID_LABEL]}"}
            status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "Progressing"]
            status["conditions"].append(rolling)
        return deployment
    return None


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace") or "default"), str(meta["name"])


async def install_crd(api: KubeRestClient, timeout: float = 30.0) -> None:
    """Create the `Milvus` CRD unless it exists, and wait until the API serves it."""
    crd = milvus_crd()
    try:
        await api.create(CRDS, crd)
    except ApiStatusError as error:
        if error.status != 409:
            raise
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await api.list_object(MILVUSES)
            return
        except ApiStatusError as error:  # not served yet (404), or its storage still starting (429, 503)
            if error.status not in (404, 429, 503) or loop.time() > deadline:
                raise
        await asyncio.sleep(0.05)  # a new CRD is served a moment later; nothing to wait on but a retry
