"""The sandbox Kubernetes API server through the real kubernetes client and raw HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from milvus_rg_sandbox.kube import KubeApiServer
from tests.support import wait_for as eventually

from .kube_helpers import (
    SYSTEM_NAMES,
    WIDGET_SCHEMA,
    api_client,
    crd_manifest,
    current_version,
    http,
    is_real,
    kube,
    open_watch,
    ours,
    wait_established,
    wait_for,
)

__all__ = ["http", "kube"]  # fixtures imported for pytest

MERGE = {"Content-Type": "application/merge-patch+json"}


def statefulset(name: str, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
        **extra,
    }


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec},
    }


async def test_metadata_is_filled_and_versions_are_global(kube: KubeApiServer) -> None:
    core = client.CoreV1Api(api_client(kube))
    first = await asyncio.to_thread(
        core.create_namespaced_config_map, "default", {"metadata": {"name": "a"}, "data": {"k": "1"}})
    second = await asyncio.to_thread(
        core.create_namespaced_config_map, "default", {"metadata": {"name": "b"}})
    assert first.metadata.uid and first.metadata.uid != second.metadata.uid
    assert first.metadata.creation_timestamp is not None
    assert first.metadata.namespace == "default"
    # Known difference: the real API server keeps no generation for kinds without a spec (ConfigMaps).
    assert first.metadata.generation == (None if is_real(kube) else 1)
    assert first.kind == "ConfigMap" and first.api_version == "v1"
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)

    relabelled = await asyncio.to_thread(
        core.patch_namespaced_config_map, "a", "default", {"metadata": {"labels": {"x": "y"}}})
    assert relabelled.metadata.generation == (None if is_real(kube) else 1)  # metadata does not bump it
    assert int(relabelled.metadata.resource_version) > int(second.metadata.resource_version)
    changed = await asyncio.to_thread(core.patch_namespaced_config_map, "a", "default", {"data": {"k": "2"}})
    assert changed.metadata.generation == (None if is_real(kube) else 2)
    unchanged = await asyncio.to_thread(core.patch_namespaced_config_map, "a", "default", {"data": {"k": "2"}})
    assert unchanged.metadata.resource_version == changed.metadata.resource_version  # a no-op write


async def test_generate_name_and_missing_namespace(kube: KubeApiServer) -> None:
    core = client.CoreV1Api(api_client(kube))
    created = await asyncio.to_thread(
        core.create_namespaced_config_map, "default", {"metadata": {"generateName": "cm-"}})
    assert created.metadata.name.startswith("cm-") and len(created.metadata.name) == 8
    with pytest.raises(ApiException) as error:
        await asyncio.to_thread(core.create_namespaced_config_map, "nowhere", {"metadata": {"name": "a"}})
    assert error.value.status == 404


async def test_typed_lists_namespaced_and_across_namespaces(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    await kube.store.create("v1/namespaces", {"metadata": {"name": "other"}})
    await kube.store.create("v1/configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    await kube.store.create("v1/configmaps", {"metadata": {"name": "b", "namespace": "other"}})
    async with http.get("/api/v1/namespaces/other/configmaps") as response:
        listing = await response.json()
    assert listing["kind"] == "ConfigMapList" and listing["apiVersion"] == "v1"
    if not is_real(kube):
        assert listing["metadata"]["resourceVersion"] == str(kube.store.revision)
    # Items of a typed list carry no kind/apiVersion (the list does), as kube-apiserver answers.
    assert [(i.get("kind"), i.get("apiVersion"), i["metadata"]["name"]) for i in listing["items"]
            if i["metadata"]["name"] not in SYSTEM_NAMES] == [(None, None, "b")]
    core = client.CoreV1Api(api_client(kube))
    everywhere = await asyncio.to_thread(core.list_config_map_for_all_namespaces)
    assert ours(sorted(item.metadata.name for item in everywhere.items)) == ["a", "b"]
    namespaces = await asyncio.to_thread(core.list_namespace)
    assert ours(sorted(ns.metadata.name for ns in namespaces.items)) == ["default", "other"]


async def test_put_replaces_and_stale_versions_conflict(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    core = client.CoreV1Api(api_client(kube))
    created = await asyncio.to_thread(
        core.create_namespaced_config_map, "default", {"metadata": {"name": "a"}, "data": {"k": "1", "j": "2"}})
    replaced = await asyncio.to_thread(core.replace_namespaced_config_map, "a", "default", {
        "metadata": {"name": "a", "resourceVersion": created.metadata.resource_version}, "data": {"k": "3"}})
    assert replaced.data == {"k": "3"}
    assert replaced.metadata.uid == created.metadata.uid
    with pytest.raises(ApiException) as error:
        await asyncio.to_thread(core.replace_namespaced_config_map, "a", "default", {
            "metadata": {"name": "a", "resourceVersion": created.metadata.resource_version}, "data": {}})
    assert error.value.status == 409
    stale_patch = {"metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"k": "4"}}
    async with http.patch("/api/v1/namespaces/default/configmaps/a", json=stale_patch, headers=MERGE) as response:
        assert response.status == 409
        assert (await response.json())["reason"] == "Conflict"
    with pytest.raises(ApiException) as error:
        await asyncio.to_thread(core.create_namespaced_config_map, "default", {"metadata": {"name": "a"}})
    assert error.value.status == 409 and "AlreadyExists" in str(error.value.body)


@pytest.mark.parametrize(
    ("content_type", "patch"),
    [
        ("application/merge-patch+json", {"data": {"k": None, "n": "2"}}),
        ("application/strategic-merge-patch+json", {"data": {"k": None, "n": "2"}}),
        ("application/json-patch+json", [{"op": "remove", "path": "/data/k"},
                                         {"op": "add", "path": "/data/n", "value": "2"}]),
    ],
)
async def test_patch_content_types(
    kube: KubeApiServer, http: aiohttp.ClientSession, content_type: str, patch: Any,
) -> None:
    await kube.store.create("v1/configmaps", {"metadata": {"name": "a", "namespace": "default"},
                                              "data": {"k": "1", "m": "1"}})
    async with http.patch("/api/v1/namespaces/default/configmaps/a", json=patch,
                          headers={"Content-Type": content_type}) as response:
        assert response.status == 200
        assert (await response.json())["data"] == {"m": "1", "n": "2"}


async def test_not_found_and_invalid_are_status_bodies(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/namespaces/default/pods/ghost") as response:
        body = await response.json()
    assert response.status == 404
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", "NotFound", 404)
    async with http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "Bad_Name"}}) as rsp:
        body = await rsp.json()
    assert rsp.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


async def test_status_subresource_is_kept_apart(kube: KubeApiServer) -> None:
    apps = client.AppsV1Api(api_client(kube))
    created = await asyncio.to_thread(
        apps.create_namespaced_stateful_set, "default", statefulset("qn", status={"replicas": 5}))
    # (On a real cluster the StatefulSet controller writes the status meanwhile: compare with what we sent.)
    assert created.status is None or created.status.replicas != 5  # status is not set on create
    ignored = await asyncio.to_thread(
        apps.patch_namespaced_stateful_set, "qn", "default", {"status": {"replicas": 7}})
    assert ignored.status is None or ignored.status.replicas != 7
    status = await asyncio.to_thread(apps.patch_namespaced_stateful_set_status, "qn", "default",
                                     {"spec": {"replicas": 9}, "status": {"replicas": 2}})
    assert status.status.replicas == 2
    assert status.spec.replicas == 1 and status.metadata.generation == 1
    spec = await asyncio.to_thread(apps.patch_namespaced_stateful_set, "qn", "default", {"spec": {"replicas": 4}})
    assert spec.spec.replicas == 4 and spec.metadata.generation == 2
    assert is_real(kube) or spec.status.replicas == 2


async def test_scale_subresource_of_a_statefulset(kube: KubeApiServer) -> None:
    apps = client.AppsV1Api(api_client(kube))
    await asyncio.to_thread(apps.create_namespaced_stateful_set, "default", statefulset("qn", replicas=2))
    await asyncio.to_thread(apps.patch_namespaced_stateful_set_status, "qn", "default", {"status": {"replicas": 2}})

    async def scale_showing_two_replicas() -> Any:
        # On a real cluster the StatefulSet controller owns the status: it says 2 once it has made both pods.
        found = await asyncio.to_thread(apps.read_namespaced_stateful_set_scale, "qn", "default")
        return found if found.status.replicas == 2 else None

    scale = await eventually(scale_showing_two_replicas, timeout=20, message="the scale's status.replicas == 2")
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=qn")
    scaled = await asyncio.to_thread(
        apps.patch_namespaced_stateful_set_scale, "qn", "default", {"spec": {"replicas": 3}})
    assert scaled.spec.replicas == 3
    current = await asyncio.to_thread(apps.read_namespaced_stateful_set, "qn", "default")
    assert current.spec.replicas == 3 and current.metadata.generation == 2


async def test_label_and_field_selectors_on_list(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    for name, labels in [("a", {"app": "qn", "tier": "x"}), ("b", {"app": "qn"}), ("c", {"app": "proxy"})]:
        await kube.store.create("v1/configmaps", {"metadata": {"name": name, "namespace": "default",
                                                               "labels": labels}})
    cases = {
        "app=qn": ["a", "b"], "app==qn": ["a", "b"], "app!=qn": ["c"], "app in (qn, proxy)": ["a", "b", "c"],
        "app notin (qn)": ["c"], "tier": ["a"], "!tier": ["b", "c"], "app=qn,!tier": ["b"],
    }
    for selector, expected in cases.items():
        async with http.get("/api/v1/configmaps", params={"labelSelector": selector}) as response:
            names = ours([item["metadata"]["name"] for item in (await response.json())["items"]])
        assert names == expected, selector
    async with http.get("/api/v1/configmaps",
                        params={"fieldSelector": "metadata.name=b,metadata.namespace=default"}) as response:
        assert [item["metadata"]["name"] for item in (await response.json())["items"]] == ["b"]
    assert [cm["metadata"]["name"] for cm in await kube.store.list("v1/configmaps", "default", "tier")] == ["a"]


async def test_watch_filters_by_label_selector(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    watch = await open_watch(http, "/api/v1/namespaces/default/configmaps", labelSelector="app=qn")
    await kube.store.create("v1/configmaps", {"metadata": {"name": "other", "namespace": "default"}})
    await kube.store.create("v1/configmaps", {"metadata": {"name": "qn", "namespace": "default",
                                                           "labels": {"app": "qn"}}})
    await kube.store.patch("v1/configmaps", "default", "other", {"metadata": {"labels": {"app": "qn"}}})
    await kube.store.patch("v1/configmaps", "default", "qn", {"metadata": {"labels": {"app": "no"}}})
    assert await watch.events(3) == [("ADDED", "qn"), ("ADDED", "other"), ("DELETED", "qn")]


async def test_watch_without_version_lists_then_streams_and_honours_timeout(
    kube: KubeApiServer, http: aiohttp.ClientSession,
) -> None:
    await kube.store.create("v1/configmaps", {"metadata": {"name": "old", "namespace": "default"}})
    watch = await open_watch(http, "/api/v1/namespaces/default/configmaps", timeoutSeconds="1")
    assert await watch.events(1) == [("ADDED", "old")]
    await kube.store.patch("v1/configmaps", "default", "old", {"data": {"a": "b"}})
    assert await watch.events(1) == [("MODIFIED", "old")]
    started = time.monotonic()
    assert await watch.ended(seconds=3)
    assert time.monotonic() - started < 2


async def test_watch_resumes_after_a_version_without_replay(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    first = await kube.store.create("v1/configmaps", {"metadata": {"name": "first", "namespace": "default"}})
    await kube.store.create("v1/configmaps", {"metadata": {"name": "second", "namespace": "default"}})
    watch = await open_watch(http, "/api/v1/namespaces/default/configmaps",
                             resourceVersion=first["metadata"]["resourceVersion"])
    assert await watch.events(1) == [("ADDED", "second")]
    await kube.store.delete("v1/configmaps", "default", "first")
    assert await watch.events(1) == [("DELETED", "first")]


async def test_watch_from_a_version_older_than_history_is_expired() -> None:
    server = KubeApiServer(port=0, history_limit=3)
    await server.start()
    try:
        for index in range(5):
            await server.store.create("v1/configmaps", {"metadata": {"name": f"c{index}", "namespace": "default"}})
        async with aiohttp.ClientSession(base_url=server.url) as session:
            watch = await open_watch(session, "/api/v1/configmaps", resourceVersion="1")
            event = await watch.next_event()
            assert event["type"] == "ERROR"
            assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
            recent = await open_watch(session, "/api/v1/configmaps", resourceVersion=str(server.store.revision - 1))
            assert await recent.events(1) == [("ADDED", "c4")]
    finally:
        await server.stop()


async def test_pods_are_deleted_gracefully_until_purged(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    core = client.CoreV1Api(api_client(kube))
    # On a node no kubelet (kwok) manages, so that only `purge` ends the graceful deletion.
    await asyncio.to_thread(core.create_namespaced_pod, "default",
                            pod("p", terminationGracePeriodSeconds=12, nodeName="unmanaged"))
    watch = await open_watch(http, "/api/v1/namespaces/default/pods",
                             resourceVersion=await current_version(http, "/api/v1/namespaces/default/pods"))
    await asyncio.to_thread(core.delete_namespaced_pod, "p", "default")
    terminating = await asyncio.to_thread(core.read_namespaced_pod, "p", "default")
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 12
    await kube.store.purge("v1/pods", "default", "p")
    assert await watch.events(1) == [("MODIFIED", "p")]
    # The kubelet's final delete (grace period 0): one more MODIFIED (deletionGracePeriodSeconds: 0) first
    # on a real API server (known difference), then DELETED.
    last = await watch.events(1)
    if is_real(kube) and last == [("MODIFIED", "p")]:
        last = await watch.events(1)
    assert last == [("DELETED", "p")]
    assert await kube.store.get("v1/pods", "default", "p") is None

    await kube.store.create("v1/pods", pod("q") | {"metadata": {"name": "q", "namespace": "default"}})
    await asyncio.to_thread(core.delete_namespaced_pod, "q", "default", grace_period_seconds=0)
    assert await kube.store.get("v1/pods", "default", "q") is None


@pytest.mark.embedded_only("the store API (in-process watch, purge, status via the main resource)")
async def test_store_api_sees_the_same_objects_and_events(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    store_events: list[tuple[str, str]] = []

    async def follow() -> None:
        async for event_type, obj in kube.store.watch("v1/pods", "default"):
            store_events.append((event_type, obj["metadata"]["name"]))

    follower = asyncio.create_task(follow())
    await wait_for(lambda: bool(kube.store._subscriptions))
    http_watch = await open_watch(http, "/api/v1/namespaces/default/pods", resourceVersion=str(kube.store.revision))
    created = await kube.store.create("v1/pods", {"metadata": {"name": "p", "namespace": "default"},
                                                  "spec": {"containers": []}})
    assert created["status"] == {"phase": "Pending"} and created["kind"] == "Pod"
    created["spec"]["mutated"] = True  # returned objects are copies
    running = await kube.store.patch("v1/pods", "default", "p", {"status": {"phase": "Running"}}, "status")
    assert running["status"]["phase"] == "Running" and "mutated" not in running["spec"]
    async with http.get("/api/v1/namespaces/default/pods/p") as response:
        assert (await response.json())["status"]["phase"] == "Running"
    await kube.store.delete("v1/pods", "default", "p")
    await kube.store.purge("v1/pods", "default", "p")
    expected = [("ADDED", "p"), ("MODIFIED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]
    assert await http_watch.events(4) == expected
    await wait_for(lambda: store_events == expected)
    follower.cancel()


async def test_finalizers_hold_deletion_until_removed(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    await kube.store.create("v1/configmaps", {"metadata": {"name": "a", "namespace": "default",
                                                           "finalizers": ["example.io/hold"]}})
    async with http.delete("/api/v1/namespaces/default/configmaps/a") as response:
        assert response.status == 200  # with the object, now carrying its deletionTimestamp
    held = await kube.store.get("v1/configmaps", "default", "a")
    assert held is not None and held["metadata"]["deletionTimestamp"]
    async with http.patch("/api/v1/namespaces/default/configmaps/a",
                          json={"metadata": {"finalizers": None}}, headers=MERGE) as response:
        assert response.status == 200
    assert await kube.store.get("v1/configmaps", "default", "a") is None


async def test_owner_deletion_collects_dependents(kube: KubeApiServer) -> None:
    # A ConfigMap owns them (a StatefulSet would be acted on by a real cluster's controller); the pod sits
    # on a node no kubelet manages, so its graceful deletion stays visible.
    owner = await kube.store.create("v1/configmaps", {"metadata": {"name": "qn", "namespace": "default"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "qn", "uid": owner["metadata"]["uid"]}
    await kube.store.create("v1/pods", pod("qn-0", nodeName="unmanaged") | {
        "metadata": {"name": "qn-0", "namespace": "default", "ownerReferences": [reference]}})
    await kube.store.create("v1/configmaps", {"metadata": {"name": "qn-config", "namespace": "default",
                                                           "ownerReferences": [reference]}})
    config = await kube.store.get("v1/configmaps", "default", "qn-config")
    assert config is not None
    await kube.store.create("v1/configmaps", {"metadata": {"name": "grandchild", "namespace": "default",
                                                           "ownerReferences": [{"uid": config["metadata"]["uid"],
                                                                                "apiVersion": "v1",
                                                                                "kind": "ConfigMap",
                                                                                "name": "qn-config"}]}})
    await kube.store.create("v1/configmaps", {"metadata": {"name": "unrelated", "namespace": "default"}})
    await kube.store.delete("v1/configmaps", "default", "qn")

    async def collected() -> bool:  # at once on the embedded store; by the garbage collector on a cluster
        return (await kube.store.get("v1/configmaps", "default", "qn-config") is None
                and await kube.store.get("v1/configmaps", "default", "grandchild") is None)

    await eventually(collected, timeout=30 if is_real(kube) else 0, message="dependents collected")
    assert await kube.store.get("v1/configmaps", "default", "unrelated") is not None
    terminating = await kube.store.get("v1/pods", "default", "qn-0")
    assert terminating is not None and terminating["metadata"]["deletionTimestamp"]  # graceful
    await kube.store.purge("v1/pods", "default", "qn-0")


async def test_delete_collection_by_label(kube: KubeApiServer) -> None:
    for name, app in [("a", "qn"), ("b", "qn"), ("c", "proxy")]:
        await kube.store.create("v1/configmaps", {"metadata": {"name": name, "namespace": "default",
                                                               "labels": {"app": app}}})
    core = client.CoreV1Api(api_client(kube))
    await asyncio.to_thread(core.delete_collection_namespaced_config_map, "default", label_selector="app=qn")
    assert ours([cm["metadata"]["name"] for cm in await kube.store.list("v1/configmaps")]) == ["c"]


async def test_injected_faults_answer_before_the_store(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    fault = kube.inject_fault("POST", r"/configmaps$", 500)
    throttle = kube.inject_fault(None, r"/configmaps/a$", 429, times=2)
    body = {"metadata": {"name": "a"}}
    async with http.post("/api/v1/namespaces/default/configmaps", json=body) as response:
        assert response.status == 500 and (await response.json())["kind"] == "Status"
    assert await kube.store.get("v1/configmaps", "default", "a") is None
    async with http.post("/api/v1/namespaces/default/configmaps", json=body) as response:
        assert response.status == 201
    for _ in range(2):
        async with http.get("/api/v1/namespaces/default/configmaps/a") as response:
            assert response.status == 429 and response.headers["Retry-After"] == "1"
            assert (await response.json())["reason"] == "TooManyRequests"
    async with http.get("/api/v1/namespaces/default/configmaps/a") as response:
        assert response.status == 200
    assert (fault.hits, throttle.hits) == (1, 2)
    # The write log holds the answered-by-a-fault write too, in order (on the real backend the fault proxy's
    # record beside kube-apiserver's audit log).
    creates = [m.status for m in kube.mutations if m.method == "POST" and m.path.endswith("/configmaps")]
    assert creates == [500, 201]
    core = client.CoreV1Api(api_client(kube))
    kube.inject_fault("PATCH", "configmaps", 409)
    with pytest.raises(ApiException) as error:
        await asyncio.to_thread(core.patch_namespaced_config_map, "a", "default", {"data": {}})
    assert error.value.status == 409


async def test_mutations_count_http_writes_only(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    await kube.store.create("v1/configmaps", {"metadata": {"name": "in-process", "namespace": "default"}})
    headers = {"User-Agent": "test-operator/1"}
    async with http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "a"}},
                         headers=headers):
        pass
    async with http.get("/api/v1/namespaces/default/configmaps/a"):
        pass
    async with http.patch("/api/v1/namespaces/default/configmaps/a", json={"data": {"x": "y"}},
                          headers=MERGE | headers):
        pass
    async with http.delete("/api/v1/namespaces/default/configmaps/missing", headers=headers):
        pass
    assert [(m.method, m.path, m.user_agent, m.status) for m in kube.mutations] == [
        ("POST", "/api/v1/namespaces/default/configmaps", "test-operator/1", 201),
        ("PATCH", "/api/v1/namespaces/default/configmaps/a", "test-operator/1", 200),
        ("DELETE", "/api/v1/namespaces/default/configmaps/missing", "test-operator/1", 404),
    ]
    assert all(m.timestamp > 0 for m in kube.mutations)
    assert kube.lists == []  # a GET of one object is not a LIST


async def test_lists_count_collection_reads_not_watches(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    headers = {"User-Agent": "test-operator/1"}
    async with http.get("/api/v1/namespaces/default/configmaps?labelSelector=a%3Db", headers=headers):
        pass
    async with http.get("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1", headers=headers) as watch:
        await watch.read()
    assert [(m.method, m.path, m.user_agent) for m in kube.lists] == [
        ("GET", "/api/v1/namespaces/default/configmaps", "test-operator/1")]


async def test_core_and_group_discovery(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1") as response:
        core = await response.json()
    assert core["groupVersion"] == "v1"
    by_name = {resource["name"]: resource for resource in core["resources"]}
    assert by_name["namespaces"]["namespaced"] is False and by_name["pods"]["namespaced"] is True
    assert {"pods/status", "services", "serviceaccounts", "secrets", "events"} <= set(by_name)
    async with http.get("/apis/apps/v1") as response:
        apps = {r["name"]: r for r in (await response.json())["resources"]}
    assert apps["statefulsets/scale"]["kind"] == "Scale" and apps["statefulsets/scale"]["group"] == "autoscaling"
    assert "sts" in apps["statefulsets"]["shortNames"]
    async with http.get("/apis") as response:
        groups = {group["name"] for group in (await response.json())["groups"]}
    assert {"apps", "events.k8s.io", "apiextensions.k8s.io", "coordination.k8s.io"} <= groups
    async with http.get("/version") as response:
        assert (await response.json())["major"] == "1"


async def test_crds_are_served_and_unserved(kube: KubeApiServer, http: aiohttp.ClientSession) -> None:
    extensions = client.ApiextensionsV1Api(api_client(kube))
    crd = await asyncio.to_thread(extensions.create_custom_resource_definition, crd_manifest(WIDGET_SCHEMA))
    if is_real(kube):  # known difference: a real API server establishes a new CRD a moment later
        assert not crd.status.conditions
        await wait_established(http, "widgets.example.io")
    else:
        conditions = {condition.type: condition.status for condition in crd.status.conditions}
        assert conditions["Established"] == "True" and crd.status.accepted_names.kind == "Widget"
    async with http.get("/apis/example.io/v1") as response:
        resources = {r["name"]: r for r in (await response.json())["resources"]}
    assert resources["widgets"]["shortNames"] == ["wdg"] and resources["widgets"]["categories"] == ["examples"]
    assert {"widgets/status", "widgets/scale"} <= set(resources)
    custom = client.CustomObjectsApi(api_client(kube))
    widget = await asyncio.to_thread(custom.create_namespaced_custom_object, "example.io", "v1", "default",
                                     "widgets", {"apiVersion": "example.io/v1", "kind": "Widget",
                                                 "metadata": {"name": "w"}, "spec": {}})
    assert widget["spec"] == {"replicas": 1, "size": "small"}
    await kube.store.patch("example.io/v1/widgets", "default", "w",
                           {"status": {"replicas": 1, "selector": "app=w"}}, "status")
    scale = await asyncio.to_thread(custom.get_namespaced_custom_object_scale, "example.io", "v1", "default",
                                    "widgets", "w")
    assert (scale["spec"]["replicas"], scale["status"]["selector"]) == (1, "app=w")
    await asyncio.to_thread(custom.patch_namespaced_custom_object_scale, "example.io", "v1", "default",
                            "widgets", "w", {"spec": {"replicas": 4}})
    assert (await kube.store.get("example.io/v1/widgets", "default", "w") or {})["spec"]["replicas"] == 4
    await asyncio.to_thread(extensions.delete_custom_resource_definition, "widgets.example.io")

    async def unserved() -> bool:  # at once on the embedded server; once the CRD is finalized on a real one
        async with http.get("/apis/example.io/v1/namespaces/default/widgets/w") as response:
            gone = response.status == 404
        async with http.get("/apis/example.io/v1") as response:
            return gone and response.status == 404

    await eventually(unserved, timeout=30 if is_real(kube) else 0, message="the CRD's resources unserved")


async def test_stop_closes_open_watches_promptly() -> None:
    server = KubeApiServer(port=0)
    started = time.monotonic()
    await server.start()
    assert time.monotonic() - started < 1
    async with aiohttp.ClientSession(base_url=server.url) as session:
        watch = await open_watch(session, "/api/v1/pods")
        stopping = time.monotonic()
        await server.stop()
        assert await watch.ended(seconds=2)
        assert time.monotonic() - stopping < 1


async def test_kubeconfig_is_accepted_by_the_kubernetes_client(kube: KubeApiServer, tmp_path: Any) -> None:
    from kubernetes import config

    path = kube.write_kubeconfig(tmp_path / "kubeconfig", namespace="default")
    loaded = await asyncio.to_thread(config.new_client_from_config, str(path))
    namespaces = await asyncio.to_thread(client.CoreV1Api(loaded).list_namespace)
    assert ours([ns.metadata.name for ns in namespaces.items]) == ["default"]
