"""The object store behind the sandbox API server: versions, generations, events, deletion, GC.

All state changes are synchronous (no `await` inside), so every change is atomic for the event loop;
the async methods of :class:`ObjectStore` are the in-process API used by the sandbox's emulators.
Stored objects are never mutated in place (each change stores a new dict), so history entries can
share them; everything handed out is a deep copy. Internal reads (comparisons, validation's old object)
use `_view`, which copies nothing: the store's hot paths make one copy in and one copy out per write.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import re
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .builtin_validation import builtin_errors
from .crd_validation import FieldError, validate_custom_resource
from .defaults import apply_defaults
from .errors import ApiError, already_exists, conflict, not_found
from .patching import json_patch, merge_patch
from .resources import ResourceRegistry, ResourceType, resources_from_crd
from .selectors import Predicate, format_label_selector, parse_label_selector

Obj = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace or "", name)

DEFAULT_POD_GRACE_PERIOD_SECONDS = 30
INITIAL_STATUS = {"v1/pods": {"phase": "Pending"}, "v1/namespaces": {"phase": "Active"}}
# A pod created with scheduling gates (k8s.io/kubernetes v1.37.2 pkg/registry/core/pod/strategy.go
# `applySchedulingGatedCondition`).
SCHEDULING_GATED = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                    "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# The characters of generated names and hashes (k8s.io/apimachinery `pkg/util/rand` `alphanums`: no vowels, no
# 0/1/3, so that no words appear) and the length of a generated suffix (`names.SimpleNameGenerator`).
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX_LENGTH = 5
MAX_GENERATED_NAME_LENGTH = 63 - GENERATED_SUFFIX_LENGTH
# kube-apiserver tries a generated name this many times before it answers 409 (RetryGenerateName, GA in 1.32).
GENERATE_NAME_ATTEMPTS = 8
# Deployments: annotation changes bump the generation (they are copied to the ReplicaSets) and the status
# subresource may write annotations (the revision), k8s.io/kubernetes v1.37.2 `pkg/registry/apps/deployment/
# strategy.go` `deploymentStrategy.PrepareForUpdate`, `deploymentStatusStrategy.PrepareForUpdate`.
ANNOTATED_GENERATION = frozenset({"apps/deployments"})

CRD_KEY = "apiextensions.k8s.io/v1/customresourcedefinitions"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def now_rfc3339(offset_seconds: int = 0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_metadata_and_status(obj: Obj) -> Obj:
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


def _path_tokens(json_path: str) -> list[str]:
    return [token for token in json_path.strip(".").split(".") if token]


def _get_path(obj: Obj, json_path: str) -> Any:
    value: Any = obj
    for token in _path_tokens(json_path):
        value = value.get(token) if isinstance(value, dict) else None
    return value


def _set_path(obj: Obj, json_path: str, value: Any) -> None:
    *parents, last = _path_tokens(json_path)
    node = obj
    for token in parents:
        node = node.setdefault(token, {})
    node[last] = value


def _invalid(resource: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    messages = [error.message() for error in errors]
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return ApiError(
        422,
        f'{resource.qualified_kind} "{name}" is invalid: {summary}',
        details={
            "name": name,
            "group": resource.group,
            "kind": resource.kind,
            "causes": [
                {"reason": error.reason, "message": error.body(), "field": error.field}
                for error in errors
            ],
        },
    )


@dataclass(frozen=True)
class WatchEvent:
    revision: int
    storage_key: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class Subscription:
    """One watcher: the events it may see, queued until it reads them (None = closed)."""

    resource: ResourceType
    namespace: str | None
    matches: Predicate
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)

    def offer(self, event: WatchEvent) -> None:
        if event.storage_key != self.resource.storage_key:
            return
        if self.namespace is not None and event.obj["metadata"].get("namespace") != self.namespace:
            return
        # A selector-filtered watch sees objects enter (ADDED) and leave (DELETED) its selection.
        now_matches = self.matches(event.obj)
        was_matching = event.old is not None and self.matches(event.old)
        if event.type == "MODIFIED" and now_matches != was_matching:
            event_type = "ADDED" if now_matches else "DELETED"
        elif now_matches:
            event_type = event.type
        else:
            return
        self.queue.put_nowait((event_type, render(self.resource, event.obj)))


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster than `copy.deepcopy`;
    anything else falls back to it."""
    kind = type(value)
    if kind is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if kind is list:
        return [copy_json(item) for item in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value)


def render(resource: ResourceType, obj: Obj) -> Obj:
    """A deep copy of a stored object as the given resource version presents it."""
    body = {key: copy_json(value) for key, value in obj.items() if key not in ("apiVersion", "kind")}
    return {"apiVersion": resource.api_version, "kind": resource.kind, **body}


def _view(resource: ResourceType, obj: Obj) -> Obj:
    """The object as `render` presents it, sharing the stored values: read it, never change or hand it out."""
    return {"apiVersion": resource.api_version, "kind": resource.kind,
            **{key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}}


class ObjectStore:
    """In-memory objects of every served resource, with one global resourceVersion sequence."""

    def __init__(self, history_limit: int = 2000) -> None:
        self.registry = ResourceRegistry()
        self._objects: dict[str, dict[ObjectKey, Obj]] = {}
        self._revision = 0
        self._history: deque[WatchEvent] = deque(maxlen=history_limit)
        self._oldest_resumable_revision = 0
        self._subscriptions: set[Subscription] = set()
        self.create_object(self.resource("v1/namespaces"), None, {"metadata": {"name": "default"}})

    # ----- lookups -----

    def resource(self, key: str) -> ResourceType:
        resource = self.registry.by_key(key)
        if resource is None:
            raise ApiError(404, f"the server could not find the requested resource ({key})")
        return resource

    @property
    def revision(self) -> int:
        return self._revision

    def _bucket(self, resource: ResourceType) -> dict[ObjectKey, Obj]:
        return self._objects.setdefault(resource.storage_key, {})

    def _key(self, resource: ResourceType, namespace: str | None, name: str) -> ObjectKey:
        return ((namespace or "") if resource.namespaced else "", name)

    def _stored(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._bucket(resource).get(self._key(resource, namespace, name))
        if obj is None:
            raise not_found(resource.group, resource.plural, name)
        return obj

    def get_object(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        return render(resource, self._stored(resource, namespace, name))

    def list_objects(self, resource: ResourceType, namespace: str | None, matches: Predicate) -> list[Obj]:
        return [
            render(resource, obj)
            for (obj_namespace, _), obj in sorted(self._bucket(resource).items())
            if (namespace is None or not resource.namespaced or obj_namespace == namespace) and matches(obj)
        ]

    # ----- writes -----

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _emit(self, resource: ResourceType, event_type: str, obj: Obj, old: Obj | None) -> None:
        if self._history.maxlen is not None and len(self._history) == self._history.maxlen:
            self._oldest_resumable_revision = self._history[0].revision
        event = WatchEvent(int(obj["metadata"]["resourceVersion"]), resource.storage_key, event_type, obj, old)
        self._history.append(event)
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    def _validated(self, resource: ResourceType, obj: Obj, old: Obj | None, strict: bool) -> Obj:
        """A copy of `obj` (as `render` presents it, defaulted and pruned for custom resources), refused
        if invalid; `obj` and `old` are only read."""
        name = obj["metadata"].get("name", "")
        if resource.schema is not None:
            obj, errors = validate_custom_resource(resource.schema, obj, old, strict=strict)
            if errors:
                raise _invalid(resource, name, errors)
        else:
            obj = render(resource, obj)
            apply_defaults(resource.storage_key, obj)
            errors = builtin_errors(resource.storage_key, obj, old)
            if errors:
                raise _invalid(resource, name, errors)
        if resource.key == CRD_KEY:
            _check_crd(resource, obj)
        return obj

    def create_object(
        self, resource: ResourceType, namespace: str | None, body: Obj, *, dry_run: bool = False,
        strict: bool = False,
    ) -> Obj:
        obj = dict(body)  # shallow: only top-level keys and metadata change here; `_validated` copies the rest
        metadata = obj["metadata"] = dict(obj.get("metadata") or {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = self._generated_name(resource, namespace or metadata.get("namespace"),
                                                    str(metadata["generateName"]))
        name = metadata.get("name") or ""
        if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            raise _invalid(resource, name, [FieldError("metadata.name", "FieldValueInvalid", name,
                                                       "a lowercase RFC 1123 subdomain must consist of lower "
                                                       "case alphanumeric characters, '-' or '.'")])
        if resource.namespaced:
            namespace = namespace or metadata.get("namespace") or "default"
            if metadata.get("namespace", namespace) != namespace:
                raise ApiError(400, "the namespace of the provided object does not match the namespace "
                                    "sent on the request")
            if ("", namespace) not in self._bucket(self.resource("v1/namespaces")):
                raise not_found("", "namespaces", namespace)
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        key = self._key(resource, namespace, name)
        if key in self._bucket(resource):
            raise already_exists(resource.group, resource.plural, name)
        if resource.has_status:
            obj.pop("status", None)  # the status subresource owns it
            if resource.key in INITIAL_STATUS:
                obj["status"] = copy.deepcopy(INITIAL_STATUS[resource.key])
            if resource.key == "v1/pods" and (obj.get("spec") or {}).get("schedulingGates"):
                obj["status"]["conditions"] = [{**SCHEDULING_GATED, "lastTransitionTime": now_rfc3339()}]
        for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(transient, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        metadata["generation"] = 1
        obj = self._validated(resource, obj, None, strict)
        if resource.key == CRD_KEY:
            obj["status"] = _crd_status(obj)
        if dry_run:
            return render(resource, obj)
        obj["metadata"]["resourceVersion"] = self._next_revision()
        self._bucket(resource)[key] = obj
        self._emit(resource, "ADDED", obj, None)
        self._after_commit(resource, obj, None)
        return render(resource, obj)

    def _generated_name(self, resource: ResourceType, namespace: str | None, prefix: str) -> str:
        """`prefix` (cut to 58 characters) and 5 random characters, a name not taken if one is found in a few
        tries (k8s.io/apiserver `pkg/storage/names/generate.go` `simpleNameGenerator.GenerateName`)."""
        base = prefix[:MAX_GENERATED_NAME_LENGTH]
        bucket = self._bucket(resource)
        for _ in range(GENERATE_NAME_ATTEMPTS):
            name = base + "".join(secrets.choice(ALPHANUMS) for _ in range(GENERATED_SUFFIX_LENGTH))
            if self._key(resource, namespace or "default", name) not in bucket:
                break
        return name

    def update_object(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        change: Callable[[Obj], Obj],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
        change_copies: bool = False,
    ) -> Obj:
        """Apply `change` (a replace or a patch) to the current object, keeping API invariants.
        `change_copies`: `change` returns a new object and never changes its argument (a merge patch), so it
        may read the stored object itself."""
        if subresource == "status" and not resource.has_status:
            raise not_found(resource.group, f"{resource.plural}/status", name)
        current = self._stored(resource, namespace, name)
        candidate = change(_view(resource, current) if change_copies else render(resource, current))
        if not isinstance(candidate, dict):
            raise ApiError(400, "the object must be a JSON object")
        candidate_metadata = candidate.get("metadata") or {}
        requested_revision = candidate_metadata.get("resourceVersion")
        if requested_revision and requested_revision != current["metadata"]["resourceVersion"]:
            raise conflict(resource.group, resource.plural, name)
        # `new` may share values with `current` (both only read here): `_validated` copies it below.
        if subresource == "status":
            new = dict(current)
            new["metadata"] = dict(current["metadata"])
            if resource.storage_key in ANNOTATED_GENERATION:
                new["metadata"]["annotations"] = candidate_metadata.get("annotations")
                if new["metadata"]["annotations"] is None:
                    new["metadata"].pop("annotations")
            new["status"] = candidate.get("status")
            if new["status"] is None:
                new.pop("status")
        else:
            new = candidate
            new["metadata"] = dict(candidate_metadata)
            if resource.has_status:
                if "status" in current:
                    new["status"] = current["status"]
                else:
                    new.pop("status", None)
        metadata = new["metadata"]
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation", "resourceVersion"):
            if immutable in current["metadata"]:
                metadata[immutable] = current["metadata"][immutable]
            else:
                metadata.pop(immutable, None)
        old = _view(resource, current)
        new = self._validated(resource, new, old, strict)
        if resource.key == CRD_KEY:
            new["status"] = _crd_status(new)
        if new == old:
            return render(resource, current)  # a no-op write changes nothing, as in Kubernetes
        if _without_metadata_and_status(new) != _without_metadata_and_status(old) or (
            resource.storage_key in ANNOTATED_GENERATION and subresource != "status"
            and new["metadata"].get("annotations") != old["metadata"].get("annotations")
        ):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if dry_run:
            return render(resource, new)
        return self._commit_update(resource, current, new)

    def _commit_update(self, resource: ResourceType, current: Obj, new: Obj) -> Obj:
        new["metadata"]["resourceVersion"] = self._next_revision()
        self._bucket(resource)[self._key(resource, new["metadata"].get("namespace"), new["metadata"]["name"])] = new
        self._emit(resource, "MODIFIED", new, current)
        self._after_commit(resource, new, current)
        metadata = new["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers") and (
            resource.key != "v1/pods" or metadata.get("deletionGracePeriodSeconds") == 0
        ):
            self._remove(resource, new)
        return render(resource, new)

    def patch_object(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
    ) -> Obj:
        if content_type == JSON_PATCH:
            def change(current: Obj) -> Obj:
                patched: Obj = json_patch(current, patch)
                return patched
        elif content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if not isinstance(patch, dict):
                raise ApiError(400, "a merge patch must be a JSON object")

            def change(current: Obj) -> Obj:
                patched: Obj = merge_patch(current, patch)
                return patched
        else:
            raise ApiError(415, f"the media type {content_type!r} is not supported for PATCH")
        return self.update_object(resource, namespace, name, change, subresource=subresource,
                                  dry_run=dry_run, strict=strict, change_copies=content_type != JSON_PATCH)

    def delete_object(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        orphan_dependents: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        current = self._stored(resource, namespace, name)
        metadata = current["metadata"]
        is_pod = resource.key == "v1/pods"
        if is_pod:
            if grace_period_seconds is None:
                grace_period_seconds = (current.get("spec") or {}).get(
                    "terminationGracePeriodSeconds", DEFAULT_POD_GRACE_PERIOD_SECONDS)
        else:
            grace_period_seconds = 0
        if dry_run:
            return render(resource, current)
        if metadata.get("deletionTimestamp"):
            if is_pod and grace_period_seconds == 0 and metadata.get("deletionGracePeriodSeconds") != 0:
                return self._mark_deleting(resource, current, 0)
            return render(resource, current)
        if metadata.get("finalizers") or (is_pod and grace_period_seconds > 0):
            return self._mark_deleting(resource, current, grace_period_seconds)
        self._remove(resource, current, orphan_dependents=orphan_dependents)
        return render(resource, current)

    def _mark_deleting(self, resource: ResourceType, current: Obj, grace_period_seconds: int) -> Obj:
        new = copy.deepcopy(current)
        metadata = new["metadata"]
        metadata.setdefault("deletionTimestamp", now_rfc3339(grace_period_seconds))
        metadata["deletionGracePeriodSeconds"] = grace_period_seconds
        metadata["generation"] = metadata.get("generation", 1) + 1
        return self._commit_update(resource, current, new)

    def purge_object(self, resource: ResourceType, namespace: str | None, name: str) -> None:
        """The kubelet is done with a terminating pod: it goes now (or when its finalizers are gone)."""
        current = self._stored(resource, namespace, name)
        if current["metadata"].get("finalizers"):
            self._mark_deleting(resource, current, 0)
        else:
            self._remove(resource, current)

    def _remove(self, resource: ResourceType, obj: Obj, *, orphan_dependents: bool = False) -> None:
        metadata = obj["metadata"]
        del self._bucket(resource)[self._key(resource, metadata.get("namespace"), metadata["name"])]
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_revision()
        self._emit(resource, "DELETED", gone, None)
        if resource.key == CRD_KEY:
            self._stop_serving_crd(obj)
        if not orphan_dependents:
            self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Background cascading deletion: dependents whose owners are all gone are deleted."""
        live_uids = {obj["metadata"]["uid"] for bucket in self._objects.values() for obj in bucket.values()}
        for resource in self.registry.all():
            if resource.storage_key not in self._objects:
                continue
            bucket = self._bucket(resource)
            for key, obj in list(bucket.items()):
                owners = obj["metadata"].get("ownerReferences") or []
                orphaned = owners and not any(owner.get("uid") in live_uids for owner in owners)
                # a nested collection may already have removed it, hence the fresh look-up
                if orphaned and key in bucket and not bucket[key]["metadata"].get("deletionTimestamp"):
                    self.delete_object(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])

    # ----- custom resource definitions -----

    def _after_commit(self, resource: ResourceType, obj: Obj, old: Obj | None) -> None:
        if resource.key == CRD_KEY:
            if old is not None:
                self.registry.remove_crd(old["metadata"]["name"])
            for custom in resources_from_crd(obj):
                self.registry.add(custom)

    def _stop_serving_crd(self, crd: Obj) -> None:
        removed = self.registry.remove_crd(crd["metadata"]["name"])
        if removed:
            for obj in list(self._objects.pop(removed[0].storage_key, {}).values()):
                gone = copy.deepcopy(obj)
                gone["metadata"]["resourceVersion"] = self._next_revision()
                self._emit(removed[0], "DELETED", gone, None)

    # ----- scale subresource -----

    def get_scale(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        if resource.scale is None:
            raise not_found(resource.group, f"{resource.plural}/scale", name)
        obj = self._stored(resource, namespace, name)
        if resource.scale.label_selector is not None:
            selector = _get_path(obj, resource.scale.label_selector) or ""
        else:
            selector = format_label_selector(_get_path(obj, ".spec.selector"))
        metadata = obj["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {key: metadata[key] for key in ("name", "namespace", "uid", "resourceVersion",
                                                        "creationTimestamp") if key in metadata},
            "spec": {"replicas": _get_path(obj, resource.scale.spec_replicas) or 0},
            "status": {"replicas": _get_path(obj, resource.scale.status_replicas) or 0, "selector": selector},
        }

    def update_scale(
        self, resource: ResourceType, namespace: str | None, name: str, change: Callable[[Obj], Obj],
        *, dry_run: bool = False,
    ) -> Obj:
        scale = change(self.get_scale(resource, namespace, name))
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise _invalid(resource, name, [FieldError("spec.replicas", "FieldValueInvalid", replicas,
                                                       "must be greater than or equal to 0")])
        paths = resource.scale
        assert paths is not None  # get_scale() answered, so the resource has a scale subresource

        def set_replicas(current: Obj) -> Obj:
            current["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get("resourceVersion")
            _set_path(current, paths.spec_replicas, replicas)
            return current

        updated = self.update_object(resource, namespace, name, set_replicas, dry_run=dry_run)
        if dry_run:
            return scale
        return self.get_scale(resource, updated["metadata"].get("namespace"), name)

    # ----- watching -----

    def subscribe(
        self, resource: ResourceType, namespace: str | None, matches: Predicate, since_revision: int | None,
    ) -> Subscription:
        """Start a watch: current objects as ADDED (no revision) or the changes after `since_revision`."""
        subscription = Subscription(resource, namespace, matches)
        if since_revision is None:
            for obj in self.list_objects(resource, namespace, matches):
                subscription.queue.put_nowait(("ADDED", obj))
        else:
            if since_revision < self._oldest_resumable_revision:
                raise ApiError(
                    410,
                    f"too old resource version: {since_revision} ({self._oldest_resumable_revision})",
                    reason="Expired",
                )
            for event in self._history:
                if event.revision > since_revision:
                    subscription.offer(event)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close_watches(self) -> None:
        for subscription in self._subscriptions:
            subscription.queue.put_nowait(None)
        self._subscriptions.clear()

    # ----- the in-process async API (used by the sandbox's emulators) -----

    async def create(self, resource: str, obj: Obj) -> Obj:
        return self.create_object(self.resource(resource), obj.get("metadata", {}).get("namespace"), obj)

    async def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.get_object(self.resource(resource), namespace, name)
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    async def list(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None,
    ) -> list[Obj]:
        return self.list_objects(self.resource(resource), namespace, parse_label_selector(label_selector))

    async def patch(
        self, resource: str, namespace: str | None, name: str, patch: Obj, subresource: str | None = None,
    ) -> Obj:
        """Apply a JSON merge patch to the object or to its `status` subresource."""
        return self.patch_object(self.resource(resource), namespace, name, patch, MERGE_PATCH,
                                 subresource=subresource)

    async def delete(self, resource: str, namespace: str | None, name: str) -> None:
        self.delete_object(self.resource(resource), namespace, name)

    async def purge(self, resource: str, namespace: str | None, name: str) -> None:
        self.purge_object(self.resource(resource), namespace, name)

    async def watch(self, resource: str, namespace: str | None = None, *,
                    with_current: bool = False) -> AsyncIterator[tuple[str, Obj]]:
        """Changes as (event type, object) from the first iteration on; ends when the server stops.
        `with_current`: first every current object as ADDED (a list and a watch in one step, no gap)."""
        subscription = self.subscribe(self.resource(resource), namespace, parse_label_selector(None),
                                      None if with_current else self._revision)
        try:
            while (event := await subscription.queue.get()) is not None:
                yield event
        finally:
            self.unsubscribe(subscription)


def _check_crd(resource: ResourceType, crd: Obj) -> None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    errors = [
        FieldError(path, "FieldValueRequired", None, "Required value")
        for path, value in (("spec.group", spec.get("group")), ("spec.names.plural", names.get("plural")),
                            ("spec.names.kind", names.get("kind")), ("spec.versions", spec.get("versions")))
        if not value
    ]
    expected_name = f"{names.get('plural')}.{spec.get('group')}"
    if not errors and crd["metadata"]["name"] != expected_name:
        errors.append(FieldError("metadata.name", "FieldValueInvalid", crd["metadata"]["name"],
                                 f"must be spec.names.plural+\".\"+spec.group ({expected_name})"))
    if errors:
        raise _invalid(resource, crd["metadata"]["name"], errors)


def _crd_status(crd: Obj) -> Obj:
    names = crd["spec"]["names"]
    accepted = {"plural": names["plural"], "kind": names["kind"],
                "singular": names.get("singular", names["kind"].lower()),
                "listKind": names.get("listKind", names["kind"] + "List")}
    for optional in ("shortNames", "categories"):
        if names.get(optional):
            accepted[optional] = names[optional]
    stamp = (crd.get("status") or {}).get("conditions", [{}])[0].get("lastTransitionTime") or now_rfc3339()
    return {
        "acceptedNames": accepted,
        "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage", True)],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": stamp},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": stamp},
        ],
    }
