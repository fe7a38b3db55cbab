"""Events: the pure reading of a pod's Events (podevents.py), and the stand-in API's
events endpoint, which must filter as the real one does (fieldSelector)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from r2dservice.builders.podevents import pod_event_selector, warning_reason
from tests.fakes.kubeapi import FakeKubeAPI

NS = "builds"


def event(reason, message, type_="Warning", last="2026-01-01T10:00:00Z", rv="5", count=1):
    return {
        "metadata": {"resourceVersion": rv, "creationTimestamp": last},
        "type": type_,
        "reason": reason,
        "message": message,
        "lastTimestamp": last,
        "count": count,
    }


def test_no_events_no_reason():
    assert warning_reason([]) is None


def test_latest_warning_is_the_reason():
    events = [
        event("Scheduled", "assigned", "Normal", "2026-01-01T10:00:00Z", "1"),
        event("FailedMount", 'secret "x" not found', last="2026-01-01T10:02:00Z", rv="9", count=4),
    ]
    assert warning_reason(events) == 'FailedMount: secret "x" not found (seen 4 times)'


def test_latest_normal_event_means_on_its_way():
    events = [
        event("FailedMount", "transient", last="2026-01-01T10:00:00Z", rv="3"),
        event("Pulling", "Pulling image", "Normal", "2026-01-01T10:00:05Z", "4"),
    ]
    assert warning_reason(events) is None


def test_same_second_ties_broken_by_resource_version():
    events = [
        event("Pulling", "Pulling image", "Normal", rv="10"),
        event("Failed", "Error: ErrImagePull", rv="11"),
    ]
    assert warning_reason(events) == "Failed: Error: ErrImagePull"


def test_events_k8s_io_shape_with_event_time_and_series():
    e = event("FailedMount", "x", last=None, count=None)
    e["eventTime"] = "2026-01-01T10:00:00.123456Z"
    e["series"] = {"count": 7, "lastObservedTime": "2026-01-01T10:05:00.000001Z"}
    older = event("Scheduled", "ok", "Normal", "2026-01-01T10:01:00Z", rv="99")
    assert warning_reason([older, e]) == "FailedMount: x (seen 7 times)"


def test_selector_names_the_pod_and_its_uid():
    assert pod_event_selector("p", "u") == (
        "involvedObject.kind=Pod,involvedObject.name=p,involvedObject.uid=u"
    )
    assert pod_event_selector("p") == "involvedObject.kind=Pod,involvedObject.name=p"


@pytest.fixture
async def kube():
    fake = FakeKubeAPI(bookmark_interval=0.2)
    await fake.start()
    yield fake
    await fake.stop()


async def test_fake_events_list_with_field_selector(kube):
    kube.add_pod({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}]}}, NS)
    kube.add_pod({"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c"}]}}, NS)
    kube.record_event("a", "FailedMount", "m1", namespace=NS)
    kube.record_event("a", "FailedMount", "m1", namespace=NS)  # a repeat: counted
    kube.record_event("b", "Pulling", "p", type="Normal", namespace=NS)
    uid = kube.get_pod("a", NS)["metadata"]["uid"]
    url = f"{kube.url}/api/v1/namespaces/{NS}/events"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, params={"fieldSelector": pod_event_selector("a", uid)}) as r:
            body = await r.json()
        assert body["kind"] == "EventList"
        [e] = body["items"]
        assert (e["reason"], e["count"], e["involvedObject"]["uid"]) == ("FailedMount", 2, uid)
        assert e["source"] == {"component": "kubelet"}
        async with s.get(url, params={"fieldSelector": "type!=Warning"}) as r:
            assert [e["involvedObject"]["name"] for e in (await r.json())["items"]] == ["b"]
        async with s.get(url, params={"fieldSelector": "involvedObject.name=a,reason=Nope"}) as r:
            assert (await r.json())["items"] == []
        async with s.get(
            f"{kube.url}/api/v1/events", params={"fieldSelector": "source=kubelet"}
        ) as r:
            assert len((await r.json())["items"]) == 2
        # as the API server: only indexed fields
        async with s.get(url, params={"fieldSelector": "message=m1"}) as r:
            assert r.status == 400
            assert "field label not supported: message" in (await r.json())["message"]
        # pods take field selectors too
        pods = f"{kube.url}/api/v1/namespaces/{NS}/pods"
        async with s.get(pods, params={"fieldSelector": "metadata.name=b"}) as r:
            assert [p["metadata"]["name"] for p in (await r.json())["items"]] == ["b"]


async def test_fake_events_watch_follows_new_and_counted_events(kube):
    kube.add_pod({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}]}}, NS)
    url = f"{kube.url}/api/v1/namespaces/{NS}/events"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        params = {
            "watch": "true",
            "resourceVersion": rv,
            "fieldSelector": "involvedObject.name=a",
            "timeoutSeconds": "2",
        }
        async with s.get(url, params=params) as r:
            kube.record_event("other", "Pulling", "p", type="Normal", namespace=NS)
            kube.record_event("a", "FailedMount", "m", namespace=NS)
            kube.record_event("a", "FailedMount", "m", namespace=NS)
            seen = []
            async for line in r.content:
                if line.strip():
                    seen.append(json.loads(line))
        assert [(e["type"], e["object"].get("count")) for e in seen] == [
            ("ADDED", 1),
            ("MODIFIED", 2),
        ]
        assert kube.stats["event-watch"].requests == 1
