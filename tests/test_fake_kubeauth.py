"""The secure stand-in API server behaves as a cluster's does toward a pod: HTTPS from the
cluster's CA, bound tokens (401 otherwise), RBAC with the API server's 403 Status, the
ServiceAccount admission plugin. Checked with kubernetes_asyncio's own in-cluster loader,
as the service uses it in a pod."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes import kubeauth
from tests.fakes.kubeapi import FakeKubeAPI

NS = "r2d"
BUILDS = "r2d-builds"
SA = "r2dservice"

ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "r2dservice", "namespace": BUILDS},
    "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ],
}
BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "r2dservice", "namespace": BUILDS},
    "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": NS}],
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r2dservice"},
}


def pod(name: str, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


@pytest.fixture
async def kube():
    api = FakeKubeAPI(secure=True)
    await api.start()
    api.add_object({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA}}, NS)
    api.add_object(ROLE)
    api.add_object(BINDING)
    try:
        yield api
    finally:
        await api.stop()


async def create_as_admin(kube: FakeKubeAPI, ns: str, body: dict) -> tuple[int, dict]:
    async with kube.admin_session() as s:
        async with s.post(f"{kube.url}/api/v1/namespaces/{ns}/pods", json=body) as r:
            return r.status, await r.json()


async def service_pod_token(kube: FakeKubeAPI) -> str:
    status, created = await create_as_admin(kube, NS, pod("svc", serviceAccountName=SA))
    assert status == 201, created
    return kube.request_token(created)


async def test_in_cluster_config_reaches_the_api_with_the_mounted_files(kube, tmp_path):
    """kubernetes_asyncio's load_incluster_config, given what the kubelet mounts, talks
    HTTPS to the stand-in with the pod's token: allowed what the Role says."""
    from kubernetes_asyncio import client, config

    (tmp_path / "token").write_text(await service_pod_token(kube))
    (tmp_path / "ca.crt").write_text(kube.ca_pem)
    conf = client.Configuration()
    config.load_incluster_config(
        client_configuration=conf,
        token_filename=str(tmp_path / "token"),
        cert_filename=str(tmp_path / "ca.crt"),
        environ={"KUBERNETES_SERVICE_HOST": kube.host, "KUBERNETES_SERVICE_PORT": str(kube.port)},
    )
    assert conf.host == kube.url and kube.url.startswith("https://")
    async with client.ApiClient(conf) as api:
        core = client.CoreV1Api(api)
        pods = await core.list_namespaced_pod(BUILDS)
        assert pods.items == []
        with pytest.raises(client.ApiException) as e:
            await core.delete_namespaced_pod("x", BUILDS)
        assert e.value.status == 403
        with pytest.raises(client.ApiException) as e:
            await core.list_namespaced_pod(NS)  # the Role is for the build namespace only
        assert e.value.status == 403


async def test_forbidden_is_the_api_servers_status(kube):
    token = await service_pod_token(kube)
    user = f"system:serviceaccount:{NS}:{SA}"
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(ssl=kube.pki.client_context()),
    ) as s:
        async with s.delete(f"{kube.url}/api/v1/namespaces/{BUILDS}/pods/x") as r:
            assert r.status == 403
            assert await r.json() == {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f'pods "x" is forbidden: User "{user}" cannot delete resource "pods" '
                f'in API group "" in the namespace "{BUILDS}"',
                "reason": "Forbidden",
                "details": {"name": "x", "kind": "pods"},
                "code": 403,
            }
        async with s.post(f"{kube.url}/api/v1/namespaces/{BUILDS}/secrets", json={}) as r:
            body = await r.json()
            assert r.status == 403
            assert body["message"] == (
                f'secrets is forbidden: User "{user}" cannot create resource "secrets" '
                f'in API group "" in the namespace "{BUILDS}"'
            )
        # a watch is its own verb; a subresource is named with its resource
        async with s.get(
            f"{kube.url}/api/v1/namespaces/{BUILDS}/pods?watch=1&timeoutSeconds=1"
        ) as r:
            assert r.status == 200
        async with s.get(f"{kube.url}/api/v1/pods") as r:
            assert r.status == 403
            assert (await r.json())["message"].endswith(
                'cannot list resource "pods" in API group "" at the cluster scope'
            )
        kube.role("r2dservice", BUILDS)["rules"].pop(1)  # kubectl edit: pods/log goes
        async with s.get(f"{kube.url}/api/v1/namespaces/{BUILDS}/pods/x/log") as r:
            assert r.status == 403
            assert (await r.json())["message"] == (
                f'pods "x" is forbidden: User "{user}" cannot get resource "pods/log" '
                f'in API group "" in the namespace "{BUILDS}"'
            )
        del kube.rbac.roles[(BUILDS, "r2dservice")]  # the binding's Role is gone
        async with s.get(f"{kube.url}/api/v1/namespaces/{BUILDS}/pods") as r:
            assert (await r.json())["message"].endswith(
                ': RBAC: role.rbac.authorization.k8s.io "r2dservice" not found'
            )
        async with s.get(f"{kube.url}/version") as r:  # public info
            assert r.status == 200
    assert (f"system:serviceaccount:{NS}:{SA}", "delete", "pods", BUILDS, "x") in kube.denied


async def test_tokens_are_checked(kube):
    token = await service_pod_token(kube)
    ssl = kube.pki.client_context()
    url = f"{kube.url}/api/v1/namespaces/{BUILDS}/pods"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as s:
        for bad in ["Bearer nonsense", "Bearer " + token[:-4] + "AAAA", "Basic eDp5"]:
            async with s.get(url, headers={"Authorization": bad}) as r:
                assert r.status == 401
                assert await r.json() == kubeauth.UNAUTHORIZED
        # no credentials: system:anonymous, whom RBAC lets read only the public info
        async with s.get(url) as r:
            assert r.status == 403
            assert 'User "system:anonymous" cannot list' in (await r.json())["message"]
        async with s.get(f"{kube.url}/version") as r:
            assert r.status == 200
        # a bound token dies with its pod
        async with s.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
        kube.delete_pod("svc", NS)
        async with s.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 401
    # and a client that does not trust the cluster's CA does not get that far
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await s.get(url)


async def test_service_account_admission(kube):
    # the pod's own field wins, then its ServiceAccount's, else the token is mounted
    kube.add_object(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "quiet"},
            "automountServiceAccountToken": False,
        },
        NS,
    )
    cases = [
        ({}, True),
        ({"automountServiceAccountToken": False}, False),
        ({"serviceAccountName": "quiet"}, False),
        ({"serviceAccountName": "quiet", "automountServiceAccountToken": True}, True),
        ({"serviceAccountName": SA, "automountServiceAccountToken": False}, False),
    ]
    for i, (spec, mounted) in enumerate(cases):
        status, created = await create_as_admin(kube, NS, pod(f"p{i}", **spec))
        assert status == 201, created
        mounts = created["spec"]["containers"][0].get("volumeMounts") or []
        sa_mounts = [m for m in mounts if m["mountPath"] == kubeauth.SA_MOUNT]
        assert bool(sa_mounts) == mounted, (spec, created["spec"])
        assert created["spec"]["serviceAccountName"] == spec.get("serviceAccountName", "default")
        if mounted:
            [volume] = [v for v in created["spec"]["volumes"] if v["name"] == sa_mounts[0]["name"]]
            assert volume["name"].startswith("kube-api-access-")
            assert sa_mounts[0]["readOnly"] is True
    status, body = await create_as_admin(kube, NS, pod("ghost", serviceAccountName="ghost"))
    assert status == 403
    assert body["message"] == (
        f'pods "ghost" is forbidden: error looking up service account {NS}/ghost: '
        'serviceaccount "ghost" not found'
    )


def test_request_attributes():
    attrs = kubeauth.request_attributes
    assert attrs("GET", "/api/v1/namespaces/n/pods", {}).verb == "list"
    assert attrs("GET", "/api/v1/namespaces/n/pods", {"watch": "true"}).verb == "watch"
    a = attrs("GET", "/api/v1/namespaces/n/pods/p/log", {})
    assert (a.verb, a.resource, a.subresource, a.name, a.namespace) == (
        "get",
        "pods",
        "log",
        "p",
        "n",
    )
    a = attrs("GET", "/api/v1/namespaces/n/events", {"fieldSelector": "metadata.name=e1"})
    assert (a.verb, a.name) == ("list", "e1")
    assert attrs("DELETE", "/api/v1/namespaces/n/pods", {}).verb == "deletecollection"
    a = attrs("PATCH", "/apis/apps/v1/namespaces/n/deployments/d", {})
    assert (a.verb, a.api_group, a.resource) == ("patch", "apps", "deployments")
    assert not attrs("GET", "/version", {}).resource_request
