"""Reaching the Kubernetes API: the namespace we run in, the client, and how to read
its errors.

kubernetes_asyncio (~80 MB) is imported inside the functions that need it, never at
module level, so that importing this module costs nothing until a client is made.
"""

from __future__ import annotations

import json
import os

import aiohttp

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# Statuses worth another try: the API server is busy or restarting, not saying no.
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def current_namespace(path: str = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The namespace this service runs in (in a cluster), else $POD_NAMESPACE, else 'default'."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return os.environ.get("POD_NAMESPACE", "default")


async def make_api_client(api_url: str = ""):
    """A kubernetes_asyncio ApiClient for `api_url` (no credentials: `kubectl proxy`, a
    test server), else the in-cluster config, else ~/.kube/config."""
    from kubernetes_asyncio import client, config

    conf = client.Configuration()
    if api_url:
        conf.host = api_url
    else:
        try:
            config.load_incluster_config(client_configuration=conf)
        except config.ConfigException:
            await config.load_kube_config(client_configuration=conf)
    # One watch plus a log stream per running build, all long-lived: an aiohttp
    # connection limit would queue the next build's requests behind them.
    conf.connection_pool_maxsize = 0
    return client.ApiClient(conf)


def request_timeout(total: float = 30) -> aiohttp.ClientTimeout:
    """The timeout of one short API call (create, patch, delete, list)."""
    return aiohttp.ClientTimeout(total=total)


def retryable(status: int | None) -> bool:
    return status in RETRYABLE


def api_message(e) -> str:
    """The human part of an ApiException (the Status message), else its reason."""
    try:
        return json.loads(e.body).get("message") or e.reason
    except (TypeError, ValueError, AttributeError):
        return f"HTTP {e.status} {e.reason}"
